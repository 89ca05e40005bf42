"""Resolving a model source to a local checkpoint directory and the version it serves.

Sources: a checkpoint directory, ``models:/<name>/<N>`` or ``models:/<name>@<alias>`` (resolved through the MLflow
registry and downloaded once into the cache), or a bare version number (``$CRACKSEG_MODELS_DIR/v<N>`` when the
retrain job exported it there, else ``models:/crackseg/<N>``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ml.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_config
from services.predictor.errors import ModelSourceError
from services.predictor.settings import MODEL_NAME

_MODELS_URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9_.\-]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$"
)
_VERSION_DIR = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class ResolvedSource:
    path: Path
    version: str
    source: str


def _is_checkpoint(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def resolve_directory(path: Path, version: str | None = None) -> ResolvedSource:
    """A checkpoint folder; its version is ``version``, else the config's, else ``v<N>`` in the name, else the name."""
    if not path.is_dir():
        raise ModelSourceError(f"model directory {path} does not exist")
    if not _is_checkpoint(path):
        raise ModelSourceError(
            f"{path} is not a model directory: it must hold {WEIGHTS_FILE} and {CONFIG_FILE}"
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
    if _is_checkpoint(local):
        return resolve_directory(local, version)
    return resolve_registry(f"models:/{MODEL_NAME}/{version}", cache_dir, tracking_uri)


def resolve_registry(uri: str, cache_dir: Path, tracking_uri: str) -> ResolvedSource:
    """Download a registered version's ``model/`` artifact folder (once) and return it with its version number."""
    m = _MODELS_URI.match(uri)
    if not m:
        raise ModelSourceError(
            f"bad model URI {uri!r}: use models:/<name>/<version> or models:/<name>@<alias>"
        )
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name = m.group("name")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if m.group("alias"):
            mv = client.get_model_version_by_alias(name, m.group("alias"))
        else:
            mv = client.get_model_version(name, m.group("version"))
    except MlflowException as e:
        raise ModelSourceError(
            f"cannot resolve {uri} in the MLflow registry at {tracking_uri}: {e.message}"
        ) from e
    target = cache_dir / name / f"v{mv.version}"
    if _is_checkpoint(target):
        return ResolvedSource(path=target, version=str(mv.version), source=uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".v{mv.version}.", dir=target.parent))
    try:
        if mv.run_id:
            downloaded = Path(client.download_artifacts(mv.run_id, "model", str(staging)))
        else:
            downloaded = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=mv.source, dst_path=str(staging), tracking_uri=tracking_uri
                )
            )
        if not _is_checkpoint(downloaded) and _is_checkpoint(downloaded / "model"):
            downloaded = downloaded / "model"
        if not _is_checkpoint(downloaded):
            raise ModelSourceError(
                f"{uri} (version {mv.version}) has no model/ folder with {WEIGHTS_FILE} and {CONFIG_FILE}"
            )
        # Rename into place: a concurrent or crashed download never leaves a half-filled cache entry.
        try:
            os.replace(downloaded, target)
        except OSError:
            if not _is_checkpoint(target):
                raise
    except MlflowException as e:
        raise ModelSourceError(f"cannot download {uri} (version {mv.version}): {e.message}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ResolvedSource(path=target, version=str(mv.version), source=uri)


def resolve(source: str, *, cache_dir: Path, tracking_uri: str, version: str | None = None) -> ResolvedSource:
    """Any source string: a ``models:/`` URI or a directory (with an optional version label)."""
    if source.startswith("models:/"):
        return resolve_registry(source, cache_dir, tracking_uri)
    return resolve_directory(Path(source), version)
