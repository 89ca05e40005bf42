"""The whole local loop with real processes: MLflow server, predictor, DVC remote, trigger, retraining run.

Feedback goes in through ``POST /save-for-retrain``; the trigger launches ``crackseg retrain run`` as a real
subprocess; the predictor ends up serving the new version (``/ping``). The second case forces the gate to reject
with a negative tolerance (``CRACKSEG_RETRAIN_TOLERANCE=-1``: "the challenger must beat the champion on the base
set by 1.0", impossible), and nothing changes. The promoting case uses tolerance 1.0 and a held-back-feedback margin
of -1 (``CRACKSEG_RETRAIN_MIN_GAIN``): on 64×64 toy data the F1 of a two-step fine-tune is noise, and what is
tested here is the loop, not the model (the gate itself is unit-tested in test_gate.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ml.registry import Registry
from services.common.feedback import FeedbackStore
from services.retrain.executors import LocalSubprocessExecutor
from services.retrain.journal import load_journal
from services.retrain.modelstore import verify_export
from services.retrain.trigger import decide
from tests.helpers.procs import BIN, REPO
from tests.services.retrain.conftest import Champion, LoopData, Predictor, run_env, served_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_COMMAND = [sys.executable, "-m", "services.cli", "retrain", "run"]


def send_feedback(url: str, samples: Path, indices: range, *, with_mask: bool = True) -> list[str]:
    ids = []
    for i in indices:
        image = (samples / "images" / f"synth_{i:05d}.png").read_bytes()
        files = {"file": (f"photo{i}.png", image, "image/png")}
        data = {"verdict": "missed_cracks" if with_mask else "other"}
        if with_mask:
            files["mask"] = ("mask.png", (samples / "masks" / f"synth_{i:05d}.png").read_bytes(), "image/png")
        r = httpx.post(f"{url}/save-for-retrain", files=files, data=data, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["labelled"] is with_mask
        ids.append(r.json()["id"])
    return ids


def trigger_and_wait(env: dict[str, str], feedback_dir: Path, work: Path, timeout: float = 240) -> str:
    """One trigger decision with the real local executor; waits for the launched run to exit."""
    import os

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the launched child inherits these
    try:
        executor = LocalSubprocessExecutor(feedback_dir / "state" / "retrain", RUN_COMMAND, work / "logs")
        decision = decide(FeedbackStore(feedback_dir), 3, executor)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert decision.reason == "launched", decision
    deadline = time.monotonic() + timeout
    while executor.active_runs():
        assert time.monotonic() < deadline, (work / "logs" / f"{decision.run_name}.log").read_text()[-3000:]
        time.sleep(0.5)
    return decision.run_name


def test_feedback_to_served_version_and_a_rejected_challenger(
    predictor: Predictor, champion: Champion, loop_data: LoopData, tmp_path: Path
) -> None:
    registry = Registry(champion.tracking_uri)
    start = registry.champion()
    assert start is not None
    assert served_version(predictor.url) == start.version
    store = FeedbackStore(predictor.feedback_dir)

    # 1. Feedback through the API: 3 labelled (the threshold) + 1 unlabelled that is never trained on.
    labelled_ids = send_feedback(predictor.url, loop_data.feedback_samples, range(3))
    send_feedback(predictor.url, loop_data.feedback_samples, range(7, 8), with_mask=False)
    stats = httpx.get(f"{predictor.url}/v1/feedback/stats", timeout=10).json()
    assert stats["labelled_since_watermark"] == 3

    # 2. The trigger fires; the run trains, gates, registers, exports and rolls the predictor.
    env = run_env(
        loop_data,
        champion,
        predictor,
        tmp_path,
        CRACKSEG_RETRAIN_TOLERANCE="1.0",
        CRACKSEG_RETRAIN_MIN_GAIN="-1",
    )
    run_name = trigger_and_wait(env, predictor.feedback_dir, tmp_path)
    journal = load_journal(predictor.feedback_dir / "state" / "retrain", run_name)
    assert journal is not None, (tmp_path / "logs" / f"{run_name}.log").read_text()[-3000:]
    assert journal.status == "promoted", journal.last_error
    new = journal.challenger_version
    # The newest version ("version 2" when this module runs alone on a fresh registry).
    assert new is not None and int(new) == max(int(v.version) for v in registry.versions()) > int(
        start.version
    )
    assert served_version(predictor.url) == new
    champ = registry.champion()
    assert champ is not None and champ.version == new
    tags = registry.get(new).tags
    assert tags["status"] == "promoted" and tags["parent_version"] == start.version
    assert tags["feedback_count"] == "3" and tags["dataset_hash"] == journal.dataset_hash
    assert float(tags["f1_ods"]) == pytest.approx(journal.challenger_metrics["f1_ods"], abs=1e-4)
    assert tags["git_commit"] and tags["retrain_run"] == run_name
    assert verify_export(predictor.models_dir / f"v{new}")
    assert any((tmp_path / "dvc-storage").rglob("*")), "the snapshot was pushed to the DVC remote"
    # The watermark moves to the newest trained-on record, not to "now".
    watermark = store.read_watermark()
    assert watermark is not None and watermark.model_version == new
    newest = max(store.get(i).updated_at for i in labelled_ids)  # type: ignore[union-attr]
    assert watermark.watermark == newest
    assert store.retrain_runs()[-1].outcome == "promoted"
    assert httpx.get(f"{predictor.url}/v1/feedback/stats", timeout=10).json()["labelled_since_watermark"] == 0

    # 3. More feedback, but a gate that cannot be passed: the challenger is rejected and nothing changes.
    send_feedback(predictor.url, loop_data.feedback_samples, range(3, 6))
    env = run_env(loop_data, champion, predictor, tmp_path, CRACKSEG_RETRAIN_TOLERANCE="-1")
    rejected_run = trigger_and_wait(env, predictor.feedback_dir, tmp_path)
    rejected = load_journal(predictor.feedback_dir / "state" / "retrain", rejected_run)
    assert rejected is not None and rejected.status == "rejected", rejected
    assert served_version(predictor.url) == new
    assert registry.champion().version == new  # type: ignore[union-attr]
    rejected_tags = registry.get(rejected.challenger_version or "").tags
    assert rejected_tags["status"] == "challenger-rejected"
    assert "worse than the champion" in rejected_tags["rejection_reason"]
    assert store.read_watermark() == watermark
    assert not (predictor.models_dir / f"v{rejected.challenger_version}").exists()
    assert store.retrain_runs()[-1].outcome == "rejected"
    # The same feedback is not retrained again (same deterministic name, finished).
    again = decide(store, 3, LocalSubprocessExecutor(store.root / "state" / "retrain", RUN_COMMAND, tmp_path))
    assert (again.reason, again.run_name) == ("exists", rejected_run)

    # 4. Rollback through the CLI: champion and predictor go back to the starting version.
    out = subprocess.run(
        [str(BIN / "crackseg"), "model", "rollback"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == {
        "previous": new,
        "current": start.version,
        "served": start.version,
    }
    assert served_version(predictor.url) == start.version
    assert registry.champion().version == start.version  # type: ignore[union-attr]
    assert registry.get(new).tags["status"] == "rolled-back"
