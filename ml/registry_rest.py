"""Reading the MLflow registry without the mlflow package: resolve ``models:/`` URIs, download a version's files.

The lean predictor (``crackseg[serve]``: ONNX Runtime, no torch, no mlflow) serves registry versions through this
reader. It asks the MLflow server for the version (``model-versions/get``) or the alias
(``registered-models/alias``), and fetches the version's files one by one through the server's
``model-versions/get-artifact`` route, which reads whatever artifact store the server uses (proxied
``mlflow-artifacts:/`` or a path it can see). The download lands in the cache layout that :class:`ml.registry.Registry`
fills too (:func:`ml.registry.fill_cache`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml.config import CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE
from ml.mlflow_rest import MlflowRest, MlflowRestError
from ml.names import MODEL_NAME
from ml.registry_common import RegistryError, VersionInfo, fill_cache, parse_model_uri

__all__ = ["MODEL_CARD_FILE", "VERSION_FILES", "RegistryReader", "is_servable"]

MODEL_CARD_FILE = "MODEL_CARD.md"
# What a version folder may hold; the config is required, and one of the two runtimes' files.
VERSION_FILES = (CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE, MODEL_CARD_FILE)
# MLflow's answers for "no such model / alias" (404 for a model, 400 for an alias that does not exist).
_MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


def is_servable(path: Path) -> bool:
    """A config plus something to run: ``model.onnx`` (ONNX runtime) or ``model.safetensors`` (torch runtime)."""
    return (path / CONFIG_FILE).is_file() and (
        (path / ONNX_FILE).is_file() or (path / WEIGHTS_FILE).is_file()
    )


def _info(raw: dict[str, Any]) -> VersionInfo:
    return VersionInfo(
        version=str(raw.get("version", "")),
        run_id=raw.get("run_id") or None,
        tags={t["key"]: str(t.get("value", "")) for t in raw.get("tags", []) if "key" in t},
        source=raw.get("source"),
    )


class RegistryReader:
    """Read-only view of registered model ``name`` on the MLflow server at ``tracking_uri`` (http or https).

    Errors are :class:`ml.registry.RegistryError` with the server, the model and what failed in the message, as
    with :class:`ml.registry.Registry`. An unreachable server is retried a few times first (``retries``).
    """

    def __init__(
        self, tracking_uri: str, name: str = MODEL_NAME, *, rest: MlflowRest | None = None, retries: int = 3
    ) -> None:
        self.uri = tracking_uri
        self.name = name
        try:
            self.rest = rest or MlflowRest(tracking_uri, retries=retries)
        except MlflowRestError as e:
            raise RegistryError(e.message) from e

    def close(self) -> None:
        self.rest.close()

    def _fail(self, what: str, e: MlflowRestError) -> RegistryError:
        return RegistryError(f"MLflow {self.uri}, model {self.name}: {what}: {e.message}")

    def alias(self, alias: str) -> VersionInfo | None:
        """The version ``alias`` points at, or None when the model or the alias does not exist."""
        try:
            body = self.rest.get_json(
                "/api/2.0/mlflow/registered-models/alias",
                {"name": self.name, "alias": alias},
                missing_ok=True,
            )
        except MlflowRestError as e:
            if e.status in (400, 404) and e.code in _MISSING:
                return None
            raise self._fail(f"read alias {alias}", e) from e
        if body is None or "model_version" not in body:
            return None
        return _info(body["model_version"])

    def get(self, version: str) -> VersionInfo:
        try:
            body = self.rest.get_json(
                "/api/2.0/mlflow/model-versions/get", {"name": self.name, "version": version}
            )
        except MlflowRestError as e:
            raise self._fail(f"get version {version}", e) from e
        if not body or "model_version" not in body:
            raise RegistryError(f"MLflow {self.uri}, model {self.name}: version {version}: empty answer")
        return _info(body["model_version"])

    def resolve(self, uri: str) -> VersionInfo:
        """The version a ``models:/NAME/N`` or ``models:/NAME@ALIAS`` URI names on this server."""
        parsed = parse_model_uri(uri)
        if parsed.name != self.name:
            return RegistryReader(self.uri, parsed.name, rest=self.rest).resolve(uri)
        if parsed.version is not None:
            return self.get(parsed.version)
        assert parsed.alias is not None
        found = self.alias(parsed.alias)
        if found is None:
            raise RegistryError(f"MLflow {self.uri}: {uri}: no such alias (or no such model)")
        return found

    def download(self, version: str, dst: Path) -> Path:
        """The version's files (:data:`VERSION_FILES`, those it has) into ``dst``; returns ``dst``."""
        dst.mkdir(parents=True, exist_ok=True)
        for name in VERSION_FILES:
            try:
                self.rest.download(
                    "/model-versions/get-artifact",
                    {"name": self.name, "version": version, "path": name},
                    dst / name,
                    missing_ok=name != CONFIG_FILE,
                )
            except MlflowRestError as e:
                if name == CONFIG_FILE and e.status == 404:
                    raise RegistryError(
                        f"version {version} of {self.name} has no {CONFIG_FILE}: not a crackseg model"
                    ) from e
                raise self._fail(f"download {name} of version {version}", e) from e
        return dst

    def cached(self, version: str, cache_dir: Path) -> Path:
        """``<cache_dir>/<name>/v<version>``, downloaded once and renamed into place whole."""
        return fill_cache(
            cache_dir / self.name / f"v{version}",
            lambda into: self.download(version, into),
            is_servable,
            f"version {version} of {self.name} has neither {ONNX_FILE} nor {WEIGHTS_FILE}: nothing to serve",
        )
