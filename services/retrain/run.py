"""The retraining run (the Job's program): snapshot → train → evaluate → register/gate → export → roll →
promote → advance the watermark. Every step is idempotent and recorded in the run journal before the next starts.

Crash consistency (kill -9 anywhere):
* the ``champion`` alias only ever points at a version whose weights were exported and verified, and only after
  the predictor confirmed that it serves that version (rollout precedes promote); a failed rollout leaves the
  alias where it was, and the journal says what the predictor serves (``served_version``, ``rollout_note``);
* the watermark moves only after that promotion (it is the last step), and only to the newest labelled record
  the run trained on;
* a rerun with the same name resumes after the last journalled step and follows the frozen plan; a step cut short
  is simply redone (the snapshot is rebuilt, a version already registered for the run is found by its
  ``retrain_run`` tag, an export already verified is reused, the rollout and alias are set again to the same
  values).

Failures are retried in-process with exponential backoff (tenacity), resuming each time; once the journal's
attempt budget is spent the run is recorded ``failed`` and is not started again, by the trigger or by a rerun,
until new feedback plans a new run or ``crackseg retrain retry`` grants more attempts.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ml.registry import Registry
from services.common.feedback import FeedbackStore, RetrainOutcome, Watermark
from services.retrain import events
from services.retrain.attempts import inject, retrying
from services.retrain.errors import ConfigError, GaveUpError, KubeError, RolloutError
from services.retrain.executors import run_lock
from services.retrain.journal import RunJournal, load_journal, save_journal
from services.retrain.kube import Kube
from services.retrain.modelstore import export_version
from services.retrain.plan import make_plan, validate_run_name
from services.retrain.recipe import decide, metric_tags
from services.retrain.rollout import Rollout
from services.retrain.settings import RunSettings

STEPS = ("snapshot", "train", "evaluate", "register", "export", "rollout", "promote", "watermark")


class RetrainRun:
    """One run of the pipeline; construct it with real collaborators (``registry``, ``rollout``) and ``execute``."""

    def __init__(
        self, settings: RunSettings, registry: Registry, rollout: Rollout | None, kube: Kube | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.rollout = rollout
        self.kube = kube  # set inside a cluster: the run labels its own Job with the outcome
        self.store = FeedbackStore(settings.feedback_dir)
        self.journal_dir = settings.journal_dir
        self.work = settings.retrain_work_dir
        self.sleep: Callable[[float], None] = time.sleep  # the backoff between retries; tests swap it

    # -- orchestration -----------------------------------------------------------------------------------------
    def execute(self, run_name: str | None = None) -> RunJournal:
        """Run (or resume) the pipeline; returns the final journal. Raises on failure after journalling it."""
        name = run_name or self.settings.retrain_run_name or make_plan(self.store).run_name
        validate_run_name(name)
        try:
            self.work.mkdir(parents=True, exist_ok=True)
            self.journal_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"cannot create {e.filename}: {e.strerror}; point CRACKSEG_RETRAIN_WORK_DIR at writable scratch "
                "space (e.g. /tmp/retrain in a Job) and CRACKSEG_FEEDBACK_DIR at the feedback volume"
            ) from e
        with run_lock(self.journal_dir, name):
            journal = self._open_journal(name)
            if journal.finished:
                events.emit("run_already_finished", run=name, status=journal.status)
                return journal
            if journal.gave_up:
                raise GaveUpError(journal.refusal() or name)
            try:
                retrying(
                    journal,
                    self.settings.retrain_retry_wait_s,
                    self.settings.retrain_retry_wait_max_s,
                    self.sleep,
                )(self._attempt, journal)
            except Exception as e:
                self._give_up(journal, e)
                raise
            return self._finish(journal)

    def _open_journal(self, name: str) -> RunJournal:
        """The run's journal; a new one freezes the plan that ``name`` stands for (never today's feedback)."""
        journal = load_journal(self.journal_dir, name)
        if journal is not None:
            return journal
        plan = make_plan(self.store, name)
        if not plan.items:
            raise ConfigError("no labelled feedback newer than the watermark: nothing to retrain on")
        champion = self.registry.champion()
        return RunJournal(
            run_name=name,
            plan=plan,
            parent_version=champion.version if champion else None,
            attempt_budget=self.settings.retrain_max_attempts,
        )

    def _attempt(self, journal: RunJournal) -> None:
        """One try: the steps not yet journalled, in order; a failure is journalled before it propagates."""
        journal.attempts += 1
        journal.status = "running"
        self._save(journal)
        events.emit(
            "run_started",
            run=journal.run_name,
            attempt=journal.attempts,
            of=journal.attempt_budget,
            resume_after=journal.completed[-1:],
            labelled=journal.plan.labelled_count,
            parent_version=journal.parent_version,
        )
        try:
            for step in STEPS:
                if journal.done(step):
                    continue
                events.emit("step_started", run=journal.run_name, step=step)
                getattr(self, f"_{step}")(journal)
                if journal.status == "rejected":
                    return
                inject(self.settings.retrain_fail_at, step, STEPS)
                journal.completed.append(step)
                self._save(journal)
        except Exception as e:
            journal.status = "failed"
            journal.last_error = f"{type(e).__name__}: {e}"
            self._save(journal)
            events.emit(
                "attempt_failed", run=journal.run_name, attempt=journal.attempts, error=journal.last_error
            )
            raise

    def _give_up(self, journal: RunJournal, error: Exception) -> None:
        """Out of attempts (or a ConfigError): record the failure once; nothing restarts it on its own."""
        if journal.status != "failed":  # failed before any attempt started
            journal.status = "failed"
            journal.last_error = f"{type(error).__name__}: {error}"
        if isinstance(error, ConfigError):  # no try will pass before someone fixes it: `retry` after the fix
            journal.attempt_budget = journal.attempts
        self._save(journal)
        self._record(journal, "failed", reason=journal.last_error)
        events.emit("run_failed", run=journal.run_name, attempts=journal.attempts, error=journal.last_error)
        self._label_outcome(journal.run_name, "failed")

    def _finish(self, journal: RunJournal) -> RunJournal:
        if journal.status != "rejected":
            journal.status = "promoted"
        journal.finished_at = datetime.now(UTC)
        self._save(journal)
        if journal.snapshot_workspace:  # the data lives on in the DVC remote
            shutil.rmtree(journal.snapshot_workspace, ignore_errors=True)
        events.emit(
            "run_finished",
            run=journal.run_name,
            status=journal.status,
            version=journal.challenger_version,
            reason=journal.reason,
        )
        self._label_outcome(journal.run_name, journal.status)
        return journal

    def _label_outcome(self, run_name: str, outcome: str) -> None:
        """Label the run's Job ``crackseg.io/outcome`` so kube-state-metrics (``kube_job_labels``) exposes it.

        Best effort: the outcome is already in MLflow and the feedback store; a missing Job or RBAC verb is an
        event, not a failure of the run.
        """
        if self.kube is None:
            return
        try:
            # Each attempt of a run is its own Job; the chart passes this one's name (downward API).
            job = os.environ.get("CRACKSEG_JOB_NAME") or run_name
            self.kube.label_job(job, {"crackseg.io/outcome": outcome})
        except KubeError as e:
            events.emit("job_label_failed", run=run_name, outcome=outcome, error=str(e))

    def _save(self, journal: RunJournal) -> None:
        save_journal(self.journal_dir, journal)

    def _record(self, journal: RunJournal, outcome: str, reason: str | None = None) -> None:
        if any(r.run == journal.run_name and r.outcome == outcome for r in self.store.retrain_runs()):
            return  # a rerun after a crash between the record and the journal
        self.store.record_retrain(
            RetrainOutcome(
                run=journal.run_name,
                outcome=outcome,  # type: ignore[arg-type]
                started_at=journal.started_at,
                model_version=journal.challenger_version,
                reason=reason or journal.reason,
                metrics=journal.challenger_metrics,
            )
        )

    def _champion_dir(self, journal: RunJournal) -> Path | None:
        if journal.parent_version is None:
            return None
        return export_version(self.registry, journal.parent_version, self.settings.models_dir)

    def _challenger_dir(self, journal: RunJournal) -> Path:
        """The trained weights: the local folder, or (in a new pod after a crash) the copy the run logged."""
        assert journal.mlflow_run_id is not None
        if journal.challenger_dir is not None and (journal.challenger_dir / "config.json").is_file():
            return journal.challenger_dir
        target = self.work / "runs" / journal.run_name / "downloaded"
        shutil.rmtree(target, ignore_errors=True)
        journal.challenger_dir = self.registry.download_run_model(journal.mlflow_run_id, target)
        return journal.challenger_dir

    # -- steps -------------------------------------------------------------------------------------------------
    def _snapshot(self, journal: RunJournal) -> None:
        from services.retrain.snapshot import build_snapshot

        snap = build_snapshot(
            journal.plan, self.store, self.settings.base_data, self.work, self.settings.dvc_remote
        )
        journal.dataset_hash = snap.dataset_hash
        journal.snapshot_workspace = snap.workspace
        journal.snapshot_base = snap.base_dir
        journal.snapshot_feedback = snap.feedback_dir
        events.emit(
            "snapshot_pushed",
            run=journal.run_name,
            dataset_hash=snap.dataset_hash,
            feedback=snap.n_feedback,
            remote=str(snap.remote),
        )

    def _train(self, journal: RunJournal) -> None:
        from services.retrain.recipe import train_challenger

        if journal.snapshot_base is None or not journal.snapshot_base.is_dir():
            journal.completed = [s for s in journal.completed if s != "snapshot"]
            self._snapshot(journal)
        assert journal.snapshot_base is not None and journal.snapshot_feedback is not None
        init_from = self._champion_dir(journal) if self.settings.retrain_init == "champion" else None
        trained = train_challenger(
            self.settings,
            base=journal.snapshot_base,
            feedback=journal.snapshot_feedback,
            out_dir=self.work / "runs" / journal.run_name,
            init_from=init_from,
            tags={
                "run_name": journal.run_name,
                "retrain_run": journal.run_name,
                "dataset_hash": journal.dataset_hash or "",
                "parent_version": journal.parent_version or "none",
                "feedback_count": str(journal.plan.labelled_count),
            },
        )
        if trained.run_id is None:
            raise ConfigError("training ran without MLflow tracking; the loop needs MLFLOW_TRACKING_URI")
        journal.challenger_dir = trained.model_dir
        journal.mlflow_run_id = trained.run_id
        events.emit("challenger_trained", run=journal.run_name, mlflow_run=trained.run_id, **trained.summary)

    def _evaluate(self, journal: RunJournal) -> None:
        """Both models on the fixed base evaluation set and on the feedback held back from training."""
        from services.retrain.recipe import evaluate_pair, layout_feedback

        if journal.snapshot_feedback is None or not journal.snapshot_feedback.is_dir():
            self._snapshot(journal)  # a new pod after a crash: the same plan gives the same held-back photos
        assert journal.snapshot_feedback is not None
        _, holdout = layout_feedback(
            self.settings, journal.snapshot_feedback, self.work / "runs" / journal.run_name
        )
        journal.challenger_metrics, journal.champion_metrics = evaluate_pair(
            self.settings, self._challenger_dir(journal), self._champion_dir(journal), holdout
        )
        events.emit(
            "evaluated",
            run=journal.run_name,
            challenger=journal.challenger_metrics,
            champion=journal.champion_metrics,
        )

    def _register(self, journal: RunJournal) -> None:
        import json

        existing = self.registry.find_by_run(journal.run_name)
        metrics = journal.challenger_metrics
        assert journal.mlflow_run_id is not None
        config = json.loads((self._challenger_dir(journal) / "config.json").read_text())
        tags = {
            "retrain_run": journal.run_name,
            "dataset_hash": journal.dataset_hash or "",
            "git_commit": self.settings.git_commit or str(config.get("git_commit") or "unknown"),
            "parent_version": journal.parent_version or "none",
            "feedback_count": str(journal.plan.labelled_count),
            **metric_tags(metrics),
            "eval_data": str(self.settings.eval_data),
            "status": "candidate",
        }
        version = existing or self.registry.register(journal.mlflow_run_id, tags)
        self._tag_champion_metrics(journal)
        journal.challenger_version = version.version
        decision = decide(self.settings, journal.challenger_metrics, journal.champion_metrics)
        journal.promote, journal.reason = decision.promote, decision.reason
        self.registry.set_tags(version.version, decision.tags())
        events.emit("gate", run=journal.run_name, version=version.version, **decision.model_dump())
        if not decision.promote:
            self.registry.set_tags(
                version.version, {"status": "challenger-rejected", "rejection_reason": decision.reason}
            )
            journal.status = "rejected"
            self._record(journal, "rejected")

    def _tag_champion_metrics(self, journal: RunJournal) -> None:
        """A champion registered without evaluation numbers (the bootstrap) gets the ones this run measured."""
        if journal.parent_version is None or not journal.champion_metrics:
            return
        if "f1_ods" in self.registry.get(journal.parent_version).tags:
            return
        base = {
            k: v for k, v in metric_tags(journal.champion_metrics).items() if not k.startswith("feedback_")
        }
        tags = {**base, "eval_data": str(self.settings.eval_data)}
        self.registry.set_tags(journal.parent_version, tags)

    def _export(self, journal: RunJournal) -> None:
        assert journal.challenger_version is not None
        journal.exported_dir = export_version(
            self.registry, journal.challenger_version, self.settings.models_dir
        )

    def _rollout(self, journal: RunJournal) -> None:
        """Serve the challenger; on failure the rollout reverts itself and the alias has not moved."""
        assert journal.challenger_version is not None and journal.exported_dir is not None
        if self.rollout is None:
            return
        try:
            self.rollout.roll(journal.challenger_version, journal.exported_dir)
        except RolloutError as e:
            served = self._served()
            journal.served_version = served
            journal.rollout_note = (
                f"rollout of {journal.challenger_version} failed ({e}); the predictor serves {served or 'unknown'}; "
                f"alias {journal.parent_version or 'unset'} not moved"
            )
            self.registry.set_tags(
                journal.challenger_version,
                {"status": "rollout-failed", "rejection_reason": f"rollout failed: {e}"},
            )
            events.emit("rollout_failed", run=journal.run_name, served=served, note=journal.rollout_note)
            raise
        journal.served_version = journal.challenger_version

    def _served(self) -> str | None:
        assert self.rollout is not None
        try:
            return self.rollout.current()
        except (RolloutError, KubeError) as e:
            events.emit("served_version_unknown", error=str(e))
            return None

    def _promote(self, journal: RunJournal) -> None:
        """Move the alias, but only onto what the predictor confirms it serves (checked again on a resume)."""
        assert journal.challenger_version is not None
        if self.rollout is not None:
            served = self._served()
            if served != journal.challenger_version:
                journal.completed = [s for s in journal.completed if s != "rollout"]  # a retry rolls again
                journal.rollout_note = f"predictor serves {served or 'unknown'}, not {journal.challenger_version}: alias not moved"
                raise RolloutError(journal.rollout_note)
        self.registry.set_champion(journal.challenger_version)
        self.registry.set_tags(journal.challenger_version, {"status": "promoted"})
        journal.rollout_note = f"predictor serves {journal.challenger_version}; alias moved to it"
        events.emit(
            "promoted",
            run=journal.run_name,
            version=journal.challenger_version,
            parent_version=journal.parent_version,
        )

    def _watermark(self, journal: RunJournal) -> None:
        target = journal.plan.target_watermark
        assert target is not None
        current = self.store.read_watermark()
        if current is None or current.watermark < target:
            self.store.write_watermark(
                Watermark(watermark=target, run=journal.run_name, model_version=journal.challenger_version)
            )
        self._record(journal, "promoted")


def build_run(settings: RunSettings) -> RetrainRun:
    from services.retrain.rollout import build_rollout

    kube: Kube | None = None
    if settings.retrain_label_job:
        from services.retrain.kube import KubeClient, KubeConfig

        kube = KubeClient(KubeConfig.from_settings(settings))
    return RetrainRun(settings, Registry(settings.mlflow_tracking_uri), build_rollout(settings), kube)
