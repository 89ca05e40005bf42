"""Where a batch run's inferences happen: in this process (``--model``) or on a running predictor (``--server``).

Both return the same :class:`Outcome`: the decoded photo, the mask, the shared statistics
(:mod:`services.common.crackstats`) and the version of the model that made the mask. Local mode runs the
predictor's own decoder and inference entry point (:func:`load_segmenter`), so a photo gets the same mask either
way. Heavy imports (torch, the predictor) happen only when a local engine is built.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import numpy as np
from PIL import Image

from services.common.crackstats import CrackStatistics, statistics_from
from services.common.measure import measure
from services.common.severity import Surface


class PhotoError(Exception):
    """This photo could not be processed; ``message`` becomes its row's status."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineError(Exception):
    """The engine itself cannot run (no model, predictor unreachable): the whole run stops (exit 2)."""


@dataclass
class Outcome:
    rgb: np.ndarray  # (H, W, 3) uint8, EXIF orientation applied
    mask: np.ndarray  # (H, W) bool
    statistics: CrackStatistics
    model_version: str
    inference_ms: float


class Engine(Protocol):
    description: str

    def run(self, data: bytes, name: str) -> Outcome: ...

    def close(self) -> None: ...


def load_segmenter(
    model_dir: Any, tile_size: int, overlap: int | None, runtime: str = "auto", threads: int = 1
) -> Any:
    """The inference entry point the predictor uses (``ml.segmenter.open_segmenter``), in one place."""
    from ml.segmenter import open_segmenter

    return open_segmenter(model_dir, runtime, threads=threads, tile_size=tile_size, overlap=overlap)


class LocalEngine:
    """Loads the model once; decodes with the predictor's decoder; one forward at a time (the network already
    uses every thread it is given), while decoding, measuring and writing of other photos overlap with it."""

    def __init__(self, source: str, mm_per_px: float | None, surface: Surface) -> None:
        import sys

        sys.argv = sys.argv[:1]  # KServe (imported with the predictor's modules) parses sys.argv

        from services.predictor.decode import Limits
        from services.predictor.errors import PredictorError
        from services.predictor.settings import Settings
        from services.predictor.sources import resolve

        self._predictor_error = PredictorError
        try:
            settings = Settings(model_source=source)
            resolved = resolve(
                source,
                cache_dir=settings.model_cache_dir,
                tracking_uri=settings.mlflow_tracking_uri,
                version=settings.model_version,
            )
            from ml.cpus import usable_cpus

            self._segmenter = load_segmenter(
                resolved.path,
                settings.tile_size,
                settings.tile_overlap,
                settings.runtime,
                settings.threads or usable_cpus(settings.cpu_limit),
            )
        except PredictorError as e:
            raise EngineError(e.message) from e
        except (
            FileNotFoundError,
            ValueError,
            RuntimeError,
        ) as e:  # RuntimeError: the runtime is not installed
            raise EngineError(f"cannot load the model {source}: {e}") from e
        self._limits = Limits(settings.max_body_bytes, settings.max_pixels, settings.max_side)
        self._lock = threading.Lock()
        self.version = resolved.version
        self.mm_per_px, self.surface = mm_per_px, surface
        self.description = f"model {resolved.source} (version {resolved.version}), in this process"

    def run(self, data: bytes, name: str) -> Outcome:
        from services.predictor.decode import decode_image

        try:
            image = decode_image(data, self._limits)
        except self._predictor_error as e:
            raise PhotoError(e.message) from e
        with self._lock:
            start = time.perf_counter()
            mask = self._segmenter.predict_mask(image.rgb)
            ms = (time.perf_counter() - start) * 1000.0
        stats = statistics_from(measure(mask), self.mm_per_px, self.surface)
        return Outcome(image.rgb, mask, stats, self.version, round(ms, 2))

    def close(self) -> None:
        pass


class ServerEngine:
    """Sends each photo to ``POST /predict`` of a running predictor (JSON: mask, statistics, model version).

    ``/predict`` has no side effects, so connection failures and 502/503/504 are retried."""

    RETRY_STATUS = frozenset({502, 503, 504})

    def __init__(
        self,
        url: str,
        mm_per_px: float | None,
        surface: Surface,
        token: str | None = None,
        timeout: float = 300.0,
        retries: int = 2,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url, timeout=httpx.Timeout(timeout, connect=5.0), headers=headers
        )
        self._params: dict[str, str | float] = {"surface": surface}
        if mm_per_px is not None:
            self._params["pixel_size_mm"] = mm_per_px
        self._retries = retries
        try:
            ping = self._http.get("/ping", timeout=10.0)
            ping.raise_for_status()
            served = ping.json().get("model_version")
        except (httpx.HTTPError, ValueError) as e:
            self._http.close()
            raise EngineError(f"the predictor at {self.url} is not reachable or not ready: {e}") from e
        self.description = f"predictor {self.url} (serving version {served})"

    def run(self, data: bytes, name: str) -> Outcome:
        from ml.data.imageio import ImageDecodeError, open_image, to_rgb_array

        body = self._post(data, name)
        try:
            mask_png = base64.b64decode(body["mask_png"], validate=True)
            with Image.open(io.BytesIO(mask_png)) as img:
                mask = np.asarray(img.convert("L")) > 0
            stats = CrackStatistics.model_validate(body["statistics"])
            version, ms = str(body["model_version"]), float(body["inference_ms"])
        except (KeyError, ValueError, TypeError, OSError) as e:
            raise PhotoError(f"the predictor's answer does not match its API: {e}") from e
        try:
            rgb = to_rgb_array(open_image(data))
        except (ImageDecodeError, OSError, ValueError) as e:
            raise PhotoError(f"the predictor read this photo but it cannot be decoded here: {e}") from e
        if rgb.shape[:2] != mask.shape:
            raise PhotoError(f"the predictor's mask is {mask.shape[::-1]} but the photo {rgb.shape[1::-1]}")
        return Outcome(rgb, mask, stats, version, ms)

    def _post(self, data: bytes, name: str) -> dict[str, Any]:
        for attempt in range(self._retries + 1):
            try:
                r = self._http.post("/predict", params=self._params, files={"file": (name, data)})
            except httpx.TransportError as e:
                if attempt == self._retries:
                    raise PhotoError(f"the predictor at {self.url} did not answer: {type(e).__name__}") from e
            else:
                if r.status_code < 400:
                    return dict(r.json())
                if r.status_code not in self.RETRY_STATUS or attempt == self._retries:
                    raise PhotoError(f"the predictor refused it ({r.status_code}): {_error_text(r)}")
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._http.close()


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        for key in ("error", "detail"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:200]
