"""Domain errors of the predictor, each mapped once to an HTTP status, and the one error body ``{"error": …}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import errors as kserve_errors
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.predictor import metrics

log = logging.getLogger(__name__)


class PredictorError(Exception):
    """Base class: ``status`` is the HTTP status, ``reason`` the label on ``crackseg_rejected_inputs_total``."""

    status = 400
    reason = "bad_request"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidInput(PredictorError):
    """The request is malformed: not an image, a bad mask, an unknown verdict, a missing field."""

    status = 400
    reason = "invalid_input"


class PayloadTooLarge(PredictorError):
    """The body, the image's pixel count or one of its sides is over the configured limit."""

    status = 413
    reason = "too_large"


class Unauthorized(PredictorError):
    status = 401
    reason = "unauthorized"


class NotFound(PredictorError):
    status = 404
    reason = "not_found"


class ModelNotReady(PredictorError):
    status = 503
    reason = "not_ready"


class ModelSourceError(PredictorError):
    """A model source (directory, version, registry URI) cannot be resolved or loaded."""

    status = 422
    reason = "bad_model_source"


def error_response(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


async def _predictor_error(_: Request, exc: PredictorError) -> JSONResponse:
    if exc.status < 500:
        metrics.REJECTED_INPUTS.labels(reason=exc.reason).inc()
    return error_response(exc.status, exc.message)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    reason = "missing_field" if any(e.get("type") == "missing" for e in exc.errors()) else "invalid_input"
    metrics.REJECTED_INPUTS.labels(reason=reason).inc()
    return error_response(422, "invalid request: " + "; ".join(problems))


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 405:
        metrics.REJECTED_INPUTS.labels(reason="method_not_allowed").inc()
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    response = error_response(exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    # The process never dies from input; anything unexpected is a bug, logged with its traceback.
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}")


def install_error_handlers(app: FastAPI) -> None:
    """Our errors, FastAPI's validation/HTTP errors and KServe's errors all answer ``{"error": "..."}``."""
    # Starlette types handlers as taking any Exception; each of ours is only ever called with its own class.
    app.add_exception_handler(PredictorError, _predictor_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(kserve_errors.InvalidInput, kserve_errors.invalid_input_handler)
    app.add_exception_handler(kserve_errors.InferenceError, kserve_errors.inference_error_handler)
    app.add_exception_handler(kserve_errors.ModelNotFound, kserve_errors.model_not_found_handler)
    app.add_exception_handler(kserve_errors.ModelNotReady, kserve_errors.model_not_ready_handler)
    app.add_exception_handler(NotImplementedError, kserve_errors.not_implemented_error_handler)
    app.add_exception_handler(
        kserve_errors.UnsupportedProtocol, kserve_errors.unsupported_protocol_error_handler
    )
    app.add_exception_handler(kserve_errors.ServerNotLive, kserve_errors.server_not_live_handler)
    app.add_exception_handler(kserve_errors.ServerNotReady, kserve_errors.server_not_ready_handler)
    app.add_exception_handler(Exception, _unexpected)
