"""First start: make sure the registry has a ``champion``, and that it is a model allowed to serve.

Only a version that passed the promotion gate (tag ``status=promoted``) or the shipped starter model may get the
alias: a registry that holds only rejected or unjudged versions gets the starter registered (again) instead.
"""

from __future__ import annotations

from pathlib import Path

import tenacity

from ml.config import ModelConfig, read_config
from ml.registry import MODEL_NAME, Registry, RegistryError

PROMOTED = "promoted"  # the status tag of a version that passed the gate (services/retrain/run.py)


def ensure_champion(tracking_uri: str, starter_dir: Path, retries: int = 5) -> str:
    """Return the champion's version; set the alias when it is missing (see the module docstring).

    Idempotent: an existing alias is left alone.
    """
    retrying = tenacity.Retrying(  # a just-started MLflow server may still refuse the first calls
        stop=tenacity.stop_after_attempt(retries),
        wait=tenacity.wait_exponential(multiplier=1, max=10),
        retry=tenacity.retry_if_exception_type(RegistryError),
        reraise=True,
    )
    return retrying(_ensure, Registry(tracking_uri), starter_dir)


def _ensure(registry: Registry, starter_dir: Path) -> str:
    champion = registry.champion()
    if champion is not None:
        return champion.version
    promoted = [v for v in registry.versions() if v.tags.get("status") == PROMOTED]
    version = promoted[-1].version if promoted else _register_starter(registry, starter_dir)
    registry.set_champion(version)
    return version


def _register_starter(registry: Registry, starter_dir: Path) -> str:
    config = read_config(starter_dir)  # fails loudly when the starter model is missing
    run_id = _log_starter(registry.uri, starter_dir, config)
    registry.ensure_model(description="Attention U-Net crack segmentation")
    tags = {
        "dataset_hash": config.dataset_hash or "synthetic",
        "git_commit": config.git_commit or "unknown",
        "parent_version": "",
        "feedback_count": "0",
        "status": PROMOTED,
        "origin": "shipped",
        # Its validation metrics (val_*) and any evaluation numbers in its config; the first retraining run adds
        # the champion's evaluation on the fixed set (services/retrain/run.py).
        **{k: f"{v:.4f}" for k, v in config.metrics.items()},
    }
    return registry.register(run_id, tags).version


def _log_starter(tracking_uri: str, starter_dir: Path, config: ModelConfig) -> str:
    """An MLflow run holding the starter checkpoint as its ``model/`` artifact; returns the run id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"{MODEL_NAME}-bootstrap")
    with mlflow.start_run(run_name="starter-model") as run:
        mlflow.log_artifacts(str(starter_dir), artifact_path="model")
        mlflow.log_params(
            {"source": str(starter_dir), "base_width": config.base_width, "depth": config.depth}
        )
        if config.metrics:
            mlflow.log_metrics(config.metrics)
    return str(run.info.run_id)
