"""First start: put the starter model into an empty registry as version 1, alias ``champion``."""

from __future__ import annotations

import time
from pathlib import Path

from ml.checkpoint import ModelConfig, read_config
from ml.registry import MODEL_NAME, Registry, RegistryError


def ensure_champion(tracking_uri: str, starter_dir: Path, retries: int = 5) -> str:
    """Return the champion's version, registering ``starter_dir`` first when the registry has no versions.

    Idempotent: a registry that already has versions is left alone (a missing alias is set on the newest).
    """
    registry = Registry(tracking_uri)
    for attempt in range(retries):
        try:
            return _ensure(registry, starter_dir)
        except RegistryError:
            if attempt == retries - 1:
                raise
            time.sleep(2 * (attempt + 1))
    raise AssertionError("unreachable")


def _ensure(registry: Registry, starter_dir: Path) -> str:
    versions = registry.versions()
    if versions:
        champion = registry.champion()
        if champion is not None:
            return champion.version
        newest = versions[-1]
        registry.set_champion(newest.version)
        return newest.version

    config = read_config(starter_dir)  # fails loudly when the starter model is missing
    run_id = _log_starter(registry.uri, starter_dir, config)
    registry.ensure_model(description="Attention U-Net crack segmentation")
    tags = {
        "dataset_hash": config.dataset_hash or "synthetic",
        "git_commit": config.git_commit or "unknown",
        "parent_version": "",
        "feedback_count": "0",
        "status": "promoted",
        **{k: str(v) for k, v in config.metrics.items() if k in ("f1_ods", "f1_at_0_5")},
    }
    version = registry.register(run_id, tags).version
    registry.set_champion(version)
    return version


def _log_starter(tracking_uri: str, starter_dir: Path, config: ModelConfig) -> str:
    """An MLflow run holding the starter checkpoint as its ``model/`` artifact; returns the run id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"{MODEL_NAME}-bootstrap")
    with mlflow.start_run(run_name="starter-model") as run:
        mlflow.log_artifacts(str(starter_dir), artifact_path="model")
        mlflow.log_params(
            {"source": "models/starter", "base_width": config.base_width, "depth": config.depth}
        )
        if config.metrics:
            mlflow.log_metrics(config.metrics)
    return str(run.info.run_id)
