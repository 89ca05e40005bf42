"""The trigger: threshold, labelled vs unlabelled, dry-run JSON, one run under racing triggers, stale locks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.feedback import FeedbackStore, Watermark
from services.retrain.executors import LocalSubprocessExecutor
from services.retrain.journal import RunJournal, save_journal
from services.retrain.plan import RUN_NAME_RE, make_plan
from services.retrain.trigger import decide
from tests.helpers.procs import BIN, REPO

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def fill(store: FeedbackStore, labelled: int, unlabelled: int = 0, start: int = 0) -> None:
    for i in range(start, start + labelled):
        if i % 2:
            store.save(
                f"img{i}".encode(),
                "png",
                4,
                4,
                mask_png=b"m",
                verdict="missed_cracks",
                now=T0 + timedelta(minutes=i),
            )
        else:  # a "correct" verdict on a stored prediction is a label too
            store.save(
                f"img{i}".encode(),
                "png",
                4,
                4,
                predicted_png=b"p",
                verdict="correct",
                now=T0 + timedelta(minutes=i),
            )
    for i in range(start, start + unlabelled):
        store.save(f"unl{i}".encode(), "jpg", 4, 4, verdict="false_cracks", now=T0 + timedelta(minutes=i))


def sleeper(launches: Path, seconds: float) -> list[str]:
    """A stand-in for ``crackseg retrain run``: records its launch, holds the inherited lock, sleeps."""
    code = (
        f"import sys, time; open({str(launches)!r}, 'a').write(sys.argv[-1] + '\\n'); time.sleep({seconds})"
    )
    return [sys.executable, "-c", code]


def wait_idle(executor: LocalSubprocessExecutor, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while executor.active_runs():
        assert time.monotonic() < deadline, "the run never released its lock"
        time.sleep(0.05)


def test_plan_counts_labelled_only_and_freezes_the_target(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    fill(store, labelled=3, unlabelled=2)
    plan = make_plan(store)
    assert plan.labelled_count == 3
    assert plan.unlabelled_since_watermark == 2
    assert plan.target_watermark == T0 + timedelta(minutes=2)
    assert RUN_NAME_RE.match(plan.run_name)
    assert make_plan(store).run_name == plan.run_name  # deterministic
    store.write_watermark(Watermark(watermark=T0 + timedelta(minutes=1)))
    after = make_plan(store)
    assert after.labelled_count == 1 and after.run_name != plan.run_name
    fill(store, labelled=1, start=10)
    assert make_plan(store).run_name not in (plan.run_name, after.run_name)


def test_below_threshold_skips_and_launches_nothing(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=2, unlabelled=5)
    launches = tmp_path / "launches"
    executor = LocalSubprocessExecutor(
        store.root / "state" / "retrain", sleeper(launches, 0), tmp_path / "logs"
    )
    decision = decide(store, 3, executor)
    assert (decision.action, decision.reason) == ("skip", "below_threshold")
    assert decision.labelled_since_watermark == 2 and decision.unlabelled_since_watermark == 5
    assert not launches.exists()


def test_launch_then_already_running_then_finished_run_is_not_relaunched(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=3)
    launches = tmp_path / "launches"
    journal_dir = store.root / "state" / "retrain"
    executor = LocalSubprocessExecutor(journal_dir, sleeper(launches, 1.5), tmp_path / "logs")
    first = decide(store, 3, executor)
    assert (first.action, first.reason, first.created) == ("launch", "launched", True)
    second = decide(store, 3, executor)
    assert (second.reason, second.active_runs) == ("already_running", [first.run_name])
    wait_idle(executor)
    assert launches.read_text().split() == [first.run_name]
    # A finished (promoted or rejected) run with the same name is not started again.
    save_journal(journal_dir, RunJournal(run_name=first.run_name, plan=make_plan(store), status="rejected"))
    third = decide(store, 3, executor)
    assert (third.action, third.reason) == ("skip", "exists")
    assert "already finished: rejected" in third.detail
    assert launches.read_text().split() == [first.run_name]


def test_killed_run_leaves_no_stale_lock(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=3)
    launches = tmp_path / "launches"
    executor = LocalSubprocessExecutor(
        store.root / "state" / "retrain", sleeper(launches, 60), tmp_path / "logs"
    )
    first = decide(store, 3, executor)
    assert first.created and first.active_runs == []
    assert executor.active_runs() == [first.run_name]
    os.killpg(os.getpgid(_pid_of(store)), signal.SIGKILL)
    wait_idle(executor, timeout=10)
    again = decide(store, 3, executor)  # the dead run did not finish: launching it again resumes it
    assert again.created
    os.killpg(os.getpgid(_pid_of(store)), signal.SIGKILL)
    wait_idle(executor, timeout=10)


def _pid_of(store: FeedbackStore) -> int:
    return int(json.loads((store.root / "state" / "retrain" / "active.json").read_text())["pid"])


def _trigger_env(tmp_path: Path, launches: Path, seconds: float) -> dict[str, str]:
    return {
        **os.environ,
        "CRACKSEG_FEEDBACK_DIR": str(tmp_path / "fb"),
        "CRACKSEG_RETRAIN_THRESHOLD": "3",
        "CRACKSEG_EXECUTOR": "local",
        "CRACKSEG_RETRAIN_COMMAND": json.dumps(sleeper(launches, seconds)),
        "CRACKSEG_RETRAIN_LOG_DIR": str(tmp_path / "logs"),
    }


@pytest.mark.integration
def test_dry_run_prints_the_decision_as_json(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=4, unlabelled=1)
    launches = tmp_path / "launches"
    out = subprocess.run(
        [str(BIN / "crackseg"), "retrain", "trigger", "--dry-run"],
        env=_trigger_env(tmp_path, launches, 0),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    decision = json.loads(out.stdout)
    assert decision["action"] == "launch" and decision["reason"] == "dry_run" and decision["dry_run"] is True
    assert decision["labelled_since_watermark"] == 4 and decision["unlabelled_since_watermark"] == 1
    assert decision["run_name"] == make_plan(store).run_name
    assert decision["threshold"] == 3 and decision["executor"] == "local"
    assert not launches.exists()
    assert '"event": "trigger_decision"' in out.stderr  # the structured event


@pytest.mark.integration
def test_racing_triggers_start_exactly_one_run(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=3)
    launches = tmp_path / "launches"
    env = _trigger_env(tmp_path, launches, 4)
    procs = [
        subprocess.Popen(
            [str(BIN / "crackseg"), "retrain", "trigger"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    decisions = [
        json.loads(line)["reason"]
        for _, err in outputs
        for line in err.splitlines()
        if '"trigger_decision"' in line
    ]
    assert decisions.count("launched") == 1, decisions
    assert set(decisions) <= {"launched", "already_running", "exists"}
    executor = LocalSubprocessExecutor(store.root / "state" / "retrain", [], tmp_path / "logs")
    wait_idle(executor)
    assert launches.read_text().split() == [make_plan(store).run_name]


@pytest.mark.integration
def test_trigger_and_its_imports_stay_torch_free() -> None:
    code = (
        "import sys, services.cli, services.retrain.trigger, services.retrain.executors, services.retrain.kube, "
        "services.retrain.jobtemplate, services.retrain.rollout; "
        "bad = [m for m in ('torch', 'torchvision', 'mlflow', 'dvc') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


@pytest.mark.integration
def test_status_lists_the_journals(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb")
    fill(store, labelled=1)
    plan = make_plan(store)
    save_journal(
        store.root / "state" / "retrain", RunJournal(run_name=plan.run_name, plan=plan, status="rejected")
    )
    out = subprocess.run(
        [str(BIN / "crackseg"), "retrain", "status"],
        env={**os.environ, "CRACKSEG_FEEDBACK_DIR": str(store.root)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [journal] = json.loads(out.stdout)
    assert (journal["run_name"], journal["status"]) == (plan.run_name, "rejected")


@pytest.mark.integration
def test_run_with_a_malformed_name_is_a_clear_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CRACKSEG_FEEDBACK_DIR": str(tmp_path),
        "CRACKSEG_BASE_DATA": str(tmp_path),
        "CRACKSEG_EVAL_DATA": str(tmp_path),
    }
    out = subprocess.run(
        [str(BIN / "crackseg"), "retrain", "run", "--name", "../etc"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "is not of the form crackseg-retrain-" in out.stderr
