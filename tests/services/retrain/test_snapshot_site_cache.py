"""The DVC snapshot keeps DVC's site cache in a writable place (issue 13, item 3).

DVC's default site cache is ``/var/tmp/dvc``, which is on the read-only root filesystem of every crackseg pod: the
retraining Job died there before its first step, with an ``OSError`` nobody caught. The pod-spec runner
(tests/k8s) runs the real Job read-only; these tests pin the behaviour without a container.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.common.feedback import FeedbackStore
from services.retrain.errors import RetrainError
from services.retrain.plan import make_plan
from services.retrain.snapshot import SITE_CACHE_ENV, build_snapshot


def _inputs(tmp_path: Path) -> tuple[FeedbackStore, Path]:
    store = FeedbackStore(tmp_path / "feedback")
    for i in range(2):
        store.save(f"img{i}".encode(), "png", 4, 4, mask_png=b"m", verdict="missed_cracks")
    base = tmp_path / "base"
    (base / "images").mkdir(parents=True)
    (base / "images" / "a.png").write_bytes(b"x")
    return store, base


def test_the_site_cache_lives_in_the_work_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SITE_CACHE_ENV, raising=False)
    store, base = _inputs(tmp_path)
    work = tmp_path / "work"
    snap = build_snapshot(make_plan(store), store, base, work, tmp_path / "remote")
    assert snap.n_feedback == 2 and len(snap.dataset_hash) == 32
    site_cache = work / "dvc-site-cache"
    assert site_cache.is_dir() and any(site_cache.iterdir()), "DVC wrote its state somewhere else"
    assert SITE_CACHE_ENV not in os.environ  # the process environment is left as it was


def test_an_explicit_site_cache_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "chosen"
    monkeypatch.setenv(SITE_CACHE_ENV, str(chosen))
    store, base = _inputs(tmp_path)
    build_snapshot(make_plan(store), store, base, tmp_path / "work", tmp_path / "remote")
    assert any(chosen.iterdir())
    assert not (tmp_path / "work" / "dvc-site-cache").exists()
    assert os.environ[SITE_CACHE_ENV] == str(chosen)


def test_an_unwritable_site_cache_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    monkeypatch.setenv(SITE_CACHE_ENV, str(blocked))
    store, base = _inputs(tmp_path)
    with pytest.raises(RetrainError, match=rf"DVC site cache {blocked} is not writable.*{SITE_CACHE_ENV}"):
        build_snapshot(make_plan(store), store, base, tmp_path / "work", tmp_path / "remote")
