"""MLflow's REST API without the mlflow package: retries, credentials, whole-or-nothing downloads, clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ml.mlflow_rest import MlflowRest, MlflowRestError, MlflowUnavailable, credentials
from ml.registry_common import RegistryError
from ml.registry_rest import RestRegistry


def _rest(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> MlflowRest:
    waits: list[float] = []
    rest = MlflowRest(
        "http://mlflow.test",
        transport=httpx.MockTransport(handler),
        sleep=waits.append,
        **kw,  # type: ignore[arg-type]
    )
    rest.waits = waits  # type: ignore[attr-defined]
    return rest


def test_only_http_servers() -> None:
    for uri in ("sqlite:///mlflow.db", "file:///tmp/mlruns", "/tmp/mlruns"):
        with pytest.raises(MlflowRestError, match="not an http"):
            MlflowRest(uri)


def test_credentials_follow_mlflows_variables() -> None:
    assert credentials({"MLFLOW_TRACKING_TOKEN": "t"}) == ({"Authorization": "Bearer t"}, None)
    assert credentials({"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"}) == ({}, ("u", "p"))
    assert credentials({"MLFLOW_TRACKING_USERNAME": "u"}) == ({}, None)
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={})

    _rest(handler, token="secret").get_json("/x", {})
    assert seen == ["Bearer secret"]


def test_retries_then_says_the_server_is_down() -> None:
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503, text="starting")
        return httpx.Response(200, json={"ok": True})

    rest = _rest(flaky, retries=3, backoff=0.5)
    assert rest.get_json("/x", {}) == {"ok": True}
    assert rest.waits == [0.5, 1.0]  # type: ignore[attr-defined]

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    rest = _rest(down, retries=2)
    with pytest.raises(MlflowUnavailable, match=r"mlflow.test is not reachable \(is it running\?\)"):
        rest.get_json("/x", {})
    assert len(rest.waits) == 2  # type: ignore[attr-defined]


def test_refusals_carry_mlflows_error_code_and_are_not_retried() -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"error_code": "INVALID_PARAMETER_VALUE", "message": "no alias x"})

    with pytest.raises(MlflowRestError, match="no alias x") as info:
        _rest(refuse).get_json("/x", {})
    assert info.value.code == "INVALID_PARAMETER_VALUE" and info.value.status == 400 and len(calls) == 1


def test_a_broken_download_leaves_no_file(tmp_path: Path) -> None:
    class Broken(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield b"half of it"
            raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Broken())

    with pytest.raises(MlflowUnavailable, match="broke off"):
        _rest(handler).download("/f", {"path": "model.onnx"}, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []

    def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST"})

    assert _rest(missing).download("/f", {}, tmp_path / "x", missing_ok=True) is False
    assert list(tmp_path.iterdir()) == []


def _registry(routes: dict[str, Callable[[httpx.Request], httpx.Response]]) -> tuple[RestRegistry, list[str]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        for prefix, answer in routes.items():
            if request.url.path.startswith(prefix):
                return answer(request)
        return httpx.Response(404, json={"error_code": "ENDPOINT_NOT_FOUND"})

    rest = MlflowRest("http://mlflow.test", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    return RestRegistry("http://mlflow.test", rest=rest), seen


def test_missing_alias_or_model_is_none_not_an_error() -> None:
    registry, _ = _registry(
        {
            "/api/2.0/mlflow/registered-models/alias": lambda r: httpx.Response(
                400, json={"error_code": "INVALID_PARAMETER_VALUE", "message": "alias not found"}
            )
        }
    )
    assert registry.champion() is None
    with pytest.raises(RegistryError, match="no such alias"):
        registry.resolve("models:/crackseg@champion")


def test_a_version_without_config_is_refused_by_name(tmp_path: Path) -> None:
    registry, _ = _registry(
        {
            "/model-versions/get-artifact": lambda r: httpx.Response(404, json={"error_code": "NOT_FOUND"}),
        }
    )
    with pytest.raises(RegistryError, match=r"version 3 of crackseg has no config.json"):
        registry.cached("3", tmp_path / "cache")
    assert not (tmp_path / "cache" / "crackseg" / "v3").exists()


def test_a_version_with_nothing_to_serve_is_refused(tmp_path: Path) -> None:
    def artifact(request: httpx.Request) -> httpx.Response:
        if request.url.params["path"] == "config.json":
            return httpx.Response(200, content=b"{}")
        return httpx.Response(404, json={"error_code": "RESOURCE_DOES_NOT_EXIST"})

    registry, _ = _registry({"/model-versions/get-artifact": artifact})
    with pytest.raises(RegistryError, match=r"neither model\.onnx nor model\.safetensors"):
        registry.cached("3", tmp_path / "cache")
    assert not (tmp_path / "cache" / "crackseg" / "v3").exists()


@pytest.mark.parametrize(
    ("artifact_uri", "upload_prefix"),
    [
        ("mlflow-artifacts:/1/abc/artifacts", "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model/"),
        (
            "mlflow-artifacts://mlflow:5000/1/abc/artifacts",
            "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model/",
        ),
    ],
)
def test_a_folder_is_uploaded_through_the_artifact_proxy(
    tmp_path: Path, artifact_uri: str, upload_prefix: str
) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.onnx").write_bytes(b"graph")
    uploads: dict[str, bytes] = {}
    batches: list[dict[str, object]] = []

    def upload(request: httpx.Request) -> httpx.Response:
        uploads[request.url.path] = request.content
        return httpx.Response(200, json={})

    def batch(request: httpx.Request) -> httpx.Response:
        batches.append(json.loads(request.content))
        return httpx.Response(200, json={})

    registry, seen = _registry(
        {
            "/api/2.0/mlflow/experiments/get-by-name": lambda r: httpx.Response(
                200, json={"experiment": {"experiment_id": "1"}}
            ),
            "/api/2.0/mlflow/runs/create": lambda r: httpx.Response(
                200, json={"run": {"info": {"run_id": "abc", "artifact_uri": artifact_uri}}}
            ),
            "/api/2.0/mlflow-artifacts/artifacts/": upload,
            "/api/2.0/mlflow/runs/log-batch": batch,
            "/api/2.0/mlflow/runs/update": lambda r: httpx.Response(200, json={}),
        }
    )
    run_id, source = registry.log_folder(tmp_path, "exp", "starter", {"depth": "4"}, {"val_f1": 0.5})
    assert (run_id, source) == ("abc", f"{artifact_uri}/model")
    assert uploads == {upload_prefix + "config.json": b"{}", upload_prefix + "model.onnx": b"graph"}
    assert batches[0]["params"] == [{"key": "depth", "value": "4"}]
    assert seen[-1] == "POST /api/2.0/mlflow/runs/update"


def test_a_server_that_does_not_proxy_artifacts_is_named(tmp_path: Path) -> None:
    registry, _ = _registry(
        {
            "/api/2.0/mlflow/experiments/get-by-name": lambda r: httpx.Response(
                200, json={"experiment": {"experiment_id": "1"}}
            ),
            "/api/2.0/mlflow/runs/create": lambda r: httpx.Response(
                200, json={"run": {"info": {"run_id": "abc", "artifact_uri": "/srv/mlruns/1/abc/artifacts"}}}
            ),
        }
    )
    with pytest.raises(RegistryError, match="--serve-artifacts"):
        registry.log_folder(tmp_path, "exp", "starter", {}, {})
