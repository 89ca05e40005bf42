"""The KServe model: loads a checkpoint, segments images off the event loop, and hot-swaps versions.

Readiness means "a model is loaded and a warm-up forward has run". A swap builds the new model beside the old one,
warms it up, then replaces one reference: requests that already took the old ``Served`` finish on it, new ones get
the new one, and ``ready`` never drops. A model that cannot be loaded is refused (422) and the old one keeps serving.

Threads: one inference at a time, on every CPU the process may use (``ml.cpus``); further requests wait in FIFO
order in the inference pool's queue. Decoding, encoding, statistics and overlays run in a separate worker pool,
so the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from kserve import Model
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from ml.cpus import usable_cpus
from ml.data.imageio import encode_png
from ml.names import MODEL_NAME
from ml.segmenter import TiledSegmenter, open_segmenter
from services.predictor import metrics
from services.predictor.decode import DecodedImage, Limits, decode_image, sniff
from services.predictor.errors import InvalidInput, ModelNotReady, ModelSourceError, PredictorError
from services.predictor.settings import Settings
from services.predictor.sources import ResolvedSource, resolve
from services.predictor.stats import CrackStatistics, Surface, crack_statistics

log = logging.getLogger(__name__)
T = TypeVar("T")
_WARMUP_SHAPE = (256, 256, 3)


@dataclass(frozen=True)
class Served:
    """One loaded model version; immutable, so a request that holds it is never affected by a swap."""

    segmenter: TiledSegmenter
    version: str
    source: str


@dataclass
class Segmentation:
    mask: np.ndarray  # (H, W) bool
    probabilities: np.ndarray  # (H, W) float32 in [0, 1]; the mask is probabilities >= threshold
    statistics: CrackStatistics
    inference_ms: float
    model_version: str
    threshold: float


@dataclass
class _Batch:
    images: list[DecodedImage]
    request: InferRequest | None  # None for V1


class CracksegModel(Model):
    """``kserve.Model`` for crack segmentation (V1 ``instances`` of base64 images, V2 BYTES ``image`` input).

    Args:
        settings: predictor settings (model source, limits, tiling, threads, concurrency).
        name: the name on the KServe endpoints.
    """

    def __init__(self, settings: Settings, name: str = MODEL_NAME) -> None:
        super().__init__(name)
        self.settings = settings
        self._served: Served | None = None
        self._swap_lock = threading.Lock()
        self.threads = settings.threads or usable_cpus(settings.cpu_limit)
        # Threads inherit the creator's priority: the runtime's own worker threads start in these lowered ones.
        # One inference at a time (it uses every core); the rest wait here, first in, first out.
        self._infer_pool = _pool(1, "crackseg-infer")
        self._work_pool = _pool(max(2, self.threads), "crackseg-work")
        # Loads and swaps: never in the inference pool, so a swap takes no inference slot away.
        self._load_pool = _pool(1, "crackseg-load")
        self.limits = Limits(settings.max_body_bytes, settings.max_pixels, settings.max_side)

    # -- loading -------------------------------------------------------------------------------------------
    def load(self) -> bool:
        resolved = resolve(
            self.settings.model_source,
            cache_dir=self.settings.model_cache_dir,
            tracking_uri=self.settings.mlflow_tracking_uri,
            version=self.settings.model_version,
        )
        self._install(self._load_pool.submit(self._prepare, resolved).result())
        return self.ready

    def _prepare(self, resolved: ResolvedSource) -> Served:
        settings = self.settings
        try:
            segmenter = open_segmenter(
                resolved.path,
                settings.runtime,
                threads=self.threads,
                tile_size=settings.tile_size,
                overlap=settings.tile_overlap,
                batch_size=settings.tile_batch,
            )
            # Warm-up: the first forward allocates and picks kernels; readiness waits for it.
            segmenter.predict_mask(np.zeros(_WARMUP_SHAPE, dtype=np.uint8))
        except Exception as e:  # whatever the files hold, a model that does not load is the request's 4xx
            log.warning("cannot load model from %s", resolved.path, exc_info=True)
            raise ModelSourceError(f"cannot load model from {resolved.path}: {e}") from e
        return Served(segmenter=segmenter, version=resolved.version, source=resolved.source)

    def _install(self, served: Served) -> None:
        self._served = served  # a single reference assignment: atomic for every reader
        self.ready = True
        metrics.set_model_version(served.version)
        log.info("serving model version %s from %s", served.version, served.source)

    def swap_blocking(self, resolved: ResolvedSource) -> Served:
        """Load ``resolved`` beside the current model, warm it up, then switch. One swap at a time."""
        with self._swap_lock:
            served = self._prepare(resolved)
            self._install(served)
            return served

    async def swap(self, resolved: ResolvedSource) -> Served:
        return await asyncio.get_running_loop().run_in_executor(self._load_pool, self.swap_blocking, resolved)

    @property
    def current(self) -> Served | None:
        return self._served

    @property
    def served(self) -> Served:
        served = self._served
        if served is None:
            raise ModelNotReady("the model is not loaded yet")
        return served

    # -- inference -----------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Runtime, device, threads and tiling of the served model (for /ping and the V2 metadata)."""
        served = self._served
        return served.segmenter.describe() if served else {"runtime": None, "threads": self.threads}

    async def segment(
        self, image: DecodedImage, mm_per_px: float | None = None, surface: Surface = "asphalt"
    ) -> Segmentation:
        """Segment off the event loop: the forward pass in the inference queue, the statistics in the workers;
        ``mm_per_px``/``surface`` calibrate the statistics (``stats.py``)."""
        served = self.served  # taken once: a swap during this call does not affect it
        loop = asyncio.get_running_loop()
        probs, seconds = await loop.run_in_executor(self._infer_pool, _timed, served.segmenter, image.rgb)
        return await loop.run_in_executor(
            self._work_pool, _finish, served, probs, seconds, mm_per_px, surface
        )

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU work (decoding, encoding, overlays) in the worker pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._work_pool, fn, *args)

    def stop(self) -> None:
        for pool in (self._infer_pool, self._work_pool, self._load_pool):
            pool.shutdown(wait=False, cancel_futures=True)
        super().stop()

    # -- KServe handlers -----------------------------------------------------------------------------------
    def _decode_element(self, element: Any) -> DecodedImage:
        raw = element.encode("utf-8") if isinstance(element, str) else element
        if not isinstance(raw, bytes | bytearray):
            raise InvalidInput(f"each image must be bytes or a base64 string, got {type(element).__name__}")
        raw = bytes(raw)
        if not _looks_like_image(raw):
            # JSON carries BYTES as UTF-8 strings, so images come base64-encoded there.
            try:
                raw = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as e:
                raise InvalidInput(
                    "an image is neither image bytes nor valid base64", reason="bad_base64"
                ) from e
        return decode_image(raw, self.limits)

    def _decode_payload(self, payload: Any) -> _Batch:
        if isinstance(payload, InferRequest):
            return _Batch(images=[self._decode_element(e) for e in _v2_elements(payload)], request=payload)
        if isinstance(payload, dict):
            return _Batch(images=[self._decode_element(e) for e in _v1_elements(payload)], request=None)
        raise InvalidInput('expected a JSON body: {"instances": [{"b64": "<base64 image>"}]}')

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return await self.offload(self._decode_payload, payload)

    async def predict(
        self, payload: Any, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> Any:
        if not isinstance(payload, _Batch):
            raise InvalidInput("the request was not decoded")
        results = [await self.segment(image) for image in payload.images]
        return payload, results

    async def postprocess(
        self, result: Any, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> Any:
        return await self.offload(self._encode_result, result)

    def _encode_result(self, result: tuple[_Batch, list[Segmentation]]) -> Any:
        batch, results = result
        if batch.request is None:
            return {"predictions": [_v1_prediction(r) for r in results]}
        seg = results[0]
        mask = seg.mask.astype(np.uint8)[None]  # (1, H, W), 1 = crack
        stats_json = json.dumps(seg.statistics.model_dump()).encode()
        outputs = [
            InferOutput(name="mask", shape=list(mask.shape), datatype="UINT8", data=mask),
            InferOutput(
                name="statistics", shape=[1], datatype="BYTES", data=np.array([stats_json], dtype=object)
            ),
        ]
        for output in outputs:
            # Serialised up front: KServe 0.21's gRPC encoder cannot take numpy data (ambiguous truth value);
            # its REST encoder turns the raw form back into JSON data when the client asked for JSON.
            output.set_data_from_numpy(output.data, binary_data=True)
        return InferResponse(
            response_id=batch.request.id or "",
            model_name=self.name,
            model_version=seg.model_version,
            infer_outputs=outputs,
            parameters={
                "model_version": seg.model_version,
                "threshold": str(seg.threshold),
            },  # gRPC: no floats
            use_binary_outputs=batch.request.use_binary_outputs,
            requested_outputs=batch.request.request_outputs,
        )

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": "image", "datatype": "BYTES", "shape": [1]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": "mask", "datatype": "UINT8", "shape": [1, -1, -1]},
            {"name": "statistics", "datatype": "BYTES", "shape": [1]},
        ]


