"""Configuration of the trigger, the retraining run and the rollouts, from ``CRACKSEG_*`` variables.

The names follow docs/contracts.md; the ones only this component reads start with ``CRACKSEG_RETRAIN_``. Settings
are built when a command runs (``*Settings()`` in cli.py), never at import time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.names import RETRAIN_THRESHOLD


class CommonSettings(BaseSettings):
    """What every retraining command needs: where the feedback lives and how to reach Kubernetes."""

    # populate_by_name: code and tests may pass fields by name even where the variable has another name.
    model_config = SettingsConfigDict(
        env_prefix="CRACKSEG_", extra="ignore", protected_namespaces=(), populate_by_name=True
    )

    feedback_dir: Path = Path("state/feedback")
    namespace: str | None = Field(None, description="Kubernetes namespace; in-cluster: the service account's")
    kubeconfig: Path | None = Field(
        None, description="kubeconfig file outside a cluster (default: ~/.kube/config)"
    )
    kube_context: str | None = None
    kube_retries: int = Field(3, ge=0, le=10)
    kube_timeout_s: float = Field(30.0, gt=0)
    # Tries of one retraining run (in-process retries and restarts after a crash together); then it waits for
    # new feedback or `crackseg retrain retry`, which grants this many again.
    retrain_max_attempts: int = Field(3, ge=1, le=20)

    @property
    def journal_dir(self) -> Path:
        """Run journals and the local run lock live beside the feedback (a PVC in Kubernetes), so they persist."""
        return self.feedback_dir / "state" / "retrain"


class TriggerSettings(CommonSettings):
    """The trigger (CronJob): threshold, executor, Job template."""

    retrain_threshold: int = Field(RETRAIN_THRESHOLD, ge=1)
    executor: Literal["local", "kubernetes"] = "local"
    job_template: Path = Path("/etc/crackseg/job-template.yaml")
    # The local executor runs this command line with ``--name <run>`` appended.
    retrain_command: list[str] = Field(
        default_factory=lambda: [sys.executable, "-m", "services.cli", "retrain", "run"]
    )
    retrain_log_dir: Path = Path("state/logs")


class RolloutSettings(CommonSettings):
    """How the promoted model reaches the predictor, and where promoted models are exported."""

    rollout: Literal["http", "deployment", "inferenceservice", "none"] = "http"
    predictor_url: str = Field(
        "http://127.0.0.1:8000", validation_alias=AliasChoices("CRACKSEG_PREDICTOR_URL", "PREDICTOR_URL")
    )
    predictor_name: str = "crackseg-predictor"
    predictor_container: str | None = Field(None, description="container to patch (default: the first one)")
    storage_uri_template: str = Field(
        "pvc://crackseg-models/v{version}", description="InferenceService storageUri; {version} is filled in"
    )
    api_token: SecretStr | None = None
    rollout_timeout_s: float = Field(300.0, gt=0)
    rollout_poll_s: float = Field(2.0, gt=0)
    models_dir: Path = Path("state/models")
    mlflow_tracking_uri: str = Field(
        "http://127.0.0.1:5000",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CRACKSEG_MLFLOW_TRACKING_URI"),
    )

    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token else None


class RunSettings(RolloutSettings):
    """The retraining run (Job). ``base_data`` and ``eval_data`` have no default: they must be given."""

    base_data: Path
    eval_data: Path
    eval_split: str | None = Field(
        "test", description="split of eval_data; empty for a flat images/masks folder"
    )
    dvc_remote: Path = Path(".dvc_storage")
    retrain_work_dir: Path = Field(
        Path("state/retrain"), validation_alias=AliasChoices("CRACKSEG_RETRAIN_WORK_DIR", "CRACKSEG_WORK_DIR")
    )
    retrain_params: Path | None = Field(None, description="params.yaml with a `train` key (the budget)")
    retrain_init: Literal["champion", "scratch"] = "champion"
    # finetune: ml.finetune (the params file's `finetune:` section) from the champion; train: ml.train (`train:`).
    retrain_recipe: Literal["finetune", "train"] = "finetune"
    # The gate (services/retrain/promote.py). Base set: promote unless challenger < champion - tolerance; a
    # negative tolerance demands an improvement of that much (-1 can never be met: the tests force a rejection
    # with it). Held-back feedback: the challenger must beat the champion by more than min_gain.
    retrain_tolerance: float = Field(0.01, ge=-1.0, le=1.0, description="allowed metric drop on the base set")
    retrain_min_gain: float = Field(
        0.0, ge=-1.0, le=1.0, description="required gain on the held-back feedback"
    )
    retrain_holdout_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="feedback held back for the gate"
    )
    retrain_holdout_seed: int = 0
    # f1_at_threshold: F1 at each model's served threshold (no judging set tunes a threshold); f1_ods picks the
    # best threshold on the judging set itself.
    retrain_metric: Literal["f1_at_threshold", "f1_ods", "f1_at_0_5", "ois", "iou", "dice"] = (
        "f1_at_threshold"
    )
    retrain_run_name: str | None = Field(
        None, validation_alias=AliasChoices("CRACKSEG_RUN_NAME", "CRACKSEG_RETRAIN_RUN_NAME")
    )
    # Inside a cluster the run labels its Job crackseg.io/outcome (needs `patch` on jobs; best effort).
    retrain_label_job: bool = Field(default_factory=lambda: "KUBERNETES_SERVICE_HOST" in os.environ)
    # Wait before the n-th in-process retry: retry_wait_s * 2**(n-1), at most retry_wait_max_s (tenacity).
    retrain_retry_wait_s: float = Field(30.0, ge=0)
    retrain_retry_wait_max_s: float = Field(600.0, ge=0)
    # Failure injection for the crash-consistency tests: "<step>" or "<step>:kill" (see run.STEPS).
    retrain_fail_at: str | None = None
    git_commit: str | None = Field(None, validation_alias=AliasChoices("CRACKSEG_GIT_COMMIT", "GIT_COMMIT"))
