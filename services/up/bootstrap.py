"""First start: put the starter model into an empty registry as version 1, alias ``champion``."""

from __future__ import annotations

import time
from pathlib import Path

from ml.checkpoint import read_config

MODEL_NAME = "crackseg"
CHAMPION = "champion"


def ensure_champion(tracking_uri: str, starter_dir: Path, retries: int = 5) -> str:
    """Return the champion's version, registering ``starter_dir`` first when the registry has no versions.

    Idempotent: a registry that already has versions is left alone (a missing alias is set on the newest).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for attempt in range(retries):
        try:
            return _ensure(client, mlflow, tracking_uri, starter_dir)
        except MlflowException:
            if attempt == retries - 1:
                raise
            time.sleep(2 * (attempt + 1))
    raise AssertionError("unreachable")


def _ensure(client, mlflow, tracking_uri: str, starter_dir: Path) -> str:  # type: ignore[no-untyped-def]
    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    if versions:
        try:
            return str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
        except Exception:
            newest = max(versions, key=lambda v: int(v.version))
            client.set_registered_model_alias(MODEL_NAME, CHAMPION, newest.version)
            return str(newest.version)

    config = read_config(starter_dir)  # fails loudly when the starter model is missing
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("crackseg-bootstrap")
    with mlflow.start_run(run_name="starter-model") as run:
        mlflow.log_artifacts(str(starter_dir), artifact_path="model")
        mlflow.log_params(
            {"source": "models/starter", "base_width": config.base_width, "depth": config.depth}
        )
        if config.metrics:
            mlflow.log_metrics(config.metrics)
    if not any(m.name == MODEL_NAME for m in client.search_registered_models()):
        client.create_registered_model(MODEL_NAME, description="Attention U-Net crack segmentation")
    tags = {
        "dataset_hash": config.dataset_hash or "synthetic",
        "git_commit": config.git_commit or "unknown",
        "parent_version": "",
        "feedback_count": "0",
        "status": "promoted",
        **{k: str(v) for k, v in config.metrics.items() if k in ("f1_ods", "f1_at_0_5")},
    }
    version = client.create_model_version(
        MODEL_NAME, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=tags
    )
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, version.version)
    return str(version.version)
