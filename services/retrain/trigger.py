"""The trigger (the CronJob's program): count labelled feedback, launch one retraining run at the threshold.

Never imports torch (it runs in a small image): only the feedback store, the executors and the Kubernetes wrapper.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from services.common.feedback import FeedbackStore
from services.retrain import events
from services.retrain.executors import Executor, KubernetesJobExecutor, LocalSubprocessExecutor
from services.retrain.plan import make_plan
from services.retrain.settings import TriggerSettings

Reason = Literal["below_threshold", "already_running", "launched", "exists", "dry_run"]


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
            reason="launched" if result.created else "exists",
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
