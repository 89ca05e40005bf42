"""Resolving a model source to a local checkpoint directory and the version it serves.

Sources: a checkpoint directory, ``models:/<name>/<N>`` or ``models:/<name>@<alias>`` (resolved through the MLflow
server's REST API, :class:`ml.registry_rest.RestRegistry`, so the lean predictor needs no mlflow package, and
downloaded once into the cache), or a bare version number (``$CRACKSEG_MODELS_DIR/v<N>`` when the
retrain job exported it there, else ``models:/crackseg/<N>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ml.config import CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE, read_config
from ml.names import MODEL_NAME
from ml.registry_common import RegistryError, parse_model_uri
from ml.registry_rest import RestRegistry, is_servable
from services.predictor.errors import ModelSourceError

_VERSION_DIR = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class ResolvedSource:
    path: Path
    version: str
    source: str


def resolve_directory(path: Path, version: str | None = None) -> ResolvedSource:
    """A checkpoint folder; its version is ``version``, else the config's, else ``v<N>`` in the name, else the name."""
    if not path.is_dir():
        raise ModelSourceError(f"model directory {path} does not exist")
    if not is_servable(path):  # the runtime that loads it says which file it misses
        raise ModelSourceError(
            f"{path} is not a model directory: it must hold {CONFIG_FILE} and {ONNX_FILE} or {WEIGHTS_FILE}"
        )
    if version is None:
        try:
            version = read_config(path).version
        except ValueError as e:
            raise ModelSourceError(str(e)) from e
    if version is None:
        m = _VERSION_DIR.match(path.name)
        version = m.group(1) if m else path.name
    return ResolvedSource(path=path, version=str(version), source=str(path))


def resolve_version(version: str, models_dir: Path, cache_dir: Path, tracking_uri: str) -> ResolvedSource:
    """``$CRACKSEG_MODELS_DIR/v<N>`` when present, else the registry's ``models:/crackseg/<N>``."""
    if not re.fullmatch(r"\d{1,9}", version):
        raise ModelSourceError(f'version must be a positive integer such as "3", got {version!r}')
    local = models_dir / f"v{version}"
    if is_servable(local):
        return resolve_directory(local, version)
    return resolve_registry(f"models:/{MODEL_NAME}/{version}", cache_dir, tracking_uri)


def resolve_registry(uri: str, cache_dir: Path, tracking_uri: str) -> ResolvedSource:
    """Download a registered version's model folder (once, into the shared cache) and return it with its version."""
    try:
        parsed = parse_model_uri(uri)
    except ValueError as e:
        raise ModelSourceError(
            f"bad model URI {uri!r}: use models:/<name>/<version> or models:/<name>@<alias>"
        ) from e
    try:
        registry = RestRegistry(tracking_uri, parsed.name)
    except RegistryError as e:
        raise ModelSourceError(f"cannot read {uri}: {e}") from e
    try:
        try:
            version = registry.resolve(uri).version
        except RegistryError as e:
            raise ModelSourceError(
                f"cannot resolve {uri} in the MLflow registry at {tracking_uri}: {e}"
            ) from e
        try:
            target = registry.cached(version, cache_dir)
        except RegistryError as e:
            raise ModelSourceError(f"cannot download {uri} (version {version}): {e}") from e
    finally:
        registry.close()
    return ResolvedSource(path=target, version=version, source=uri)


def resolve(source: str, *, cache_dir: Path, tracking_uri: str, version: str | None = None) -> ResolvedSource:
    """Any source string: a ``models:/`` URI or a directory (with an optional version label)."""
    if source.startswith("models:/"):
        return resolve_registry(source, cache_dir, tracking_uri)
    return resolve_directory(Path(source), version)
