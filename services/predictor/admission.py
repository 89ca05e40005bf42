"""Admission control: a bounded number of inference requests in flight; the next one gets 503 + Retry-After.

The check runs before the body is read, so a burst of large uploads costs the server nothing beyond the bounded
set it accepted: memory holds at most ``max_inflight`` bodies and decoded images (the size limits bound each).
Health, metadata, metrics and ``/ping`` are never shed.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from services.predictor import metrics
from services.predictor.errors import error_response

# Every path that decodes an image and runs the network.
INFERENCE_PATHS = re.compile(
    r"^/(predict|save-for-retrain|v1/models/[^/]+:predict|v2/models/[^/]+(/versions/[^/]+)?/infer)$"
)


class Admission:
    """A counter of admitted requests; only touched from the event loop, so it needs no lock."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the in-flight limit must be ≥ 1, got {limit}")
        self.limit = limit
        self.in_flight = 0

    def try_enter(self) -> bool:
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        metrics.REQUESTS_IN_FLIGHT.set(self.in_flight)
        return True

    def leave(self) -> None:
        self.in_flight -= 1
        metrics.REQUESTS_IN_FLIGHT.set(self.in_flight)


class AdmissionMiddleware:
    """Sheds inference requests over the limit with ``503`` and ``Retry-After`` before reading their body."""

    def __init__(self, app: ASGIApp, admission: Admission, retry_after_s: int = 1) -> None:
        self.app = app
        self.admission = admission
        self.retry_after = str(retry_after_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not INFERENCE_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not self.admission.try_enter():
            metrics.REQUESTS_SHED.inc()
            response = error_response(
                503,
                f"the predictor is busy ({self.admission.limit} requests in flight); retry after "
                f"{self.retry_after} s",
            )
            response.headers["Retry-After"] = self.retry_after
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave()
