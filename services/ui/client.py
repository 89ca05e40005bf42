"""A small typed client for the predictor's HTTP API (docs/contracts.md, "Predictor HTTP API").

Every failure becomes a :class:`PredictorError` whose ``message`` can be shown to a person as is: the pages never
see an ``httpx`` exception or a stack trace. Idempotent calls are retried with exponential backoff on connection
errors, timeouts and 502/503/504. The feedback upload is retried only when the connection could not even be opened
(nothing reached the server): a 502/503/504 may come from a proxy after the predictor stored the label, so it is
never repeated, and one click never stores two labels.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.crackstats import CrackStatistics
from services.ui.settings import UISettings

VERDICTS: tuple[str, ...] = ("correct", "missed_cracks", "false_cracks", "other")
RETRY_STATUS = frozenset({502, 503, 504})
T = TypeVar("T", bound=BaseModel)


class PredictorError(Exception):
    """A predictor call failed; ``message`` says what happened in words meant for the person using the UI."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class PredictorUnavailable(PredictorError):
    """The predictor could not be reached, timed out, or answered that it is not ready."""


class PredictorRejected(PredictorError):
    """The predictor refused the request (4xx): the input or the token was wrong."""


class _Lenient(BaseModel):
    # Newer predictors may add fields; the UI must keep working with them.
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class Ping(_Lenient):
    status: str
    ready: bool
    model_version: str | None = None


class Prediction(_Lenient):
    """``POST /predict``: the mask as PNG bytes (0/255), its size, the statistics (the shared contract,
    :mod:`services.common.crackstats`), the version that made it, and the probability map (8-bit PNG) when asked."""

    mask_png: bytes
    probability_png: bytes | None = None
    width: int
    height: int
    threshold: float
    statistics: CrackStatistics
    inference_ms: float
    model_version: str | None = None


class RetrainOutcome(_Lenient):
    run: str
    outcome: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model_version: str | None = None
    reason: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class FeedbackStats(_Lenient):
    total: int
    labelled: int
    unlabelled: int
    since_watermark: int
    labelled_since_watermark: int
    by_verdict: dict[str, int] = Field(default_factory=dict)
    watermark: datetime | None = None
    threshold: int | None = None
    last_retrain: RetrainOutcome | None = None


class SaveResult(_Lenient):
    id: str
    deduplicated: bool
    labelled: bool
    stats: FeedbackStats


