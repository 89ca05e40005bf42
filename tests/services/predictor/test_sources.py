"""Model sources from a real MLflow registry: ``models:/crackseg/N`` and ``models:/crackseg@champion``."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.predictor.errors import ModelSourceError
from services.predictor.sources import resolve, resolve_directory, resolve_version
from tests.services.predictor.samples import make_tiny_model


def test_directory_versions(tmp_path: Path) -> None:
    assert resolve_directory(make_tiny_model(tmp_path / "v7")).version == "7"
    assert resolve_directory(make_tiny_model(tmp_path / "x", version="3")).version == "3"
    assert resolve_directory(tmp_path / "x", version="9").version == "9"
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_directory(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="not a model directory"):
        resolve_directory(tmp_path / "empty")


@pytest.mark.parametrize(
    "uri", ["models:/crackseg", "models:/crackseg/x", "models:/../etc@a", "models:/a/1/2"]
)
def test_bad_registry_uris(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="bad model URI"):
        resolve(uri, cache_dir=tmp_path, tracking_uri="http://127.0.0.1:9")


@pytest.mark.integration
def test_registry_sources_download_into_the_cache(mlflow_server: str, tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from services.predictor.model import CracksegModel
    from services.predictor.settings import Settings

    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("predictor-sources")
    checkpoint = make_tiny_model(tmp_path / "ckpt")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(checkpoint), artifact_path="model")
    client = MlflowClient(mlflow_server)
    # MLflow 3's register_model wants a logged model; the checkpoint is plain artifacts, so register the folder.
    if not client.search_registered_models(filter_string="name = 'crackseg'"):
        client.create_registered_model("crackseg")
    version = client.create_model_version(
        "crackseg", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    ).version
    client.set_registered_model_alias("crackseg", "champion", version)

    cache = tmp_path / "cache"
    by_number = resolve(f"models:/crackseg/{version}", cache_dir=cache, tracking_uri=mlflow_server)
    assert by_number.version == str(version)
    assert (by_number.path / "model.safetensors").read_bytes() == (
        checkpoint / "model.safetensors"
    ).read_bytes()
    by_alias = resolve("models:/crackseg@champion", cache_dir=cache, tracking_uri=mlflow_server)
    assert by_alias.path == by_number.path and by_alias.version == str(version)
    # A version missing from $CRACKSEG_MODELS_DIR falls back to the registry.
    assert resolve_version(str(version), tmp_path / "models", cache, mlflow_server).path == by_number.path
    with pytest.raises(ModelSourceError, match="cannot resolve"):
        resolve("models:/crackseg@nobody", cache_dir=cache, tracking_uri=mlflow_server)

    settings = Settings(
        model_source="models:/crackseg@champion",
        mlflow_tracking_uri=mlflow_server,
        model_cache_dir=cache,
        feedback_dir=tmp_path / "fb",
    )
    model = CracksegModel(settings)
    assert model.load() is True and model.served.version == str(version)
    model.stop()