def _timed(segmenter: TiledSegmenter, rgb: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    probs = segmenter.probabilities(rgb)
    return probs, time.perf_counter() - start


def _finish(
    served: Served, probs: np.ndarray, seconds: float, mm_per_px: float | None, surface: Surface
) -> Segmentation:
    mask = probs >= served.segmenter.threshold
    stats = crack_statistics(mask, mm_per_px, surface)
    metrics.INFERENCE_SECONDS.labels(model_version=served.version).observe(seconds)
    metrics.CRACK_RATIO.observe(stats.crack_ratio)
    return Segmentation(
        mask=mask,
        probabilities=probs,
        statistics=stats,
        inference_ms=round(seconds * 1000.0, 2),
        model_version=served.version,
        threshold=served.segmenter.threshold,
    )


def _pool(workers: int, name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix=name, initializer=_lower_thread_priority
    )


def _lower_thread_priority() -> None:
    """Inference threads run at a lower CPU priority than the event loop (Linux: nice is per thread), so health
    checks and /ping keep answering on a saturated CPU. Where that is not possible it is simply skipped."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(
            os.PRIO_PROCESS, threading.get_native_id(), min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
        )


def _looks_like_image(raw: bytes) -> bool:
    try:
        sniff(raw)
    except PredictorError:
        return False
    return True


def _v1_elements(payload: dict[str, Any]) -> list[Any]:
    instances = payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(
            'expected {"instances": [...]} with at least one base64 image', reason="missing_field"
        )
    if len(instances) > 8:
        raise InvalidInput(f"at most 8 instances per request, got {len(instances)}")
    elements = []
    for i, inst in enumerate(instances):
        if isinstance(inst, str):
            elements.append(inst)
        elif isinstance(inst, dict) and isinstance(inst.get("b64"), str):
            elements.append(inst["b64"])
        elif (
            isinstance(inst, dict)
            and isinstance(inst.get("image_bytes"), dict)
            and isinstance(inst["image_bytes"].get("b64"), str)
        ):
            elements.append(inst["image_bytes"]["b64"])
        else:
            raise InvalidInput(
                f'instance {i} must be a base64 string, {{"b64": "..."}} or {{"image_bytes": {{"b64": "..."}}}}'
            )
    return elements


def _v2_elements(request: InferRequest) -> list[Any]:
    if len(request.inputs) != 1:
        raise InvalidInput(f"expected exactly one input named 'image', got {len(request.inputs)}")
    inp = request.inputs[0]
    if inp.datatype != "BYTES":
        raise InvalidInput(f"input '{inp.name}' must be BYTES (the encoded image), got {inp.datatype}")
    if list(inp.shape) != [1]:
        raise InvalidInput(f"input '{inp.name}' must have shape [1] (one image per request), got {inp.shape}")
    try:
        elements = list(inp.as_numpy().reshape(-1))
    except Exception as e:  # KServe raises several types for malformed tensors
        raise InvalidInput(f"input '{inp.name}' is malformed: {e}") from e
    if len(elements) != 1:
        raise InvalidInput(f"input '{inp.name}' holds {len(elements)} elements; its shape says 1")
    return elements


def _v1_prediction(seg: Segmentation) -> dict[str, Any]:
    return {
        "mask_png": base64.b64encode(encode_png(seg.mask)).decode("ascii"),
        "height": int(seg.mask.shape[0]),
        "width": int(seg.mask.shape[1]),
        "threshold": seg.threshold,
        "statistics": seg.statistics.model_dump(),
        "inference_ms": seg.inference_ms,
        "model_version": seg.model_version,
    }
