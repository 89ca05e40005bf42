"""First start: make sure the registry has a ``champion``, and that it is a model allowed to serve.

Only a version that passed the promotion gate (tag ``status=promoted``) or the shipped starter model may get the
alias: a registry that holds only rejected or unjudged versions gets the starter registered (again) instead.

It talks to the MLflow server over REST (:class:`ml.registry_rest.RestRegistry`), so it runs in the lean
predictor image's init container, which has no mlflow package; the server must be an http(s) URL.
"""

from __future__ import annotations

from pathlib import Path

import tenacity

from ml.config import read_config
from ml.names import MODEL_NAME
from ml.registry_common import RegistryError
from ml.registry_rest import RestRegistry

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
    registry = RestRegistry(tracking_uri)
    try:
        return retrying(_ensure, registry, starter_dir)
    finally:
        registry.close()


def _ensure(registry: RestRegistry, starter_dir: Path) -> str:
    champion = registry.champion()
    if champion is not None:
        return champion.version
    promoted = [v for v in registry.versions() if v.tags.get("status") == PROMOTED]
    version = promoted[-1].version if promoted else _register_starter(registry, starter_dir)
    registry.set_champion(version)
    return version


def _register_starter(registry: RestRegistry, starter_dir: Path) -> str:
    config = read_config(starter_dir)  # fails loudly when the starter model is missing
    run_id, source = registry.log_folder(
        starter_dir,
        experiment=f"{MODEL_NAME}-bootstrap",
        run_name="starter-model",
        params={"source": str(starter_dir), "base_width": str(config.base_width), "depth": str(config.depth)},
        metrics=dict(config.metrics),
    )
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
    return registry.register(run_id, source, tags).version
