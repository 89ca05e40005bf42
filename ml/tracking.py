"""MLflow helpers: where to track, a tracker that can be switched off, registry registration and downloads.

MLflow is imported lazily so that training runs on a machine without it (``tracking_uri="none"``).

Tracking URI resolution: the explicit argument, else ``MLFLOW_TRACKING_URI``, else a local SQLite store
``./mlruns/mlflow.db`` with artifacts under ``./mlruns`` (MLflow 3.17 refuses the plain ``./mlruns`` file store
unless ``MLFLOW_ALLOW_FILE_STORE=true``). ``none``/``off``/``disabled`` turn tracking off.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REGISTERED_MODEL = "crackseg"
EXPERIMENT = "crackseg"
DISABLED = frozenset({"none", "off", "disabled", "false", "0"})
_MODEL_URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9_.\-]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$"
)


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


def is_model_uri(value: str | os.PathLike[str]) -> bool:
    return str(value).startswith("models:/")


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
        from mlflow import MlflowClient

        self.uri = uri
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

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
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(REGISTERED_MODEL)
        except MlflowException:
            # Two trainers racing here both try to create it; the loser's "already exists" is harmless.
            with contextlib.suppress(MlflowException):
                self.client.create_registered_model(REGISTERED_MODEL)
        if self.run_id is None:
            raise RuntimeError("register() needs an active MLflow run")
        run = mlflow.get_run(self.run_id)
        version = self.client.create_model_version(
            REGISTERED_MODEL,
            source=f"{run.info.artifact_uri}/{artifact_path}",
            run_id=self.run_id,
            tags={k: str(v) for k, v in tags.items()},
        )
        return str(version.version)


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


def resolve_model_version(uri: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """``models:/name/N`` or ``models:/name@alias`` → (name, version number)."""
    match = _MODEL_URI.match(uri)
    if not match:
        raise ValueError(f"{uri!r} is not a model URI: use models:/NAME/VERSION or models:/NAME@ALIAS")
    name = match["name"]
    if match["version"]:
        return name, match["version"]
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    resolved = resolve_tracking_uri(tracking_uri)
    if resolved is None:
        raise ValueError(f"cannot resolve {uri}: MLflow tracking is disabled")
    try:
        mv = MlflowClient(tracking_uri=resolved, registry_uri=resolved).get_model_version_by_alias(
            name, match["alias"]
        )
    except MlflowException as e:
        raise ValueError(f"{uri}: no such alias in the registry at {resolved}: {e.message}") from e
    return name, str(mv.version)


def download_model(
    uri: str, cache_dir: str | os.PathLike[str] | None = None, tracking_uri: str | None = None
) -> Path:
    """Download a registered model's checkpoint folder into ``cache_dir/<name>/<version>`` (reused if present).

    ``cache_dir`` defaults to ``CRACKSEG_MODEL_CACHE_DIR`` or ``state/model-cache``. Returns the folder holding
    ``model.safetensors`` + ``config.json``.
    """
    name, version = resolve_model_version(uri, tracking_uri)
    cache = Path(cache_dir or os.environ.get("CRACKSEG_MODEL_CACHE_DIR", "state/model-cache"))
    target = cache / name / version
    if (target / "config.json").is_file():
        return target
    import mlflow
    from mlflow.exceptions import MlflowException

    resolved = resolve_tracking_uri(tracking_uri)
    if resolved is None:
        raise ValueError(f"cannot download {uri}: MLflow tracking is disabled")
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=target.parent))
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=str(staging)
            )
        )
        if not (local / "config.json").is_file():
            raise ValueError(f"{uri} (version {version}) holds no config.json: not a crackseg checkpoint")
        if target.exists():  # another process won the race; keep its copy
            return target
        os.replace(local, target)
    except MlflowException as e:
        raise ValueError(f"cannot download {uri} from {resolved}: {e.message}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
