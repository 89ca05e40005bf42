"""The one registry client: URI parsing, and one download cache shared by ``crackseg eval`` and the predictor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.registry import ModelUri, Registry, RegistryError, parse_model_uri


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/crackseg/12", ModelUri("crackseg", version="12")),
        ("models:/crackseg@champion", ModelUri("crackseg", alias="champion")),
        ("models:/my.model-2/1", ModelUri("my.model-2", version="1")),
    ],
)
def test_model_uris_parse(uri: str, parsed: ModelUri) -> None:
    assert parse_model_uri(uri) == parsed


@pytest.mark.parametrize(
    "bad", ["models:/crackseg", "models:/crackseg/x", "models:/../etc@a", "models:/a/1/2", "runs:/abc/model"]
)
def test_bad_model_uris_say_which_forms_exist(bad: str) -> None:
    with pytest.raises(ValueError, match=r"models:/NAME/VERSION or models:/NAME@ALIAS"):
        parse_model_uri(bad)


@pytest.mark.integration
def test_eval_and_predictor_share_one_cache_layout(private_mlflow_server: str, tmp_path: Path) -> None:
    """Both download ``models:/crackseg/N`` into ``<cache>/crackseg/v<N>``: one copy, not two layouts."""
    import mlflow

    from ml.tracking import download_model
    from services.predictor.sources import resolve

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    (checkpoint / "config.json").write_text(json.dumps({"base_width": 4}))
    (checkpoint / "model.onnx").write_bytes(b"graph")  # what the lean predictor serves
    mlflow.set_tracking_uri(private_mlflow_server)
    mlflow.set_experiment("registry-client")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(checkpoint), artifact_path="model")
    registry = Registry(private_mlflow_server)
    assert registry.champion() is None  # no model yet: None, not an error
    version = registry.register(run.info.run_id, {"status": "candidate"}).version
    registry.set_champion(version)
    assert registry.resolve("models:/crackseg@champion").version == version

    cache = tmp_path / "cache"
    by_eval = download_model("models:/crackseg@champion", cache_dir=cache, tracking_uri=private_mlflow_server)
    by_predictor = resolve(f"models:/crackseg/{version}", cache_dir=cache, tracking_uri=private_mlflow_server)
    assert by_eval == by_predictor.path == cache / "crackseg" / f"v{version}"
    assert sorted(p.name for p in (cache / "crackseg").iterdir()) == [f"v{version}"]
    assert (by_eval / "model.safetensors").read_bytes() == b"weights"
    assert (by_eval / "model.onnx").read_bytes() == b"graph"  # the cache keeps every file of the version

    with pytest.raises(RegistryError, match="no such alias"):
        registry.resolve("models:/crackseg@nobody")
