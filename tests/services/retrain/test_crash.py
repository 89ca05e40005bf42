"""Crash consistency: a crash after each pipeline step leaves a consistent state, and a rerun finishes the job.

In-process runs crash through the injection hook (``CRACKSEG_RETRAIN_FAIL_AT=<step>`` raises ``InjectedCrash``, a
``BaseException`` that bypasses every clean-up, like a kill); one test kills a real ``crackseg retrain run`` process
with SIGKILL (``<step>:kill``). The hook fires after the step's side effects and before its journal entry: the
worst moment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml.registry import Registry
from services.common.feedback import FeedbackStore
from services.retrain.errors import GaveUpError, InjectedCrash
from services.retrain.journal import load_journal
from services.retrain.modelstore import verify_export
from services.retrain.plan import make_plan
from services.retrain.rollout import HttpRollout
from services.retrain.run import STEPS, RetrainRun
from services.retrain.settings import RunSettings
from services.retrain.trigger import grant_attempts
from tests.helpers.procs import REPO
from tests.services.retrain.conftest import Champion, LoopData, Predictor, run_env, served_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def labelled_store(root: Path, samples: Path, indices: range) -> FeedbackStore:
    store = FeedbackStore(root)
    for i in indices:
        store.save(
            (samples / "images" / f"synth_{i:05d}.png").read_bytes(),
            "png",
            64,
            64,
            mask_png=(samples / "masks" / f"synth_{i:05d}.png").read_bytes(),
            verdict="missed_cracks",
        )
    return store


def settings_for(
    tmp_path: Path, loop_data: LoopData, champion: Champion, predictor: Predictor
) -> RunSettings:
    return RunSettings(
        feedback_dir=tmp_path / "feedback",
        models_dir=tmp_path / "models",
        base_data=loop_data.base,
        eval_data=loop_data.eval,
        eval_split="",
        dvc_remote=tmp_path / "dvc-storage",
        retrain_work_dir=tmp_path / "work",
        retrain_params=loop_data.params,
        retrain_tolerance=1.0,
        retrain_retry_wait_s=0,
        retrain_min_gain=-1.0,
        rollout="http",
        predictor_url=predictor.url,
        mlflow_tracking_uri=champion.tracking_uri,
    )


def assert_finished(store: FeedbackStore, registry: Registry, predictor: Predictor, run_name: str) -> None:
    journal = load_journal(store.root / "state" / "retrain", run_name)
    assert journal is not None and journal.status == "promoted" and journal.completed == list(STEPS)
    version = journal.challenger_version
    assert registry.champion().version == version  # type: ignore[union-attr]
    assert served_version(predictor.url) == version
    watermark = store.read_watermark()
    assert watermark is not None and watermark.watermark == journal.plan.target_watermark
    assert [v.version for v in registry.versions() if v.tags.get("retrain_run") == run_name] == [version]
    assert [r.outcome for r in store.retrain_runs() if r.run == run_name] == ["promoted"]


@pytest.mark.parametrize("step", STEPS)
def test_crash_after_each_step_is_consistent_and_a_rerun_finishes(
    step: str, predictor: Predictor, champion: Champion, loop_data: LoopData, tmp_path: Path
) -> None:
    store = labelled_store(tmp_path / "feedback", loop_data.feedback_samples, range(2))
    settings = settings_for(tmp_path, loop_data, champion, predictor)
    registry = Registry(champion.tracking_uri)
    rollout = HttpRollout(predictor.url, None, settings.models_dir, timeout_s=60)
    before = registry.champion()
    assert before is not None
    served_before = served_version(predictor.url)

    run_name = make_plan(store).run_name  # the name the trigger would pass (the Job's CRACKSEG_RUN_NAME)
    crashing = settings.model_copy(update={"retrain_fail_at": step})
    with pytest.raises(InjectedCrash):
        RetrainRun(crashing, registry, rollout).execute()

    journal = load_journal(store.root / "state" / "retrain", run_name)
    assert journal is not None and journal.status == "running"
    assert journal.completed == list(STEPS[: STEPS.index(step)])
    champion_now = registry.champion().version  # type: ignore[union-attr]
    if STEPS.index(step) < STEPS.index("promote"):
        assert champion_now == before.version  # no alias moved before the weights were exported
    else:
        assert champion_now == journal.challenger_version
        assert verify_export(settings.models_dir / f"v{champion_now}")  # the alias is on verified weights
    if STEPS.index(step) < STEPS.index("rollout"):
        assert served_version(predictor.url) == served_before
    watermark = store.read_watermark()
    if step == "watermark":
        assert watermark is not None and watermark.watermark == journal.plan.target_watermark
    else:
        assert watermark is None  # no watermark without a finished promotion

    RetrainRun(settings, registry, rollout).execute(run_name)
    assert_finished(store, registry, predictor, run_name)
    assert load_journal(store.root / "state" / "retrain", run_name).attempts == 2  # type: ignore[union-attr]


def test_kill_9_of_a_real_run_process_then_rerun(
    predictor: Predictor, champion: Champion, loop_data: LoopData, tmp_path: Path
) -> None:
    store = labelled_store(tmp_path / "feedback", loop_data.feedback_samples, range(4, 6))
    run_name = make_plan(store).run_name
    env = run_env(
        loop_data,
        champion,
        predictor,
        tmp_path,
        CRACKSEG_FEEDBACK_DIR=str(store.root),
        CRACKSEG_RETRAIN_TOLERANCE="1.0",
        CRACKSEG_RETRAIN_MIN_GAIN="-1",
    )
    before = Registry(champion.tracking_uri).champion()
    command = [sys.executable, "-m", "services.cli", "retrain", "run", "--name", run_name]
    killed = subprocess.run(
        command,
        env={**env, "CRACKSEG_RETRAIN_FAIL_AT": "export:kill"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    journal = load_journal(store.root / "state" / "retrain", run_name)
    assert journal is not None and journal.completed == list(STEPS[: STEPS.index("export")])
    registry = Registry(champion.tracking_uri)
    assert registry.champion().version == before.version  # type: ignore[union-attr]
    rerun = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_finished(store, registry, predictor, run_name)


def test_run_refuses_to_start_while_another_holds_the_lock(
    predictor: Predictor, champion: Champion, loop_data: LoopData, tmp_path: Path
) -> None:
    from services.retrain.errors import AlreadyRunningError
    from services.retrain.executors import run_lock

    store = labelled_store(tmp_path / "feedback", loop_data.feedback_samples, range(2))
    settings = settings_for(tmp_path, loop_data, champion, predictor)
    os.environ.pop("CRACKSEG_RETRAIN_LOCK_FD", None)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)",
            str(store.root / "state" / "retrain" / ".run.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    (store.root / "state" / "retrain").mkdir(parents=True, exist_ok=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(AlreadyRunningError),
            run_lock(settings.journal_dir, "crackseg-retrain-000000000000"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_rerun_in_a_fresh_pod_without_scratch_space(
    predictor: Predictor, champion: Champion, loop_data: LoopData, tmp_path: Path
) -> None:
    """On Kubernetes a retried Job pod gets a new emptyDir: only the journal (on the feedback PVC) survives."""
    import shutil

    store = labelled_store(tmp_path / "feedback", loop_data.feedback_samples, range(6, 8))
    settings = settings_for(tmp_path, loop_data, champion, predictor)
    registry = Registry(champion.tracking_uri)
    rollout = HttpRollout(predictor.url, None, settings.models_dir, timeout_s=60)
    run_name = make_plan(store).run_name
    with pytest.raises(InjectedCrash):
        RetrainRun(settings.model_copy(update={"retrain_fail_at": "register"}), registry, rollout).execute()
    shutil.rmtree(settings.retrain_work_dir)  # snapshot and trained weights are gone with the old pod
    RetrainRun(settings, registry, rollout).execute(run_name)
    assert_finished(store, registry, predictor, run_name)


def test_failed_rollout_leaves_alias_and_reverts_patch_and_a_retry_finishes(
    predictor: Predictor, champion: Champion, loop_data: LoopData, tmp_path: Path
) -> None:
    """Deployment mode against the fake API: the new pods never become available, on both tries."""
    from services.retrain.errors import RolloutTimeoutError
    from services.retrain.rollout import DeploymentRollout
    from tests.services.retrain.fakekube import FakeKube, complete_rollout, deployment, stuck_rollout

    store = labelled_store(tmp_path / "feedback", loop_data.feedback_samples, range(1, 3))
    settings = settings_for(tmp_path, loop_data, champion, predictor).model_copy(
        update={"rollout": "deployment", "retrain_max_attempts": 2}
    )
    registry = Registry(champion.tracking_uri)
    parent = registry.champion()
    assert parent is not None
    kube = FakeKube()
    kube.deployments["crackseg-predictor"] = deployment(version=parent.version)
    kube.on_get_deployment = stuck_rollout
    rollout = DeploymentRollout(kube, "crackseg-predictor", timeout_s=0.2, poll_s=0.02)
    run_name = make_plan(store).run_name
    with pytest.raises(RolloutTimeoutError, match="patch reverted"):
        RetrainRun(settings, registry, rollout).execute()

    journal = load_journal(store.root / "state" / "retrain", run_name)
    assert (
        journal is not None
        and journal.status == "failed"
        and "RolloutTimeoutError" in (journal.last_error or "")
    )
    assert journal.completed == list(STEPS[: STEPS.index("rollout")]) and journal.attempts == 2
    assert registry.champion().version == parent.version  # type: ignore[union-attr]
    assert journal.served_version == parent.version and "not moved" in (journal.rollout_note or "")
    tags = registry.get(journal.challenger_version or "").tags
    assert tags["status"] == "rollout-failed" and tags["rejection_reason"].startswith("rollout failed")
    assert store.read_watermark() is None
    assert [r.outcome for r in store.retrain_runs()] == ["failed"]
    env = kube.deployments["crackseg-predictor"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CRACKSEG_MODEL_VERSION", "value": parent.version} in env
    with pytest.raises(GaveUpError):
        RetrainRun(settings, registry, rollout).execute(run_name)

    kube.on_get_deployment = complete_rollout
    grant_attempts(settings.journal_dir, journal, 1)  # what `crackseg retrain retry` does before launching
    final = RetrainRun(settings, registry, rollout).execute(run_name)
    assert final.status == "promoted" and final.attempts == 3
    assert registry.champion().version == final.challenger_version  # type: ignore[union-attr]
    assert registry.get(final.challenger_version or "").tags["status"] == "promoted"
    assert kube.deployments["crackseg-predictor"]["spec"]["template"]["metadata"]["annotations"] == {
        "crackseg.io/model-version": final.challenger_version
    }
    assert store.read_watermark().watermark == final.plan.target_watermark  # type: ignore[union-attr]
    # Leave the shared registry as the predictor of this module serves it.
    registry.set_champion(parent.version)
