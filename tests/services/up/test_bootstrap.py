"""``crackseg up``'s registry bootstrap: only a version that passed the gate, or the starter, becomes champion."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.registry import Registry
from services.up.bootstrap import ensure_champion
from tests.helpers.procs import REPO

STARTER = REPO / "models" / "starter"
pytestmark = pytest.mark.integration


def _log_version(registry: Registry, tmp_path: Path, status: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_experiment("bootstrap-test")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(STARTER), artifact_path="model")
    return registry.register(run.info.run_id, {"status": status}).version


def test_bootstrap_never_makes_a_rejected_version_champion(
    private_mlflow_server: str, tmp_path: Path
) -> None:
    """Issue 14 item 3: the old bootstrap put the alias on the newest version, whatever the gate had said."""
    registry = Registry(private_mlflow_server)
    starter = ensure_champion(private_mlflow_server, STARTER)  # empty registry: the starter is version 1
    assert registry.get(starter).tags["origin"] == "shipped"
    assert ensure_champion(private_mlflow_server, STARTER) == starter  # idempotent

    promoted = _log_version(registry, tmp_path, "promoted")
    _log_version(registry, tmp_path, "challenger-rejected")
    _log_version(registry, tmp_path, "candidate")  # registered by `crackseg train`, never judged
    registry.set_champion(None)  # e.g. the alias was deleted by hand
    assert ensure_champion(private_mlflow_server, STARTER) == promoted

    registry.set_tags(promoted, {"status": "rolled-back"})
    registry.set_tags(starter, {"status": "rolled-back"})
    registry.set_champion(None)
    fresh = ensure_champion(private_mlflow_server, STARTER)  # nothing eligible: the shipped default again
    assert int(fresh) > 4 and registry.get(fresh).tags["origin"] == "shipped"
    assert registry.champion().version == fresh  # type: ignore[union-attr]


def test_bootstrap_champion_carries_its_metrics(private_mlflow_server: str) -> None:
    """Issue 11 item 9: the bootstrap version carries the starter's validation metrics as tags, and its run the
    starter's files, uploaded over REST (the predictor image that runs the bootstrap has no mlflow package)."""
    from mlflow import MlflowClient

    from ml.checkpoint import read_config

    version = ensure_champion(private_mlflow_server, STARTER)
    info = Registry(private_mlflow_server).get(version)
    assert info.tags["origin"] == "shipped"
    metrics = read_config(STARTER).metrics
    assert metrics, "the starter's config.json has validation metrics"
    for name, value in metrics.items():
        assert float(info.tags[name]) == pytest.approx(value, abs=1e-4)
    assert info.run_id is not None
    run = MlflowClient(private_mlflow_server).get_run(info.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == pytest.approx(metrics)
    uploaded = {
        f.path.rsplit("/", 1)[-1]
        for f in MlflowClient(private_mlflow_server).list_artifacts(info.run_id, "model")
    }
    assert uploaded == {p.name for p in STARTER.iterdir() if p.is_file()}


def test_bootstrap_needs_an_http_server(tmp_path: Path) -> None:
    from ml.registry_common import RegistryError

    with pytest.raises(RegistryError, match="not an http"):
        ensure_champion(f"sqlite:///{tmp_path / 'mlflow.db'}", STARTER)
