"""One FastAPI app: our routes first, then KServe's V1/V2 endpoints on the same KServe dataplane.

Routes are matched in order, so where we serve a KServe path ourselves (V2 infer with binary inputs, model
metadata with the served version, the repository load that hot-swaps, ``/metrics``) our handler wins, and the
shadowed KServe route is dropped so the OpenAPI document lists each operation once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.predictor import metrics
from services.predictor.admission import Admission, AdmissionMiddleware
from services.predictor.errors import error_response, install_error_handlers
from services.predictor.model import CracksegModel
from services.predictor.routes import router
from services.predictor.settings import Settings, get_settings


class BodyLimitMiddleware:
    """Rejects bodies over ``max_bytes`` with 413 before they are buffered (declared or streamed length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            metrics.REJECTED_INPUTS.labels(reason="too_large").inc()
            response = error_response(
                413, f"the body is {int(declared)} bytes; the limit is {self.max_bytes} bytes"
            )
            await response(scope, receive, send)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        # No declared length (chunked): buffer up to the limit here, so an oversized stream gets a clean 413
        # instead of failing halfway through the form parser.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                metrics.REJECTED_INPUTS.labels(reason="too_large").inc()
                await error_response(413, f"the body is over the limit of {self.max_bytes} bytes")(
                    scope, receive, send
                )
                return
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay_receive() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replay_receive, send)


# KServe routes we do not serve: explanations (no explainer) and per-version paths (one version is served; KServe
# answers them with 501).
_UNSERVED = ("/v1/models/{model_name}:explain", "/versions/{model_version}")


class _KServeRoutes:
    """Stands in for the app while KServe registers its routers: drops the routes we serve ourselves (ours would
    win anyway, being first) and those we do not serve, so the OpenAPI document lists each operation once."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.ours = {(r.path, frozenset(r.methods or ())) for r in router.routes if isinstance(r, APIRoute)}

    def include_router(self, kserve_router: APIRouter, **kwargs: Any) -> None:
        kserve_router.routes[:] = [
            r
            for r in kserve_router.routes
            if not (
                isinstance(r, APIRoute)
                and ((r.path, frozenset(r.methods or ())) in self.ours or any(u in r.path for u in _UNSERVED))
            )
        ]
        self.app.include_router(kserve_router, **kwargs)


def create_app(model: CracksegModel, settings: Settings | None = None) -> FastAPI:
    """Build the predictor app around a loaded (or loading) model.

    Args:
        model: the KServe model; registered in a KServe ``ModelRepository`` under its name.
        settings: overrides ``get_settings()`` for every dependency (tests pass their own).
    """
    settings = settings or model.settings
    app = FastAPI(
        title="crackseg predictor",
        version="1",
        description="Crack segmentation: KServe V1/V2 plus the original crackseg API.",
        docs_url=None,
        redoc_url=None,
    )
    app.dependency_overrides[get_settings] = lambda: settings
    repository = ModelRepository()
    repository.update(model)
    dataplane = DataPlane(model_registry=repository)
    app.state.model = model
    app.state.dataplane = dataplane
    app.state.settings = settings

    app.include_router(router)
    kserve_routes = _KServeRoutes(app)
    extension = ModelRepositoryExtension(model_registry=repository)
    register_v1_endpoints(kserve_routes, dataplane, extension)  # type: ignore[arg-type]
    register_v2_endpoints(kserve_routes, dataplane, extension)  # type: ignore[arg-type]
    install_error_handlers(app)
    Instrumentator(excluded_handlers=["/metrics"]).instrument(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Added last, so it runs first: a full predictor answers 503 before the body limit or anything else.
    app.state.admission = Admission(settings.max_inflight)
    app.add_middleware(
        AdmissionMiddleware, admission=app.state.admission, retry_after_s=settings.retry_after_s
    )
    return app
