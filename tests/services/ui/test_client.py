"""The predictor client against a tiny real HTTP server on 127.0.0.1 answering in the contract's shapes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image

from services.common.crackstats import crack_statistics
from services.ui.client import (
    PredictorClient,
    PredictorError,
    PredictorRejected,
    PredictorUnavailable,
)
from services.ui.settings import UISettings
from tests.helpers.procs import free_port

TOKEN = "s3cret"


@dataclass
class Behaviour:
    """What the test server does next: fail N times with a status, answer slowly, or send a broken body."""

    fail_times: int = 0
    fail_status: int = 503
    delay_s: float = 0.0
    broken_body: bool = False
    hits: dict[str, int] = field(default_factory=dict)
    saved: list[dict[str, object]] = field(default_factory=list)


def stats_body(saved: list[dict[str, object]]) -> dict[str, object]:
    labelled = sum(bool(s["has_mask"]) for s in saved)
    return {
        "total": len(saved),
        "labelled": labelled,
        "unlabelled": len(saved) - labelled,
        "since_watermark": len(saved),
        "labelled_since_watermark": labelled,
        "by_verdict": {"correct": 0, "missed_cracks": labelled},
        "watermark": None,
        "threshold": 20,
        "last_retrain": {
            "run": "r1",
            "outcome": "promoted",
            "finished_at": "2026-11-27T10:00:00Z",
            "model_version": "2",
            "metrics": {"f1_ods": 0.66},
        },
    }


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def make_app(b: Behaviour) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def chaos(request: Request, call_next):  # type: ignore[no-untyped-def]
        b.hits[request.url.path] = b.hits.get(request.url.path, 0) + 1
        if b.delay_s:
            await asyncio.sleep(b.delay_s)  # a slow inference: the request is received, the answer is late
        if b.fail_times > 0:
            b.fail_times -= 1
            return JSONResponse({"error": "model is loading"}, status_code=b.fail_status)
        if b.broken_body:
            return JSONResponse({"status": "ok"})
        return await call_next(request)

    @app.get("/ping")
    def ping() -> dict[str, object]:
        return {"status": "ok", "ready": True, "model_version": "3"}

    @app.post("/predict")
    async def predict(file: UploadFile = File(...), probabilities: bool = False) -> JSONResponse:
        data = await file.read()
        try:
            gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
        except OSError:
            return JSONResponse({"error": f"cannot decode image {file.filename}"}, status_code=400)
        levels = (255 - gray).astype(np.uint8)
        mask = gray < 80
        return JSONResponse(
            {
                "mask_png": base64.b64encode(png(mask.astype(np.uint8) * 255)).decode(),
                "probability_png": base64.b64encode(png(levels)).decode() if probabilities else None,
                "width": gray.shape[1],
                "height": gray.shape[0],
                "threshold": 0.5,
                # The statistics of the real contract, computed by the code the predictor uses.
                "statistics": crack_statistics(mask).model_dump(),
                "inference_ms": 5.0,
                "model_version": "3",
                "content_type": file.content_type,
            }
        )

    @app.post("/save-for-retrain")
    async def save(
        request: Request,
        file: UploadFile = File(...),
        mask: UploadFile | None = File(None),
        verdict: str | None = Form(None),
        comment: str | None = Form(None),
        predicted: UploadFile | None = File(None),
        model_version: str | None = Form(None),
    ) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": "missing or bad bearer token"}, status_code=401)
        data = await file.read()
        entry: dict[str, object] = {
            "verdict": verdict, "comment": comment, "has_mask": mask is not None, "size": len(data)
        }  # fmt: skip
        if predicted is not None or model_version is not None:
            entry |= {
                "predicted": await predicted.read() if predicted else None,
                "model_version": model_version,
            }
        b.saved.append(entry)
        return JSONResponse(
            {
                "id": hashlib.sha256(data).hexdigest(),
                "deduplicated": False,
                "labelled": mask is not None,
                "stats": stats_body(b.saved),
            }
        )

    @app.get("/v1/feedback/stats")
    def stats() -> dict[str, object]:
        return stats_body(b.saved)

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    port = free_port()
    config = uvicorn.Config(make_app(behaviour), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            raise TimeoutError("test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", behaviour
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def behaviour(server: tuple[str, Behaviour]) -> Behaviour:
    b = server[1]
    b.fail_times, b.fail_status, b.delay_s, b.broken_body = 0, 503, 0.0, False
    b.hits.clear()
    b.saved.clear()
    return b


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(
    server: tuple[str, Behaviour], behaviour: Behaviour, sleeps: list[float]
) -> Iterator[PredictorClient]:
    c = PredictorClient(server[0], token=TOKEN, retries=2, backoff=0.1, read_timeout=2.0, sleep=sleeps.append)
    yield c
    c.close()


def jpeg(dark_rows: slice = slice(10, 14)) -> bytes:
    img = np.full((32, 48, 3), 200, np.uint8)
    img[dark_rows] = 20
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_ping_and_predict_parse_the_contract(client: PredictorClient) -> None:
    assert client.ping().model_version == "3"
    prediction = client.predict(jpeg(), "road.jpg")
    mask = np.asarray(Image.open(io.BytesIO(prediction.mask_png)))
    assert (prediction.width, prediction.height) == (48, 32) and mask.shape == (32, 48)
    assert mask[11].all() and not mask[0].any()
    assert prediction.statistics.severity == "low" and prediction.model_version == "3"
    assert prediction.statistics.n_segments == 1 and prediction.statistics.cracks[0].length_px == 48
    levels = np.asarray(Image.open(io.BytesIO(prediction.probability_png or b"")))
    assert levels.shape == (32, 48), "the UI asks for the probability map by default"
    assert client.predict(jpeg(), "road.jpg", probabilities=False).probability_png is None


def test_feedback_carries_the_shown_mask_and_its_version(
    client: PredictorClient, behaviour: Behaviour
) -> None:
    shown = png(np.zeros((32, 48), np.uint8))
    client.save_for_retrain(jpeg(), "road.jpg", verdict="correct", predicted_png=shown, model_version="3")
    assert behaviour.saved[0]["predicted"] == shown and behaviour.saved[0]["model_version"] == "3"
    with pytest.raises(ValueError, match="go together"):
        client.save_for_retrain(jpeg(), "road.jpg", verdict="correct", model_version="3")


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_write_is_never_repeated_after_it_may_have_reached_the_server(
    client: PredictorClient, behaviour: Behaviour, sleeps: list[float], status: int
) -> None:
    # A proxy's 502/503/504 can come after the predictor stored the label: repeating it would store it twice.
    behaviour.fail_times, behaviour.fail_status = 1, status
    with pytest.raises(PredictorUnavailable):
        client.save_for_retrain(jpeg(), "road.jpg", verdict="correct")
    assert behaviour.hits["/save-for-retrain"] == 1 and sleeps == []


def test_save_for_retrain_sends_mask_verdict_comment_and_token(
    client: PredictorClient, behaviour: Behaviour
) -> None:
    mask = io.BytesIO()
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(mask, format="PNG")
    result = client.save_for_retrain(
        jpeg(), "road.jpg", mask_png=mask.getvalue(), verdict="missed_cracks", comment="two cracks missed"
    )
    assert result.id == hashlib.sha256(jpeg()).hexdigest() and result.labelled
    assert result.stats.labelled_since_watermark == 1 and result.stats.threshold == 20
    assert result.stats.last_retrain is not None and result.stats.last_retrain.outcome == "promoted"
    assert behaviour.saved == [
        {"verdict": "missed_cracks", "comment": "two cracks missed", "has_mask": True, "size": len(jpeg())}
    ]
    assert client.feedback_stats().labelled == 1


def test_retries_503_with_exponential_backoff_then_succeeds(
    client: PredictorClient, behaviour: Behaviour, sleeps: list[float]
) -> None:
    behaviour.fail_times = 2
    assert client.ping().ready
    assert behaviour.hits["/ping"] == 3
    assert sleeps == pytest.approx([0.1, 0.2])


def test_gives_up_after_the_retries_with_a_plain_message(
    client: PredictorClient, behaviour: Behaviour, sleeps: list[float]
) -> None:
    behaviour.fail_times = 5
    with pytest.raises(PredictorUnavailable, match=r"not ready \(503\): model is loading") as info:
        client.feedback_stats()
    assert info.value.status == 503 and behaviour.hits["/v1/feedback/stats"] == 3 and len(sleeps) == 2


def test_4xx_is_not_retried_and_carries_the_server_error(
    client: PredictorClient, behaviour: Behaviour
) -> None:
    with pytest.raises(
        PredictorRejected, match=r"rejected the request \(400\): cannot decode image notes.png"
    ):
        client.predict(b"plain text", "notes.png")
    assert behaviour.hits["/predict"] == 1
    behaviour.fail_times, behaviour.fail_status = 1, 413
    with pytest.raises(PredictorRejected, match="too large"):
        client.predict(jpeg(), "huge.jpg")


def test_missing_token_is_explained(server: tuple[str, Behaviour], behaviour: Behaviour) -> None:
    anonymous = PredictorClient(server[0], retries=0)
    with pytest.raises(PredictorRejected, match="CRACKSEG_API_TOKEN") as info:
        anonymous.save_for_retrain(jpeg(), "road.jpg", verdict="correct")
    assert info.value.status == 401 and behaviour.saved == []


def test_read_timeout_is_retried_for_reads_but_not_for_writes(
    server: tuple[str, Behaviour], behaviour: Behaviour, sleeps: list[float]
) -> None:
    slow = PredictorClient(
        server[0], token=TOKEN, read_timeout=0.3, retries=1, backoff=0.01, sleep=sleeps.append
    )
    behaviour.delay_s = 0.8
    started = time.monotonic()
    with pytest.raises(PredictorUnavailable, match="did not answer in time"):
        slow.ping()
    assert behaviour.hits["/ping"] == 2 and sleeps == [0.01]
    assert time.monotonic() - started < 3.0
    with pytest.raises(PredictorUnavailable, match="did not answer in time"):
        slow.save_for_retrain(jpeg(), "road.jpg", verdict="other")
    assert behaviour.hits["/save-for-retrain"] == 1, "a write that may have landed is never repeated"
    slow.close()


def test_unreachable_predictor_is_reported_after_retries(sleeps: list[float]) -> None:
    port = free_port()  # nothing listens there
    down = PredictorClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.05, sleep=sleeps.append)
    with pytest.raises(PredictorUnavailable, match=rf"127.0.0.1:{port} is not reachable"):
        down.save_for_retrain(jpeg(), "road.jpg", verdict="correct")
    assert len(sleeps) == 2, "connection refused means nothing was stored: safe to retry even a write"


def test_an_answer_off_the_contract_is_a_clear_error(client: PredictorClient, behaviour: Behaviour) -> None:
    behaviour.broken_body = True
    with pytest.raises(PredictorError, match=r"does not match the API contract \(fields: .*ready"):
        client.ping()


def test_bad_arguments_fail_before_any_request(client: PredictorClient, behaviour: Behaviour) -> None:
    with pytest.raises(ValueError, match="empty"):
        client.predict(b"")
    with pytest.raises(ValueError, match="unknown verdict 'meh'"):
        client.save_for_retrain(jpeg(), verdict="meh")
    assert behaviour.hits == {}


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICTOR_URL", "http://predictor:8000/")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("CRACKSEG_API_TOKEN", "tok")
    monkeypatch.setenv("CRACKSEG_RETRIES", "4")
    settings = UISettings()
    assert settings.predictor_url == "http://predictor:8000"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    client = PredictorClient.from_settings(settings)
    assert client.retries == 4 and client._http.headers["authorization"] == "Bearer tok"
    monkeypatch.setenv("CRACKSEG_PREDICTOR_URL", "http://override:9000")
    assert UISettings().predictor_url == "http://override:9000"
    monkeypatch.setenv("CRACKSEG_PREDICTOR_URL", "predictor:8000")
    with pytest.raises(ValueError, match="not an http"):
        UISettings()
