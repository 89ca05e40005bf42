"""Runtime, threads, admission control, CPU work off the event loop, and refusing bad models on a hot swap."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services.predictor.samples import jpeg_bytes, make_tiny_model

LOAD = "/v2/repository/models/crackseg/load"


def test_metadata_names_the_runtime_and_threads(client) -> None:  # type: ignore[no-untyped-def]
    params = client.get("/v2/models/crackseg").json()["parameters"]
    assert (params["runtime"], params["threads"], params["device"]) == ("onnx", 1, "cpu")
    assert params["tile_overlap"] >= params["receptive_field"]
    assert client.get("/v2/models/crackseg").json()["platform"] == "onnxruntime_onnx"


def test_threads_follow_the_cpu_limit(settings) -> None:  # type: ignore[no-untyped-def]
    from services.predictor.model import CracksegModel

    model = CracksegModel(settings.model_copy(update={"threads": None, "cpu_limit": 1}))
    try:
        assert model.threads == 1
    finally:
        model.stop()


def test_the_torch_runtime_when_asked(settings, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from services.predictor.app import create_app
    from services.predictor.model import CracksegModel

    settings = settings.model_copy(update={"runtime": "torch"})
    model = CracksegModel(settings)
    model.load()
    try:
        with TestClient(create_app(model, settings)) as c:
            assert c.get("/ping").json()["runtime"] == "torch"
            assert c.post("/predict", files={"file": ("a.jpg", jpeg)}).status_code == 200
    finally:
        model.stop()


def _broken(tmp_path: Path, source: Path, how: str) -> Path:
    bad = tmp_path / f"bad-{how}"
    shutil.copytree(source, bad)
    if how == "onnx":
        (bad / "model.onnx").write_bytes(b"garbage")
    elif how == "config":
        (bad / "config.json").write_text("{not json")
    elif how == "depth":
        config = json.loads((bad / "config.json").read_text())
        (bad / "config.json").write_text(json.dumps({**config, "depth": 9}))
    return bad


@pytest.mark.parametrize(
    ("how", "says"), [("onnx", "model.onnx"), ("config", "config.json"), ("depth", "depth")]
)
def test_a_bad_model_is_refused_with_422_and_the_old_one_keeps_serving(
    client, settings, tmp_path: Path, jpeg: bytes, how: str, says: str
) -> None:  # type: ignore[no-untyped-def]
    bad = _broken(tmp_path, Path(settings.model_source), how)
    r = client.post(LOAD, json={"path": str(bad)})
    assert r.status_code == 422, r.text
    assert says in r.json()["error"]
    assert client.get("/ping").json()["model_version"] == "1"
    assert client.post("/predict", files={"file": ("a.jpg", jpeg)}).json()["model_version"] == "1"


def test_a_tile_overlap_under_the_receptive_field_is_refused(settings) -> None:  # type: ignore[no-untyped-def]
    from services.predictor.errors import ModelSourceError
    from services.predictor.model import CracksegModel

    model = CracksegModel(settings.model_copy(update={"tile_overlap": 16}))
    try:
        with pytest.raises(ModelSourceError, match="tile overlap 16 is too small"):
            model.load()
    finally:
        model.stop()


def test_settings_refuse_an_overlap_of_half_the_tile(tiny_model_dir: Path) -> None:
    from pydantic import ValidationError

    from services.predictor.settings import Settings

    with pytest.raises(ValidationError, match="less than half of tile_size"):
        Settings(model_source=str(tiny_model_dir), tile_size=256, tile_overlap=128)


def test_cpu_work_never_runs_on_the_event_loop(client, jpeg: bytes, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import base64

    from services.predictor import decode, model, render, routes, stats, v2binary

    seen: dict[str, set[str]] = {}

    def spy(module: Any, name: str) -> None:
        real = getattr(module, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen.setdefault(name, set()).add(threading.current_thread().name)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)

    for module, name in [
        (routes, "decode_image"),
        (model, "decode_image"),
        (render, "mask_png"),
        (render, "overlay_jpeg"),
        (model, "encode_png"),
        (model, "crack_statistics"),
        (v2binary, "parse_json"),
    ]:
        spy(module, name)
    del decode, stats
    b64 = base64.b64encode(jpeg).decode()
    assert client.post("/predict", files={"file": ("a.jpg", jpeg)}).status_code == 200
    assert client.post("/predict?format=overlay", files={"file": ("a.jpg", jpeg)}).status_code == 200
    assert client.post("/v1/models/crackseg:predict", json={"instances": [{"b64": b64}]}).status_code == 200
    v2 = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64]}]}
    assert client.post("/v2/models/crackseg/infer", json=v2).status_code == 200
    assert set(seen) == {
        "decode_image",
        "mask_png",
        "overlay_jpeg",
        "encode_png",
        "crack_statistics",
        "parse_json",
    }
    threads = set().union(*seen.values())
    assert all(t.startswith("crackseg-work") for t in threads), threads


def test_requests_over_the_in_flight_limit_get_503_before_their_body_is_read(model, settings) -> None:  # type: ignore[no-untyped-def]
    from services.predictor.app import create_app

    settings = settings.model_copy(update={"max_inflight": 1, "retry_after_s": 3})
    app = create_app(model, settings)
    release = asyncio.Event()
    entered = asyncio.Event()
    real_segment = model.segment

    async def slow_segment(image: Any, *args: Any) -> Any:
        entered.set()
        await release.wait()
        return await real_segment(image, *args)

    model.segment = slow_segment  # type: ignore[method-assign]
    body_reads = 0

    async def counting_body() -> Any:
        nonlocal body_reads
        body_reads += 1
        yield jpeg_bytes()

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            first = asyncio.create_task(c.post("/predict", files={"file": ("a.jpg", jpeg_bytes())}))
            await asyncio.wait_for(entered.wait(), timeout=60)
            reads_before = body_reads
            shed = await c.post(
                "/v2/models/crackseg/infer",
                content=counting_body(),
                headers={"content-type": "application/json"},
            )
            ping = await c.get("/ping")
            release.set()
            return await asyncio.wait_for(first, timeout=60), shed, ping, body_reads - reads_before

    try:
        first, shed, ping, reads = asyncio.run(scenario())
    finally:
        model.segment = real_segment  # type: ignore[method-assign]
    assert first.status_code == 200
    assert shed.status_code == 503 and shed.headers["retry-after"] == "3"
    assert "busy" in shed.json()["error"]
    assert reads == 0  # shed before the body was read
    assert ping.status_code == 200  # health is never shed
    assert app.state.admission.in_flight == 0


def test_a_swap_to_a_model_without_onnx_falls_back_to_torch(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = make_tiny_model(tmp_path / "v7", version="7")
    (other / "model.onnx").unlink()
    r = client.post(LOAD, json={"path": str(other)})
    assert r.status_code == 200 and r.json()["version"] == "7"
    assert client.get("/ping").json()["runtime"] == "torch"
