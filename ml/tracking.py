"""MLflow helpers: where to track, a tracker that can be switched off, registry registration and downloads.

MLflow is imported lazily so that training runs on a machine without it (``tracking_uri="none"``).

Tracking URI resolution: the explicit argument, else ``MLFLOW_TRACKING_URI``, else a local SQLite store
``./mlruns/mlflow.db`` with artifacts under ``./mlruns`` (MLflow 3.17 refuses the plain ``./mlruns`` file store
unless ``MLFLOW_ALLOW_FILE_STORE=true``). ``none``/``off``/``disabled`` turn tracking off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ml.registry import MODEL_NAME, Registry, RegistryError, is_model_uri, parse_model_uri

REGISTERED_MODEL = MODEL_NAME
EXPERIMENT = "crackseg"
DISABLED = frozenset({"none", "off", "disabled", "false", "0"})
__all__ = ["is_model_uri"]


def resolve_tracking_uri(uri: str | None = None) -> str | None:
    """The tracking URI to use, or None when tracking is disabled (see the module docstring)."""
    value = uri if uri is not None else os.environ.get("MLFLOW_TRACKING_URI")
    if value is None or value.strip() == "":
        root = Path.cwd() / "mlruns"
        root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{root / 'mlflow.db'}"
    if value.strip().lower() in DISABLED:
        return None
    return value.strip()


class Tracker:
    """Tracking switched off: every call is a no-op. ``MlflowTracker`` overrides each method."""

    run_id: str | None = None
    uri: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flat parameters."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log metrics at ``step``."""

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Log a matplotlib figure."""

    def log_image(self, image: Any, artifact_file: str) -> None:
        """Log an (H, W, 3) uint8 image."""

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        """Upload a folder."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Tag the run."""

    def register(self, artifact_path: str, tags: Mapping[str, str]) -> str | None:
        """Register ``artifact_path`` of this run as a new version of ``crackseg``; returns the version."""
        return None


class MlflowTracker(Tracker):
    """An MLflow run; create it with ``open_tracker``."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri = uri
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: str(v) for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        import mlflow

        mlflow.log_figure(figure, artifact_file)

    def log_image(self, image: Any, artifact_file: str) -> None:
        import mlflow

        mlflow.log_image(image, artifact_file=artifact_file)

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        import mlflow

        mlflow.log_artifacts(str(local_dir), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        import mlflow

        mlflow.set_tags(dict(tags))

    def register(self, artifact_path: str, tags: Mapping[str, str]) -> str | None:
        if self.run_id is None or self.uri is None:
            raise RuntimeError("register() needs an active MLflow run")
        registry = Registry(self.uri)
        return registry.register(self.run_id, dict(tags), artifact_path=artifact_path).version


@contextlib.contextmanager
def open_tracker(
    uri: str | None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Iterator[Tracker]:
    """Start an MLflow run in experiment ``crackseg`` (or a no-op tracker when ``uri`` is None).

    ``run_id`` continues an existing run (a resumed training); when that run is unknown to this server a new
    one is started. The run ends FINISHED on success and FAILED when the block raises.
    """
    if uri is None:
        yield Tracker()
        return
    try:
        import mlflow
    except ImportError as e:
        raise RuntimeError(
            f"tracking URI {uri!r} requested but mlflow is not installed: install it or pass tracking 'none'"
        ) from e
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        mlflow.set_experiment(EXPERIMENT)
        run = None
        if run_id is not None:
            from mlflow.exceptions import MlflowException

            with contextlib.suppress(MlflowException):
                run = mlflow.start_run(run_id=run_id)
        if run is None:
            run = mlflow.start_run(run_name=run_name, tags=dict(tags or {}))
    except Exception as e:  # connection errors come in several types (requests, MlflowException)
        raise RuntimeError(f"cannot start an MLflow run at {uri}: {e}") from e
    try:
        yield MlflowTracker(uri, run.info.run_id)
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run(status="FINISHED")


def _registry(uri: str, tracking_uri: str | None) -> Registry:
    resolved = resolve_tracking_uri(tracking_uri)
    if resolved is None:
        raise ValueError(f"cannot resolve {uri}: MLflow tracking is disabled")
    return Registry(resolved, parse_model_uri(uri).name)


def resolve_model_version(uri: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """``models:/name/N`` or ``models:/name@alias`` → (name, version number)."""
    parsed = parse_model_uri(uri)
    if parsed.version is not None:
        return parsed.name, parsed.version
    try:
        return parsed.name, _registry(uri, tracking_uri).resolve(uri).version
    except RegistryError as e:
        raise ValueError(str(e)) from e


def download_model(
    uri: str, cache_dir: str | os.PathLike[str] | None = None, tracking_uri: str | None = None
) -> Path:
    """Download a registered model's checkpoint folder into the shared cache (see :mod:`ml.registry`).

    ``cache_dir`` defaults to ``CRACKSEG_MODEL_CACHE_DIR`` or ``state/model-cache``. Returns the folder holding
    ``model.safetensors`` + ``config.json``.
    """
    _, version = resolve_model_version(uri, tracking_uri)
    cache = Path(cache_dir or os.environ.get("CRACKSEG_MODEL_CACHE_DIR", "state/model-cache"))
    try:
        return _registry(uri, tracking_uri).cached(version, cache)
    except RegistryError as e:
        raise ValueError(f"cannot download {uri}: {e}") from e
