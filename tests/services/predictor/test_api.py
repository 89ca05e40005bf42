"""The API in-process (TestClient) with a tiny real model: every endpoint and the accepted odd inputs."""

from __future__ import annotations

import base64
import io
import json
import struct

import numpy as np
import pytest
from PIL import Image

from services.common.feedback import FeedbackStore
from tests.services.predictor.corpus import animated_gif
from tests.services.predictor.samples import jpeg_bytes, make_tiny_model, png_bytes


def _decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_ping_reports_ready_and_version(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/ping").json() == {
        "status": "ok",
        "ready": True,
        "model_version": "1",
        "runtime": "onnx",
        "threads": 1,
    }


def test_predict_json(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    body = client.post("/predict", files={"file": ("a.jpg", jpeg, "image/jpeg")}).json()
    assert (body["width"], body["height"], body["model_version"], body["threshold"]) == (96, 64, "1", 0.5)
    mask = _decode_png(base64.b64decode(body["mask_png"]))
    assert mask.shape == (64, 96) and set(np.unique(mask)) <= {0, 255}
    # The original fields stay; the per-crack and calibrated fields are tested in test_inspector_api.py.
    assert {
        "crack_ratio",
        "skeleton_length_px",
        "max_width_px",
        "mean_width_px",
        "n_segments",
        "severity",
    } <= set(body["statistics"])
    assert body["inference_ms"] > 0


def test_predict_png_and_overlay(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    png = client.post("/predict?format=png", files={"file": ("a", jpeg)})
    assert png.headers["content-type"] == "image/png" and _decode_png(png.content).shape == (64, 96)
    overlay = client.post("/predict?format=overlay", files={"file": ("a", jpeg)})
    assert overlay.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(overlay.content)).size == (96, 64)


def _exif_rotated_jpeg() -> bytes:
    img = Image.fromarray(np.zeros((40, 100, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° CW on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _encoded(mode: str, fmt: str = "PNG") -> bytes:
    arr = np.random.default_rng(0).integers(0, 255, (30, 50, 4), dtype=np.uint8)
    base = Image.fromarray(arr, "RGBA")
    if mode == "I;16":
        img = Image.fromarray(arr[..., 0].astype(np.uint16) * 257)
    elif mode == "P":
        img = base.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        img = base if mode == "RGBA" else base.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "size"),
    [
        ("rgba", _encoded("RGBA"), (50, 30)),
        ("grayscale", _encoded("L"), (50, 30)),
        ("palette", _encoded("P"), (50, 30)),
        ("cmyk-jpeg", _encoded("CMYK", "JPEG"), (50, 30)),
        ("16-bit", _encoded("I;16"), (50, 30)),
        ("animated-gif", animated_gif(), (40, 30)),
        ("exif-rotated", _exif_rotated_jpeg(), (40, 100)),
        ("tiff", _encoded("L", "TIFF"), (50, 30)),
        ("webp", _encoded("RGBA", "WEBP"), (50, 30)),
    ],
)
def test_odd_but_valid_images_are_normalised(client, name: str, data: bytes, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/predict", files={"file": ("whatever.bin", data, "application/octet-stream")})
    assert r.status_code == 200, r.text
    assert (r.json()["width"], r.json()["height"]) == size


def test_v1_predict(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    b64 = base64.b64encode(jpeg).decode()
    r = client.post(
        "/v1/models/crackseg:predict", json={"instances": [{"b64": b64}, {"image_bytes": {"b64": b64}}]}
    )
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 2 and preds[0]["mask_png"] == preds[1]["mask_png"]


def test_v2_json_base64(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    payload = {
        "inputs": [
            {"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(jpeg).decode()]}
        ]
    }
    r = client.post("/v2/models/crackseg/infer", json=payload)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["mask"]["datatype"] == "UINT8" and out["mask"]["shape"] == [1, 64, 96]
    assert set(out["mask"]["data"]) <= {0, 1}
    assert json.loads(out["statistics"]["data"][0])["severity"] in {"none", "low", "medium", "high"}
    assert r.json()["model_version"] == "1"


def test_v2_binary_extension_with_raw_jpeg(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    # The wire format a V2 client produces with binary_data=True (4-byte length prefix per BYTES element).
    tensor = struct.pack("<I", len(jpeg)) + jpeg
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(tensor)},
                }
            ],
            "outputs": [{"name": "mask", "parameters": {"binary_data": True}}],
        }
    ).encode()
    r = client.post(
        "/v2/models/crackseg/infer",
        content=header + tensor,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    meta = json.loads(r.content[:n])
    mask = np.frombuffer(r.content[n:], dtype=np.uint8).reshape(meta["outputs"][0]["shape"])
    assert mask.shape == (1, 64, 96)


def test_v2_metadata_and_health(client) -> None:  # type: ignore[no-untyped-def]
    meta = client.get("/v2/models/crackseg").json()
    assert meta["versions"] == ["1"] and meta["inputs"][0]["datatype"] == "BYTES"
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/crackseg/ready").json() == {"name": "crackseg", "ready": True}
    assert client.get("/v2/models/other").status_code == 404


def test_save_for_retrain_with_mask_and_dedup(client, settings, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    mask = np.zeros((64, 96), dtype=np.uint8)
    mask[30, 10:80] = 1  # 0/1 masks are accepted and stored as 0/255
    first = client.post(
        "/save-for-retrain",
        files={"file": ("a.jpg", jpeg, "image/jpeg"), "mask": ("m.png", png_bytes(mask), "image/png")},
        data={"verdict": "missed_cracks", "comment": "crack on the left"},
    ).json()
    assert first["deduplicated"] is False and first["labelled"] is True and first["stats"]["total"] == 1
    second = client.post(
        "/save-for-retrain", files={"file": ("b.jpg", jpeg)}, data={"verdict": "false_cracks"}
    ).json()
    assert second["id"] == first["id"] and second["deduplicated"] is True
    store = FeedbackStore(settings.feedback_dir)
    record = store.get(first["id"])
    assert record is not None and record.verdict == "false_cracks" and record.model_version == "1"
    assert record.history[0].verdict == "missed_cracks"
    (mask_file,) = (store.root / "masks").glob(f"{first['id']}-*.png")  # the first save's, content-addressed
    stored_mask = _decode_png(mask_file.read_bytes())
    assert set(np.unique(stored_mask)) == {0, 255}
    assert store.path(record.image_file).read_bytes() == jpeg
    assert client.get("/v1/feedback/stats").json()["by_verdict"]["false_cracks"] == 1
    assert 'crackseg_feedback_received_total{verdict="false_cracks"} 1.0' in client.get("/metrics").text


def test_write_endpoints_need_the_token(model, settings, tmp_path, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from services.predictor.app import create_app

    secured = settings.model_copy(update={"api_token": SecretStr("s3cret")})
    with TestClient(create_app(model, secured), raise_server_exceptions=False) as c:
        assert c.post("/save-for-retrain", files={"file": ("a", jpeg)}).status_code == 401
        bad = c.post(
            "/save-for-retrain", files={"file": ("a", jpeg)}, headers={"Authorization": "Bearer nope"}
        )
        assert bad.status_code == 401 and bad.json() == {"error": "the bearer token is wrong"}
        assert c.post("/v2/repository/models/crackseg/load", json={}).status_code == 401
        ok = c.post(
            "/save-for-retrain", files={"file": ("a", jpeg)}, headers={"Authorization": "Bearer s3cret"}
        )
        assert ok.status_code == 200
        assert c.post("/predict", files={"file": ("a", jpeg)}).status_code == 200  # reads stay open


def test_load_by_version_from_models_dir_and_by_path(client, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_tiny_model(settings.models_dir / "v2", seed=1)
    r = client.post("/v2/repository/models/crackseg/load", json={"version": "2"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "2"
    assert client.get("/ping").json()["model_version"] == "2"
    assert client.get("/v2/models/crackseg").json()["versions"] == ["2"]
    assert 'crackseg_model_info{version="2"} 1.0' in client.get("/metrics").text
    other = make_tiny_model(tmp_path / "elsewhere", version="5", seed=2)
    assert (
        client.post("/v2/repository/models/crackseg/load", json={"path": str(other)}).json()["version"] == "5"
    )
    assert client.post("/v2/repository/models/crackseg/unload").status_code == 400
    assert client.get("/v2/health/ready").status_code == 200


def test_metrics_names(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    client.post("/predict", files={"file": ("a", jpeg)})
    text = client.get("/metrics").text
    for name in (
        "crackseg_model_info",
        "crackseg_inference_seconds_bucket",
        "crackseg_predicted_crack_ratio_bucket",
        "crackseg_model_loaded",
        "crackseg_feedback_labelled_since_watermark",
        "crackseg_retrain_threshold",
        "crackseg_retrain_runs",
        "crackseg_last_retrain_timestamp_seconds",
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "request_predict_seconds",
    ):
        assert name in text, name


def test_tiled_path_through_the_api(client) -> None:  # type: ignore[no-untyped-def]
    # tile_size is 256 in these settings: a 600×400 image goes through the tiles.
    r = client.post("/predict", files={"file": ("a", jpeg_bytes(600, 400))})
    assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == (600, 400)


def test_streamed_body_over_the_limit_is_413(client) -> None:  # type: ignore[no-untyped-def]
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(30):
            yield b"\x00" * 100_000  # 3 MB without a Content-Length header; the limit is 2 MB

    r = client.post("/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_serve_command_reports_a_bad_model_source(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from services.cli import app

    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "nope"), "--port", "1"])
    assert result.exit_code == 2
    assert "does not exist" in result.output
