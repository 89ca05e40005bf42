"""What both registry clients share, without importing mlflow: errors, ``models:/`` URIs, versions, the cache.

:class:`ml.registry.Registry` (the mlflow client) and :class:`ml.registry_rest.RestRegistry` (MLflow's REST API,
for the lean predictor) build on it, so a process that reads the registry over REST never imports mlflow.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ml.fsutil import atomic_dir

__all__ = [
    "MISSING_CODES",
    "ModelUri",
    "RegistryError",
    "VersionInfo",
    "fill_cache",
    "is_model_uri",
    "parse_model_uri",
]

# MLflow's error codes for "no such model / version / alias" (answered as 404, or 400 for a missing alias).
MISSING_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")

_MODEL_URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9_.\-]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$"
)


class RegistryError(RuntimeError):
    """A registry operation failed or the registry is not in the state needed; the message names URI and model."""

    exit_code = 1


@dataclass(frozen=True)
class ModelUri:
    """A parsed ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``: exactly one of version and alias is set."""

    name: str
    version: str | None = None
    alias: str | None = None


def is_model_uri(value: str | os.PathLike[str]) -> bool:
    return str(value).startswith("models:/")


def parse_model_uri(uri: str) -> ModelUri:
    """Parse a registry URI; raises ``ValueError`` saying which forms are accepted."""
    match = _MODEL_URI.match(uri)
    if not match:
        raise ValueError(f"{uri!r} is not a model URI: use models:/NAME/VERSION or models:/NAME@ALIAS")
    return ModelUri(match["name"], match["version"], match["alias"])


@dataclass(frozen=True)
class VersionInfo:
    version: str
    run_id: str | None
    tags: dict[str, str]
    source: str | None = None


def fill_cache(
    target: Path, download: Callable[[Path], Path], complete: Callable[[Path], bool], incomplete: str
) -> Path:
    """``target`` when ``complete`` already, else ``download(tmp)``'s files renamed into ``target`` whole.

    The one cache layout of the registry clients (:class:`Registry` and :class:`ml.registry_rest.RestRegistry`):
    a crash or a racing download never leaves a half-filled version folder. ``incomplete`` is the error when the
    downloaded folder is not ``complete``.
    """
    if complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=f".{target.name}.download.", dir=target.parent) as download_dir,
        atomic_dir(target) as staging,
    ):
        downloaded = download(Path(download_dir))
        if not complete(downloaded):
            raise RegistryError(incomplete)
        # Every file of the version's folder: the weights and config, and the model.onnx the lean (torch-free)
        # predictor serves, plus its model card.
        for item in downloaded.iterdir():
            if item.is_file():
                shutil.copyfile(item, staging / item.name)
    return target
