"""MLflow's REST API over httpx, for the processes that must not carry the mlflow package.

The lean predictor image (``crackseg[serve]``) resolves ``models:/`` URIs, downloads a version's files and, in
its init container, registers the shipped model through :class:`ml.registry_rest.RestRegistry`, and the Streamlit
UI reads versions, tags and run metrics; both talk to
the MLflow server through :class:`MlflowRest`: bounded retries with doubling back-off on connection errors and
502/503/504, a clear message naming the server when it stays down, and MLflow's own credentials variables
(``MLFLOW_TRACKING_TOKEN``, or ``MLFLOW_TRACKING_USERNAME`` + ``MLFLOW_TRACKING_PASSWORD``).

Imports httpx only (no mlflow, no torch): the UI's import contract allows this module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

__all__ = ["MlflowRest", "MlflowRestError", "MlflowUnavailable", "credentials"]

_RETRY_STATUS = (502, 503, 504)


class MlflowRestError(Exception):
    """A request to MLflow failed; ``message`` says what, for a person to read."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code  # MLflow's error_code, e.g. RESOURCE_DOES_NOT_EXIST


class MlflowUnavailable(MlflowRestError):
    """The MLflow server could not be reached or kept failing (connection errors, 502/503/504)."""


def credentials(env: dict[str, str] | None = None) -> tuple[dict[str, str], tuple[str, str] | None]:
    """(headers, basic auth) from MLflow's own variables: a bearer token wins over a user name and password."""
    env = dict(os.environ) if env is None else env
    token = env.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}, None
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {}, (user, password)
    return {}, None


class MlflowRest:
    """GETs and file downloads against one MLflow server.

    Args:
        tracking_uri: The server, ``http(s)://host:port`` (a ``file:`` or database URI is refused: it has no REST).
        token: A bearer token; default: from the environment (see :func:`credentials`).
        timeout: Seconds per request (connect: at most 3 s).
        retries: Extra attempts after connection errors and 502/503/504.
        backoff: First wait between attempts in seconds, doubled each time.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        uri = tracking_uri.rstrip("/")
        if not uri.startswith(("http://", "https://")):
            raise MlflowRestError(
                f"the MLflow tracking URI {tracking_uri!r} is not an http(s) server URL: this process reads the "
                "registry over MLflow's REST API (start `mlflow server` and point MLFLOW_TRACKING_URI at it)"
            )
        self.tracking_uri = uri
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        headers, auth = credentials()
        if token:
            headers, auth = {"Authorization": f"Bearer {token}"}, None
        self._http = httpx.Client(
            base_url=uri,
            timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)),
            headers=headers,
            auth=auth,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MlflowRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_json(
        self, path: str, params: dict[str, Any], *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """The JSON object MLflow answers; ``None`` for a 404 when ``missing_ok``."""
        response = self._request(path, params, missing_ok=missing_ok)
        if response is None:
            return None
        try:
            body = response.json()
        except ValueError as e:
            raise MlflowRestError(f"MLflow sent an answer that is not JSON for {path}.") from e
        return body if isinstance(body, dict) else {}

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body; the JSON object MLflow answers."""
        response = self._request(path, {}, missing_ok=False, method="POST", json=body)
        assert response is not None
        try:
            answer = response.json()
        except ValueError as e:
            raise MlflowRestError(f"MLflow sent an answer that is not JSON for {path}.") from e
        return answer if isinstance(answer, dict) else {}

    def upload(self, path: str, src: Path) -> None:
        """PUT a file's bytes (MLflow's artifact proxy: ``/api/2.0/mlflow-artifacts/artifacts/...``)."""
        self._request(path, {}, missing_ok=False, method="PUT", content=src.read_bytes())

    def download(self, path: str, params: dict[str, Any], dst: Path, *, missing_ok: bool = False) -> bool:
        """Stream a file into ``dst`` (written whole or not at all); False for a 404 when ``missing_ok``."""
        response = self._request(path, params, missing_ok=missing_ok, stream=True)
        if response is None:
            return False
        tmp = dst.with_name(f".{dst.name}.part")
        try:
            with tmp.open("wb") as f:
                for chunk in response.iter_bytes(1 << 20):
                    f.write(chunk)
            tmp.replace(dst)
        except httpx.HTTPError as e:
            raise MlflowUnavailable(
                f"The MLflow server at {self.tracking_uri} broke off sending {params.get('path', path)}: {e}"
            ) from e
        finally:
            response.close()
            tmp.unlink(missing_ok=True)
        return True

    def _request(
        self,
        path: str,
        params: dict[str, Any],
        *,
        missing_ok: bool,
        stream: bool = False,
        method: str = "GET",
        json: dict[str, Any] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response | None:
        attempt = 0
        while True:
            try:
                request = self._http.build_request(method, path, params=params, json=json, content=content)
                response = self._http.send(request, stream=stream)
            except httpx.HTTPError as e:
                if attempt >= self.retries:
                    raise MlflowUnavailable(
                        f"The MLflow server at {self.tracking_uri} is not reachable (is it running?)."
                    ) from e
            else:
                if response.status_code == 404 and missing_ok:
                    response.close()
                    return None
                if response.status_code < 400:
                    return response
                if stream:
                    response.read()
                response.close()
                if response.status_code not in _RETRY_STATUS or attempt >= self.retries:
                    raise _status_error(self.tracking_uri, path, response)
            self._sleep(self.backoff * (2**attempt))
            attempt += 1


def _status_error(uri: str, path: str, response: httpx.Response) -> MlflowRestError:
    code = None
    try:
        body = response.json()
        detail = str(body.get("message") or response.text[:200])
        code = str(body["error_code"]) if body.get("error_code") else None
    except (ValueError, AttributeError):
        detail = response.text[:200]
    status = response.status_code
    if status >= 500:
        return MlflowUnavailable(f"The MLflow server at {uri} failed ({status}): {detail}", status, code)
    return MlflowRestError(f"MLflow refused {path} ({status}): {detail}", status, code)