class PredictorClient:
    """Calls the predictor over HTTP with timeouts, retries and friendly errors.

    Args:
        base_url: The predictor, e.g. ``http://127.0.0.1:8000``.
        token: Bearer token for the write endpoints (``CRACKSEG_API_TOKEN``); ``None`` when the API is open.
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for an answer from the light endpoints.
        predict_timeout: Seconds to wait for an inference (large photos are tiled and take longer).
        retries: Extra attempts after the first for retryable failures.
        backoff: First wait between attempts in seconds, doubled each time.
        transport: An ``httpx`` transport (tests use it to reach an in-process server); ``None`` for the network.
        sleep: The sleep function used between retries (tests pass a recorder).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        predict_timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._predict_timeout = httpx.Timeout(predict_timeout, connect=connect_timeout)
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self._timeout, headers=headers, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: UISettings) -> PredictorClient:
        return cls(
            settings.predictor_url,
            token=settings.api_token.get_secret_value() if settings.api_token else None,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            predict_timeout=settings.predict_timeout,
            retries=settings.retries,
            backoff=settings.backoff,
        )

    @property
    def cache_key(self) -> str:
        """Identifies this predictor in ``st.cache_data`` keys (results differ per predictor)."""
        return f"{self.base_url}#{id(self)}"

    def close(self) -> None:
        self._http.close()

    # -- endpoints -------------------------------------------------------------------------------------------
    def ping(self) -> Ping:
        """``GET /ping``: liveness, readiness and the served model version."""
        return self._parse(Ping, self._request("GET", "/ping", idempotent=True))

    def predict(self, image: bytes, filename: str = "image.png", *, probabilities: bool = True) -> Prediction:
        """``POST /predict``: segment one image (the predictor tiles large ones); with ``probabilities`` the
        answer carries the probability map, so the UI can re-threshold without another inference."""
        if not image:
            raise ValueError("the image is empty")
        response = self._request(
            "POST",
            "/predict",
            idempotent=True,  # no side effects: safe to repeat
            params={"probabilities": "true"} if probabilities else None,
            files={"file": (filename, image, _content_type(filename))},
            timeout=self._predict_timeout,
        )
        body = self._json(response)
        if isinstance(body, dict):
            for field in ("mask_png", "probability_png"):
                if isinstance(body.get(field), str):
                    try:
                        body[field] = base64.b64decode(body[field], validate=True)
                    except (binascii.Error, ValueError) as e:
                        raise PredictorError(f"The predictor sent a {field} that is not valid base64.") from e
        return self._validate(Prediction, body)

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
        """``POST /save-for-retrain``: store the image with an optional corrected mask, verdict and comment.

        ``predicted_png`` (the mask the person saw) and ``model_version`` (the version that made it) go together:
        the feedback is attributed to that version, not to whatever the predictor serves when it arrives.
        """
        if not image:
            raise ValueError("the image is empty")
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}; valid: {', '.join(VERDICTS)}")
        if (predicted_png is None) != (model_version is None):
            raise ValueError("predicted_png and model_version go together")
        files: dict[str, tuple[str, bytes, str]] = {"file": (filename, image, _content_type(filename))}
        if mask_png is not None:
            files["mask"] = ("mask.png", mask_png, "image/png")
        if predicted_png is not None:
            files["predicted"] = ("predicted.png", predicted_png, "image/png")
        fields = (("verdict", verdict), ("comment", comment), ("model_version", model_version))
        data = {k: v for k, v in fields if v}
        response = self._request("POST", "/save-for-retrain", idempotent=False, files=files, data=data)
        return self._parse(SaveResult, response)

    def feedback_stats(self) -> FeedbackStats:
        """``GET /v1/feedback/stats``: the feedback backlog, the retrain threshold and the last retraining."""
        return self._parse(FeedbackStats, self._request("GET", "/v1/feedback/stats", idempotent=True))

    # -- plumbing --------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, idempotent: bool, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.ConnectError as e:
                # Nothing reached the server, so even a write is safe to repeat.
                failure: PredictorError = PredictorUnavailable(
                    f"The predictor at {self.base_url} is not reachable (is it running?)."
                )
                cause: Exception = e
            except httpx.TimeoutException as e:
                failure = PredictorUnavailable(f"The predictor at {self.base_url} did not answer in time.")
                cause = e
                if not idempotent:
                    raise failure from e
            except httpx.HTTPError as e:
                raise PredictorUnavailable(
                    f"The connection to the predictor at {self.base_url} failed ({type(e).__name__})."
                ) from e
            else:
                if response.status_code < 400:
                    return response
                failure = self._http_failure(response)
                cause = httpx.HTTPStatusError(
                    str(response.status_code), request=response.request, response=response
                )
                # A 502/503/504 after a write may come from a proxy once the predictor has stored it.
                if response.status_code not in RETRY_STATUS or not idempotent:
                    raise failure from cause
            if attempt >= self.retries:
                raise failure from cause
            self._sleep(self.backoff * (2**attempt))
            attempt += 1

    def _http_failure(self, response: httpx.Response) -> PredictorError:
        status = response.status_code
        detail = _error_detail(response)
        if status == 401 or status == 403:
            return PredictorRejected(
                f"The predictor refused the request ({status}): {detail}. Check CRACKSEG_API_TOKEN.",
                status=status,
            )
        if status == 413:
            return PredictorRejected(f"The file is too large for the predictor: {detail}", status=status)
        if status < 500:
            return PredictorRejected(
                f"The predictor rejected the request ({status}): {detail}", status=status
            )
        if status in RETRY_STATUS:
            return PredictorUnavailable(
                f"The predictor at {self.base_url} is not ready ({status}): {detail}", status=status
            )
        return PredictorError(f"The predictor failed ({status}): {detail}", status=status)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as e:
            raise PredictorError(
                f"The predictor sent an answer that is not JSON ({response.request.url.path})."
            ) from e

    def _parse(self, model: type[T], response: httpx.Response) -> T:
        return self._validate(model, self._json(response))

    def _validate(self, model: type[T], body: Any) -> T:
        try:
            return model.model_validate(body)
        except ValidationError as e:
            fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in e.errors()[:5])
            raise PredictorError(
                f"The predictor's answer does not match the API contract (fields: {fields})."
            ) from e


def _content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _error_detail(response: httpx.Response) -> str:
    """The ``{"error": …}`` message of the contract, else FastAPI's ``detail``, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:200]
