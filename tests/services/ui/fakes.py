"""Fakes of the UI's own client classes, swapped in at their boundary (never HTTP mocks of the predictor).

The fake predictor computes a real probability map from the image it is given (darker is likelier a crack), and
its statistics with the real measurement code (the API contract), so what the pages show depends on the input; it
keeps what was sent for retraining so tests can inspect it.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass

import numpy as np
from PIL import Image

from services.common.crackstats import crack_statistics
from services.ui.client import (
    FeedbackStats,
    Ping,
    Prediction,
    PredictorClient,
    PredictorUnavailable,
    RetrainOutcome,
    SaveResult,
)
from services.ui.registry import ModelVersion, RegistryClient, RegistryUnavailable, RegistryView


@dataclass
class SavedFeedback:
    image: bytes
    filename: str
    mask_png: bytes | None
    verdict: str | None
    comment: str | None
    predicted_png: bytes | None = None
    model_version: str | None = None


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


class FakePredictor(PredictorClient):
    """Behaves like the predictor for the pages: ``down`` makes every call fail as a stopped server would."""

    def __init__(self, threshold: int = 3, model_version: str = "7") -> None:
        super().__init__("http://predictor.invalid", retries=0)
        self.down = False
        self.threshold = threshold
        self.model_version = model_version
        self.saved: list[SavedFeedback] = []
        self.calls: list[str] = []
        self.last_retrain: RetrainOutcome | None = None
        self._key = uuid.uuid4().hex

    @property
    def cache_key(self) -> str:
        return self._key

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise PredictorUnavailable(f"The predictor at {self.base_url} is not reachable (is it running?).")

    def ping(self) -> Ping:
        self._check("ping")
        return Ping(status="ok", ready=True, model_version=self.model_version)

    def predict(self, image: bytes, filename: str = "image.png", *, probabilities: bool = True) -> Prediction:
        self._check("predict")
        gray = np.asarray(Image.open(io.BytesIO(image)).convert("L"))
        # p = 1 − gray/255: black is certainly a crack; the mask is p ≥ 0.5 as the predictor's is.
        levels = 255 - gray
        mask = levels >= 0.5 * 255
        return Prediction(
            mask_png=_png(mask.astype(np.uint8) * 255),
            probability_png=_png(levels) if probabilities else None,
            width=gray.shape[1],
            height=gray.shape[0],
            threshold=0.5,
            statistics=crack_statistics(mask),
            inference_ms=12.5,
            model_version=self.model_version,
        )

    def save_for_retrain(
        self,
        image: bytes,
        filename: str = "image.png",
        *,
        mask_png: bytes | None = None,
        verdict: str | None = None,
        comment: str | None = None,
        predicted_png: bytes | None = None,
        model_version: str | None = None,
    ) -> SaveResult:
        self._check("save")
        self.saved.append(
            SavedFeedback(image, filename, mask_png, verdict, comment, predicted_png, model_version)
        )
        return SaveResult(
            id=hashlib.sha256(image).hexdigest(),
            deduplicated=len(self.saved) > 1 and self.saved[-2].image == image,
            labelled=mask_png is not None,
            stats=self.feedback_stats(),
        )

    def feedback_stats(self) -> FeedbackStats:
        self._check("stats")
        labelled = sum(s.mask_png is not None for s in self.saved)
        by_verdict: dict[str, int] = {}
        for s in self.saved:
            by_verdict[s.verdict or "none"] = by_verdict.get(s.verdict or "none", 0) + 1
        return FeedbackStats(
            total=len(self.saved),
            labelled=labelled,
            unlabelled=len(self.saved) - labelled,
            since_watermark=len(self.saved),
            labelled_since_watermark=labelled,
            by_verdict=by_verdict,
            threshold=self.threshold,
            last_retrain=self.last_retrain,
        )


class FakeRegistry(RegistryClient):
    """A registry with the given versions; ``down`` makes it fail as an unreachable MLflow server would."""

    def __init__(self, versions: list[ModelVersion] | None = None) -> None:
        super().__init__("http://mlflow.invalid", "crackseg", retries=0)
        self.versions = list(versions or [])
        self.down = False
        self._key = uuid.uuid4().hex

    @property
    def cache_key(self) -> str:
        return self._key

    def view(self, with_run_metrics: bool = True) -> RegistryView:
        if self.down:
            raise RegistryUnavailable(
                f"The MLflow server at {self.tracking_uri} is not reachable (is it running?)."
            )
        return RegistryView(name="crackseg", exists=bool(self.versions), versions=tuple(self.versions))
