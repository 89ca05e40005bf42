"""The original crackseg API and the V2 routes we serve ourselves; thin: model logic lives in ``model.py``."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from kserve.errors import ModelNotReady as KServeModelNotReady
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ml.names import MODEL_NAME
from services.common.feedback import VERDICTS, FeedbackStats
from services.predictor import metrics, render, sources, v2binary
from services.predictor.decode import decode_image, decode_mask
from services.predictor.deps import AuthDep, DataPlaneDep, ModelDep, SettingsDep, StoreDep
from services.predictor.errors import InvalidInput, NotFound
from services.predictor.stats import CrackStatistics, Surface

router = APIRouter()
MAX_COMMENT = 2000


class PingResponse(BaseModel):
    status: str
    ready: bool
    model_version: str | None
    runtime: str | None = Field(description="onnx or torch (None while loading)")
    threads: int = Field(description="intra-op threads of the inference runtime")


class PredictResponse(BaseModel):
    mask_png: str = Field(description="base64 PNG, 0 = background, 255 = crack")
    width: int
    height: int
    threshold: float
    statistics: CrackStatistics
    inference_ms: float
    model_version: str = Field(description="the model version that produced this mask")
    probability_png: str | None = Field(
        None, description="base64 8-bit PNG, round(p·255); only with ?probabilities=true"
    )


class SaveResponse(BaseModel):
    id: str
    deduplicated: bool
    labelled: bool
    stats: FeedbackStats


class LoadRequest(BaseModel):
    """Which model to load: a version number, a model directory or a ``models:/`` URI (one of them)."""

    model_config = ConfigDict(extra="forbid")
    version: str | int | None = None
    path: str | None = Field(None, max_length=4096)
    source: str | None = Field(None, max_length=4096)


class LoadResponse(BaseModel):
    name: str
    load: bool
    version: str
    source: str


def _check_model_name(model_name: str) -> None:
    if model_name != MODEL_NAME:
        raise NotFound(f"model {model_name!r} not found; this server serves {MODEL_NAME!r}")


@router.get("/ping", response_model=PingResponse, tags=["crackseg"])
async def ping(model: ModelDep) -> PingResponse:
    served = model.current
    runtime = model.describe()
    return PingResponse(
        status="ok" if served else "loading",
        ready=model.ready,
        model_version=served.version if served else None,
        runtime=runtime["runtime"],
        threads=runtime["threads"],
    )


@router.post(
    "/predict",
    response_model=PredictResponse,
    tags=["crackseg"],
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}},
)
async def predict(
    model: ModelDep,
    file: Annotated[UploadFile, File(description="the photo (JPEG, PNG, GIF, BMP, TIFF, WebP)")],
    format: Annotated[Literal["json", "png", "overlay"], Query(description="response format")] = "json",
    pixel_size_mm: Annotated[
        float | None, Query(gt=0, description="mm per pixel: statistics also in mm, severity by surface")
    ] = None,
    surface: Annotated[Surface, Query(description="severity rule when calibrated")] = "asphalt",
    probabilities: Annotated[
        bool, Query(description="JSON only: include the probability map as an 8-bit PNG")
    ] = False,
) -> Any:
    # Decoding and encoding run in worker threads too: the event loop only moves bytes, so /ping and health
    # checks answer quickly while inferences run.
    image = await model.offload(decode_image, await file.read(), model.limits)
    seg = await model.segment(image, pixel_size_mm, surface)
    headers = {"X-Model-Version": seg.model_version, "X-Inference-Ms": str(seg.inference_ms)}
    if format == "overlay":
        jpeg = await model.offload(render.overlay_jpeg, image.rgb, seg.mask)
        return Response(jpeg, media_type="image/jpeg", headers=headers)
    png = await model.offload(render.mask_png, seg.mask)
    if format == "png":
        return Response(png, media_type="image/png", headers=headers)
    prob_png = await model.offload(render.probability_png, seg.probabilities) if probabilities else None
    return PredictResponse(
        mask_png=base64.b64encode(png).decode("ascii"),
        width=image.width,
        height=image.height,
        threshold=seg.threshold,
        statistics=seg.statistics,
        inference_ms=seg.inference_ms,
        model_version=seg.model_version,
        probability_png=base64.b64encode(prob_png).decode("ascii") if prob_png else None,
    )


@router.post("/save-for-retrain", response_model=SaveResponse, tags=["crackseg"], dependencies=[AuthDep])
async def save_for_retrain(
    model: ModelDep,
    store: StoreDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="the photo")],
    mask: Annotated[
        UploadFile | None, File(description="corrected mask PNG, 0/255 or 0/1, same size")
    ] = None,
    verdict: Annotated[str | None, Form(description="correct | missed_cracks | false_cracks | other")] = None,
    comment: Annotated[str | None, Form(description="free text")] = None,
    predicted: Annotated[
        UploadFile | None, File(description="the mask the person saw (PNG, same size); with model_version")
    ] = None,
    model_version: Annotated[str | None, Form(max_length=200, description="the version that made it")] = None,
) -> SaveResponse:
    # Everything is validated before anything is written: a rejected request leaves the store untouched.
    if verdict is not None and verdict not in VERDICTS:
        raise InvalidInput(f"unknown verdict {verdict!r}; valid: {', '.join(VERDICTS)}", reason="bad_verdict")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise InvalidInput(f"the comment is {len(comment)} characters; the limit is {MAX_COMMENT}")
    if (predicted is None) != (model_version is None):
        raise InvalidInput("send predicted and model_version together (the mask shown and who made it)")
    data = await file.read()
    image = await model.offload(decode_image, data, model.limits)
    mask_png = None
    if mask is not None:
        corrected = await model.offload(
            decode_mask, await mask.read(), image.width, image.height, model.limits
        )
        mask_png = await model.offload(render.mask_png, corrected)
    if predicted is not None and model_version is not None:
        # The mask the person corrected, from the version that made it: a re-run could be another version.
        shown = await model.offload(
            decode_mask, await predicted.read(), image.width, image.height, model.limits
        )
        predicted_png, version = await model.offload(render.mask_png, shown), model_version
    else:
        seg = await model.segment(image)
        predicted_png, version = await model.offload(render.mask_png, seg.mask), seg.model_version
    record, dedup = await run_in_threadpool(
        lambda: store.save(
            data,
            image.ext,
            image.width,
            image.height,
            mask_png=mask_png,
            predicted_png=predicted_png,
            verdict=verdict,
            comment=comment,
            model_version=version,
        )
    )
    metrics.FEEDBACK_RECEIVED.labels(verdict=verdict or "none").inc()
    stats = await run_in_threadpool(store.stats, settings.retrain_threshold)
    return SaveResponse(id=record.id, deduplicated=dedup, labelled=record.labelled, stats=stats)


@router.get("/v1/feedback/stats", response_model=FeedbackStats, tags=["crackseg"])
async def feedback_stats(store: StoreDep, settings: SettingsDep) -> FeedbackStats:
    return await run_in_threadpool(store.stats, settings.retrain_threshold)


@router.get("/metrics", tags=["monitoring"], response_class=Response)
async def prometheus_metrics(store: StoreDep, settings: SettingsDep) -> Response:
    await run_in_threadpool(metrics.refresh_feedback_gauges, store, settings.retrain_threshold)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/v2/repository/models/{model_name}/load",
    response_model=LoadResponse,
    tags=["V2"],
    dependencies=[AuthDep],
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": LoadRequest.model_json_schema()}}}
    },
)
async def load_model(
    model_name: str, request: Request, model: ModelDep, settings: SettingsDep
) -> LoadResponse:
    """Hot swap: the new weights load and warm up beside the old ones; readiness never drops."""
    _check_model_name(model_name)
    body = await request.body()
    try:
        spec = LoadRequest.model_validate_json(body) if body.strip() else LoadRequest()
    except ValueError as e:
        raise InvalidInput(
            f'body must be {{"version": "N"}}, {{"path": "/dir"}} or {{"source": "models:/…"}}: {e}'
        ) from e
    given = [k for k in ("version", "path", "source") if getattr(spec, k) is not None]
    if len(given) > 1:
        raise InvalidInput(f"give one of version, path or source, not {' and '.join(given)}")
    if spec.version is not None:
        resolved = await run_in_threadpool(
            sources.resolve_version,
            str(spec.version),
            settings.models_dir,
            settings.model_cache_dir,
            settings.mlflow_tracking_uri,
        )
    else:
        source = spec.path or spec.source or settings.model_source
        # Reloading the configured source keeps its configured version label.
        label = settings.model_version if source == settings.model_source else None
        resolved = await run_in_threadpool(
            lambda: sources.resolve(
                source,
                cache_dir=settings.model_cache_dir,
                tracking_uri=settings.mlflow_tracking_uri,
                version=label,
            )
        )
    served = await model.swap(resolved)
    return LoadResponse(name=model_name, load=True, version=served.version, source=served.source)


@router.post("/v2/repository/models/{model_name}/unload", tags=["V2"], dependencies=[AuthDep])
async def unload_model(model_name: str) -> dict[str, Any]:
    _check_model_name(model_name)
    raise InvalidInput(
        "the served model cannot be unloaded (readiness would drop); load another version instead"
    )


@router.get("/v2/models/{model_name}", tags=["V2"])
async def model_metadata(model_name: str, model: ModelDep) -> dict[str, Any]:
    _check_model_name(model_name)
    served = model.served
    runtime = served.segmenter.describe()
    return {
        "name": model_name,
        "versions": [served.version],
        "platform": "onnxruntime_onnx" if runtime["runtime"] == "onnx" else "pytorch_safetensors",
        "inputs": model.get_input_types(),
        "outputs": model.get_output_types(),
        "parameters": {"threshold": served.segmenter.threshold, "source": served.source, **runtime},
    }


@router.get("/v2/models/{model_name}/ready", tags=["V2"])
async def model_ready(model_name: str, model: ModelDep) -> dict[str, Any]:
    # Ours rather than KServe's: KServe's handler takes an optional ``model_version`` query and answers it 501.
    _check_model_name(model_name)
    if not model.ready:
        raise KServeModelNotReady(model_name)
    return {"name": model_name, "ready": True}


@router.post(
    "/v2/models/{model_name}/infer",
    tags=["V2"],
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": InferenceRequest.model_json_schema()}}}
    },
)
async def infer(model_name: str, request: Request, model: ModelDep, dataplane: DataPlaneDep) -> Response:
    """V2 inference; parses the binary data extension itself (KServe 0.21 fails on non-UTF-8 BYTES there)."""
    _check_model_name(model_name)
    if not model.ready:
        raise KServeModelNotReady(model_name)
    body = await request.body()
    headers = dict(request.headers)
    if v2binary.HEADER in headers:
        infer_request = await model.offload(v2binary.parse_binary, body, headers[v2binary.HEADER], model_name)
    else:
        infer_request = await model.offload(v2binary.parse_json, body, model_name)
    response, response_headers = await dataplane.infer(
        model_name=model_name, request=infer_request, headers=headers
    )

    def encode() -> Response:
        encoded, encode_headers = dataplane.encode(
            model_name=model_name, response=response, headers=headers, req_attributes={}
        )
        out_headers = {**response_headers, **encode_headers}
        out_headers.pop("content-length", None)
        out_headers.pop("content-type", None)
        if isinstance(encoded, bytes):
            return Response(encoded, media_type="application/octet-stream", headers=out_headers)
        # orjson: a mask tensor in JSON is a long list of small ints, which the stdlib encoder is slow at.
        return Response(orjson.dumps(encoded), media_type="application/json", headers=out_headers)

    return await model.offload(encode)


@router.post("/v1/models/{model_name}:predict", tags=["V1"])
async def predict_v1(model_name: str, request: Request, model: ModelDep, dataplane: DataPlaneDep) -> Response:
    """KServe V1 predict; ours so that the JSON body is parsed and the answer encoded off the event loop."""
    _check_model_name(model_name)
    if not model.ready:
        raise KServeModelNotReady(model_name)
    body = await request.body()
    headers = dict(request.headers)
    try:
        payload = await model.offload(orjson.loads, body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"the body is not valid JSON: {e}") from e
    result, response_headers = await dataplane.infer(model_name=model_name, request=payload, headers=headers)
    response_headers.pop("content-length", None)
    response_headers.pop("content-type", None)
    content = await model.offload(orjson.dumps, result)
    return Response(content, media_type="application/json", headers=response_headers)
