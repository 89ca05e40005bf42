"""The trigger (the CronJob's program): count labelled feedback, launch one retraining run at the threshold.

Never imports torch (it runs in a small image): only the feedback store, the executors and the Kubernetes wrapper.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from services.common.feedback import FeedbackStore
from services.retrain import events
from services.retrain.errors import AlreadyRunningError, ConfigError
from services.retrain.executors import (
    Executor,
    KubernetesJobExecutor,
    LaunchResult,
    LocalSubprocessExecutor,
)
from services.retrain.journal import RunJournal, load_journal, save_journal
from services.retrain.plan import make_plan, validate_run_name
from services.retrain.settings import TriggerSettings

Reason = Literal["below_threshold", "already_running", "launched", "exists", "gave_up", "dry_run"]
REASON_OF_OUTCOME: dict[str, Reason] = {
    "launched": "launched",
    "exists": "exists",
    "in_progress": "already_running",
    "gave_up": "gave_up",
}


class TriggerDecision(BaseModel):
    """What the trigger decided and why (``--dry-run`` prints exactly this as JSON)."""

    action: Literal["launch", "skip"]
    reason: Reason
    detail: str
    run_name: str
    labelled_since_watermark: int
    unlabelled_since_watermark: int
    threshold: int
    watermark: datetime | None
    active_runs: list[str]
    executor: str
    dry_run: bool
    created: bool | None = None


def decide(
    store: FeedbackStore, threshold: int, executor: Executor, *, dry_run: bool = False
) -> TriggerDecision:
    """Count, compare with the threshold, check for a run in progress, and launch (unless ``dry_run``)."""
    plan = make_plan(store)
    common = {
        "run_name": plan.run_name,
        "labelled_since_watermark": plan.labelled_count,
        "unlabelled_since_watermark": plan.unlabelled_since_watermark,
        "threshold": threshold,
        "watermark": plan.watermark,
        "executor": executor.name,
        "dry_run": dry_run,
    }
    if plan.labelled_count < threshold:
        decision = TriggerDecision(
            action="skip",
            reason="below_threshold",
            detail=f"{plan.labelled_count} labelled since the watermark, threshold {threshold}",
            active_runs=[],
            **common,
        )
    elif active := executor.active_runs():
        decision = TriggerDecision(
            action="skip",
            reason="already_running",
            detail=f"retraining already running: {', '.join(active)}",
            active_runs=active,
            **common,
        )
    elif dry_run:
        decision = TriggerDecision(
            action="launch", reason="dry_run", detail="would launch", active_runs=[], **common
        )
    else:
        result = executor.launch(plan)
        decision = TriggerDecision(
            action="launch" if result.created else "skip",
            reason=REASON_OF_OUTCOME[result.outcome],
            detail=result.detail,
            active_runs=[],
            created=result.created,
            **common,
        )
    events.emit("trigger_decision", **decision.model_dump(mode="json"))
    return decision


def build_executor(settings: TriggerSettings) -> Executor:
    """The executor named by ``CRACKSEG_EXECUTOR`` (kubernetes needs the chart's Job template)."""
    if settings.executor == "kubernetes":
        from services.retrain.jobtemplate import load_template
        from services.retrain.kube import KubeClient, KubeConfig

        template = load_template(settings.job_template)
        return KubernetesJobExecutor(KubeClient(KubeConfig.from_settings(settings)), template)
    return LocalSubprocessExecutor(settings.journal_dir, settings.retrain_command, settings.retrain_log_dir)


def retry(settings: TriggerSettings, executor: Executor, run_name: str | None = None) -> LaunchResult:
    """``crackseg retrain retry``: grant a failed run ``retrain_max_attempts`` more tries and launch it.

    Without ``run_name``, the most recently written journal of an unfinished run. The run resumes after its last
    completed step and follows its frozen plan.
    """
    journal = _retry_target(settings, run_name)
    if journal.run_name in executor.active_runs():
        raise AlreadyRunningError(f"run {journal.run_name} is in progress; nothing to retry")
    grant_attempts(settings.journal_dir, journal, settings.retrain_max_attempts)
    return executor.launch(journal.plan)


def grant_attempts(journal_dir: Path, journal: RunJournal, attempts: int) -> None:
    """Allow ``attempts`` more tries of an unfinished run (journalled, so the trigger sees it too)."""
    journal.attempt_budget = journal.attempts + attempts
    save_journal(journal_dir, journal)
    events.emit("retry_granted", run=journal.run_name, attempt_budget=journal.attempt_budget)


def _retry_target(settings: TriggerSettings, run_name: str | None) -> RunJournal:
    if run_name is not None:
        journal = load_journal(settings.journal_dir, validate_run_name(run_name))
        if journal is None:
            raise ConfigError(f"no journal for run {run_name} in {settings.journal_dir}")
    else:
        paths = sorted(settings.journal_dir.glob("crackseg-retrain-*.json"), key=lambda p: p.stat().st_mtime)
        journals = [load_journal(settings.journal_dir, p.stem) for p in paths]
        unfinished = [j for j in journals if j is not None and not j.finished]
        if not unfinished:
            raise ConfigError(f"no unfinished run to retry in {settings.journal_dir}")
        journal = unfinished[-1]
    if journal.finished:
        raise ConfigError(f"run {journal.run_name} already finished: {journal.status}")
    return journal
