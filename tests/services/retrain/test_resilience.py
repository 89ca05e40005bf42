"""Failure paths of a run without MLflow or a predictor: bounded retries, a frozen plan, the alias after a rollout.

The registry and the rollout are small fakes of the two interfaces the run talks to (``ml.registry.Registry``,
``services.retrain.rollout.Rollout``); the feedback store, the journal, DVC and the executor are real.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ml.registry import VersionInfo
from services.common.feedback import FeedbackStore
from services.retrain.errors import ConfigError, GaveUpError, InjectedCrash, RetrainError, RolloutTimeoutError
from services.retrain.executors import LocalSubprocessExecutor
from services.retrain.journal import RunJournal, load_journal, save_journal
from services.retrain.plan import make_plan
from services.retrain.run import RetrainRun
from services.retrain.settings import RunSettings, TriggerSettings
from services.retrain.trigger import decide, retry
from tests.services.retrain.test_trigger import fill, sleeper, wait_idle

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class FakeRegistry:
    """Records alias moves; ``champion`` is version ``parent``."""

    def __init__(self, parent: str | None = "1") -> None:
        self.parent = parent
        self.alias_moves: list[str | None] = []
        self.tags: dict[str, dict[str, str]] = {}

    def champion(self) -> VersionInfo | None:
        return VersionInfo(self.parent, None, {}) if self.parent else None

    def set_champion(self, version: str | None) -> None:
        self.alias_moves.append(version)

    def set_tags(self, version: str, tags: dict[str, str]) -> None:
        self.tags.setdefault(version, {}).update(tags)


class FakeRollout:
    """A predictor that serves ``served``; ``roll`` times out (and reverts) unless ``works``."""

    def __init__(self, served: str, works: bool) -> None:
        self.served = served
        self.works = works

    def current(self) -> str | None:
        return self.served

    def roll(self, version: str, model_dir: Path) -> None:
        if not self.works:
            raise RolloutTimeoutError(f"predictor not serving {version} after 0.1s (reloaded {self.served})")
        self.served = version


def settings(tmp_path: Path, **update: Any) -> RunSettings:
    values: dict[str, Any] = {
        "feedback_dir": tmp_path / "fb",
        "base_data": tmp_path / "base",
        "eval_data": tmp_path / "eval",
        "dvc_remote": tmp_path / "dvc",
        "retrain_work_dir": tmp_path / "work",
        "models_dir": tmp_path / "models",
        "retrain_max_attempts": 3,
        "retrain_retry_wait_s": 2.0,
        "rollout": "none",
    }
    return RunSettings(**{**values, **update})


def test_a_failing_run_retries_with_backoff_then_gives_up_until_retry(tmp_path: Path) -> None:
    """Item 1: the old run failed once and the trigger relaunched it on every tick, forever."""
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=3)
    s = settings(tmp_path)  # base_data does not exist: every attempt fails in the snapshot step
    run = RetrainRun(s, FakeRegistry(), None)  # type: ignore[arg-type]
    waits: list[float] = []
    run.sleep = waits.append
    name = make_plan(store).run_name

    with pytest.raises(RetrainError, match="base dataset"):
        run.execute(name)
    journal = load_journal(s.journal_dir, name)
    assert journal is not None and (journal.status, journal.attempts) == ("failed", 3)
    assert waits == [2.0, 4.0]  # exponential backoff between the three tries
    assert [r.outcome for r in store.retrain_runs()] == ["failed"]  # recorded once
    with pytest.raises(GaveUpError, match="gave up after 3 attempts"):
        run.execute(name)  # a rerun of the same plan does nothing either

    launches = tmp_path / "launches"
    executor = LocalSubprocessExecutor(s.journal_dir, sleeper(launches, 0), tmp_path / "logs")
    skipped = decide(store, 3, executor)
    assert (skipped.action, skipped.reason) == ("skip", "gave_up") and not launches.exists()
    assert "crackseg retrain retry" in skipped.detail

    retried = retry(TriggerSettings(feedback_dir=store.root, retrain_max_attempts=2), executor)
    wait_idle(executor)
    assert retried.created and launches.read_text().split() == [name]
    assert load_journal(s.journal_dir, name).attempt_budget == 5  # type: ignore[union-attr]

    fill(store, labelled=1, start=10)  # new feedback: a new plan, a new run
    fresh = decide(store, 3, executor)
    wait_idle(executor)
    assert fresh.created and fresh.run_name != name


def test_a_config_error_is_not_retried(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=3)
    name = make_plan(store).run_name
    run = RetrainRun(settings(tmp_path, retrain_fail_at="nonsense"), FakeRegistry(), None)  # type: ignore[arg-type]
    run.sleep = lambda s: pytest.fail(f"retried a ConfigError (slept {s})")
    _base(tmp_path)
    with pytest.raises(ConfigError, match="step 'nonsense' unknown"):
        run.execute(name)
    journal = load_journal(settings(tmp_path).journal_dir, name)
    assert journal is not None and journal.attempts == 1
    assert journal.gave_up  # the trigger does not relaunch it either; `crackseg retrain retry` after the fix


def _base(tmp_path: Path) -> None:
    from ml.data import synthetic

    synthetic.generate(2, tmp_path / "base", size=(32, 32), seed=3)


def test_a_run_follows_the_plan_its_name_stands_for(tmp_path: Path) -> None:
    """Item 7: the old run re-planned from today's store, under the name of the trigger's older plan."""
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=3)
    planned = make_plan(store)
    fill(store, labelled=2, start=10)  # arrives between the trigger's decision and the run's start
    _base(tmp_path)
    run = RetrainRun(settings(tmp_path, retrain_fail_at="snapshot"), FakeRegistry(), None)  # type: ignore[arg-type]

    with pytest.raises(InjectedCrash):
        run.execute(planned.run_name)
    journal = load_journal(settings(tmp_path).journal_dir, planned.run_name)
    assert journal is not None
    assert [i.id for i in journal.plan.items] == [i.id for i in planned.items]
    assert journal.plan.target_watermark == planned.target_watermark
    manifest = tmp_path / "work" / "snapshots" / planned.run_name / "data" / "feedback" / "manifest.json"
    assert len(json.loads(manifest.read_text())) == 3

    # A label corrected after the plan was frozen is not what a resumed run trains on.
    first = store.get(planned.items[1].id)
    assert first is not None and first.mask_file is not None
    old_mask = store.path(first.mask_file).read_bytes()
    store.save(
        f"img{1}".encode(),
        "png",
        4,
        4,
        mask_png=b"corrected later",
        verdict="other",
        now=T0 + timedelta(hours=1),
    )
    with pytest.raises(InjectedCrash):
        run.execute(planned.run_name)
    copied = (
        tmp_path / "work" / "snapshots" / planned.run_name / "data" / "feedback" / "masks" / f"{first.id}.png"
    )
    assert copied.read_bytes() == old_mask

    # Without a journal, a plan that no longer exists under that name is refused, not replaced.
    with pytest.raises(ConfigError, match="feedback it was planned on has changed"):
        make_plan(store, planned.run_name)


def _registered(tmp_path: Path, store: FeedbackStore, **completed: Any) -> RunJournal:
    """A journal that has trained, registered (version 2) and exported: the rollout is next."""
    plan = make_plan(store)
    exported = tmp_path / "models" / "v2"
    exported.mkdir(parents=True)
    journal = RunJournal(
        run_name=plan.run_name,
        plan=plan,
        parent_version="1",
        completed=["snapshot", "train", "evaluate", "register", "export"],
        challenger_version="2",
        exported_dir=exported,
        **completed,
    )
    save_journal(settings(tmp_path).journal_dir, journal)
    return journal


def test_a_timed_out_rollout_never_moves_the_alias_and_the_journal_says_so(tmp_path: Path) -> None:
    """Item 4: the old run moved the alias before the rollout and moved it back after a timeout."""
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=3)
    journal = _registered(tmp_path, store)
    registry = FakeRegistry(parent="1")
    run = RetrainRun(settings(tmp_path, retrain_max_attempts=1), registry, FakeRollout("1", works=False))  # type: ignore[arg-type]

    with pytest.raises(RolloutTimeoutError):
        run.execute(journal.run_name)
    after = load_journal(settings(tmp_path).journal_dir, journal.run_name)
    assert after is not None and after.status == "failed"
    assert registry.alias_moves == []  # the registry never named a version the predictor did not serve
    assert after.served_version == "1"
    assert after.rollout_note is not None and "alias 1 not moved" in after.rollout_note
    assert registry.tags["2"]["status"] == "rollout-failed"
    assert store.read_watermark() is None


def test_the_alias_moves_only_onto_what_the_predictor_confirms(tmp_path: Path) -> None:
    """Resuming at ``promote`` after someone rolled the predictor back: roll again before moving the alias."""
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=3)
    journal = _registered(tmp_path, store)
    journal.completed.append("rollout")
    save_journal(settings(tmp_path).journal_dir, journal)
    registry = FakeRegistry(parent="1")
    rollout = FakeRollout("1", works=True)  # serves 1 although the journal says the rollout is done
    run = RetrainRun(settings(tmp_path, retrain_retry_wait_s=0), registry, rollout)  # type: ignore[arg-type]

    done = run.execute(journal.run_name)
    assert done.status == "promoted" and done.attempts == 2  # the first try found 1 served and rolled again
    assert registry.alias_moves == ["2"] and rollout.served == "2"
    assert done.rollout_note == "predictor serves 2; alias moved to it"
    assert store.read_watermark().watermark == done.plan.target_watermark  # type: ignore[union-attr]
