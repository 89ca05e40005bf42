"""The MLflow model registry: names, ``models:/`` URIs, versions, tags, aliases, downloads.

Training, evaluation, the retraining loop and ``crackseg up`` go through :class:`Registry` (the mlflow client,
imported lazily, so importing this module is cheap and torch-free). The processes that do not carry the mlflow
package read over MLflow's REST API instead: the lean predictor resolves and downloads versions through
:class:`ml.registry_rest.RestRegistry`, and the Streamlit UI lists versions through ``services.ui.registry``
(both on :class:`ml.mlflow_rest.MlflowRest`).

The download cache has one layout, shared by the predictor and ``crackseg eval``: ``<cache_dir>/<model name>/v<N>/``
holding every file of the version (``config.json``, ``model.safetensors``, ``model.onnx`` …), filled by
:func:`fill_cache` (renamed into place whole).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ml.names import CHAMPION_ALIAS, CHAMPION_URI, MODEL_NAME
from ml.registry_common import (
    MISSING_CODES,
    ModelUri,
    RegistryError,
    VersionInfo,
    fill_cache,
    is_model_uri,
    parse_model_uri,
)

__all__ = [
    "CHAMPION_ALIAS",
    "CHAMPION_URI",
    "MODEL_NAME",
    "ModelUri",
    "Registry",
    "RegistryError",
    "VersionInfo",
    "fill_cache",
    "is_model_uri",
    "parse_model_uri",
]
CHECKPOINT_FILES = ("model.safetensors", "config.json")


def is_checkpoint(path: Path) -> bool:
    return all((path / name).is_file() for name in CHECKPOINT_FILES)


class Registry:
    """Registered model ``name`` in an MLflow server: versions, tags, the ``champion`` alias and downloads."""

    def __init__(self, tracking_uri: str, name: str = MODEL_NAME) -> None:
        from mlflow import MlflowClient

        self.uri = tracking_uri
        self.name = name
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _fail(self, what: str, e: Exception) -> RegistryError:
        message = getattr(e, "message", str(e))
        return RegistryError(f"MLflow {self.uri}, model {self.name}: {what}: {message}")

    @staticmethod
    def _info(mv: Any) -> VersionInfo:
        return VersionInfo(
            version=str(mv.version), run_id=mv.run_id or None, tags=dict(mv.tags or {}), source=mv.source
        )

    # -- reading ---------------------------------------------------------------------------------------------
    def alias(self, alias: str) -> VersionInfo | None:
        """The version ``alias`` points at, or None when the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self._info(self.client.get_model_version_by_alias(self.name, alias))
        except MlflowException as e:
            if e.error_code in MISSING_CODES:
                return None
            raise self._fail(f"read alias {alias}", e) from e

    def champion(self) -> VersionInfo | None:
        return self.alias(CHAMPION_ALIAS)

    def get(self, version: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            return self._info(self.client.get_model_version(self.name, version))
        except MlflowException as e:
            raise self._fail(f"get version {version}", e) from e

    def resolve(self, uri: str) -> VersionInfo:
        """The version a ``models:/`` URI names (of this registry's server; the URI's model name is used)."""
        parsed = parse_model_uri(uri)
        registry = self if parsed.name == self.name else Registry(self.uri, parsed.name)
        if parsed.version is not None:
            return registry.get(parsed.version)
        assert parsed.alias is not None
        found = registry.alias(parsed.alias)
        if found is None:
            raise RegistryError(f"MLflow {self.uri}: {uri}: no such alias (or no such model)")
        return found

    def find_by_run(self, run_name: str) -> VersionInfo | None:
        """The version a retraining run already registered (so a rerun does not register twice)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(
                f"name = '{self.name}' and tags.retrain_run = '{run_name}'"
            )
        except MlflowException as e:
            raise self._fail(f"search versions of run {run_name}", e) from e
        return self._info(max(found, key=lambda mv: int(mv.version))) if found else None

    def versions(self) -> list[VersionInfo]:
        """All versions, oldest first."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name = '{self.name}'")
        except MlflowException as e:
            raise self._fail("list versions", e) from e
        return sorted((self._info(mv) for mv in found), key=lambda v: int(v.version))

    # -- writing ---------------------------------------------------------------------------------------------
    def ensure_model(self, description: str | None = None) -> None:
        """Create the registered model if it does not exist (a racing creator is fine)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            with contextlib.suppress(MlflowException):
                self.client.create_registered_model(self.name, description=description)

    def register(self, run_id: str, tags: dict[str, str], artifact_path: str = "model") -> VersionInfo:
        """A new version from the run's ``artifact_path`` folder, with lineage tags."""
        from mlflow.exceptions import MlflowException

        try:
            self.ensure_model()
            run = self.client.get_run(run_id)
            mv = self.client.create_model_version(
                self.name,
                source=f"{run.info.artifact_uri}/{artifact_path}",
                run_id=run_id,
                tags={k: str(v) for k, v in tags.items()},
            )
        except MlflowException as e:
            raise self._fail(f"register run {run_id}", e) from e
        return self._info(mv)

    def set_tags(self, version: str, tags: dict[str, str]) -> None:
        from mlflow.exceptions import MlflowException

        try:
            for key, value in tags.items():
                self.client.set_model_version_tag(self.name, version, key, value)
        except MlflowException as e:
            raise self._fail(f"tag version {version}", e) from e

    def set_champion(self, version: str | None) -> None:
        """Point ``champion`` at ``version``; ``None`` removes the alias (reverting the very first promotion)."""
        from mlflow.exceptions import MlflowException

        try:
            if version is None:
                self.client.delete_registered_model_alias(self.name, CHAMPION_ALIAS)
            else:
                self.client.set_registered_model_alias(self.name, CHAMPION_ALIAS, version)
        except MlflowException as e:
            raise self._fail(f"set alias {CHAMPION_ALIAS} -> {version}", e) from e

    # -- downloads -------------------------------------------------------------------------------------------
    def download_run_model(self, run_id: str, dst: Path) -> Path:
        """The ``model/`` folder a training run logged (the challenger before it is registered)."""
        from mlflow.exceptions import MlflowException

        dst.mkdir(parents=True, exist_ok=True)
        try:
            path = Path(self.client.download_artifacts(run_id, "model", str(dst)))
        except MlflowException as e:
            raise self._fail(f"download model/ of run {run_id}", e) from e
        if not (path / "config.json").is_file():
            raise RegistryError(f"run {run_id} has no model/config.json artifact ({path})")
        return path

    def download(self, version: str, dst: Path) -> Path:
        """Download the version's model folder under ``dst``; returns the folder holding ``config.json``."""
        from mlflow.exceptions import MlflowException

        info = self.get(version)
        dst.mkdir(parents=True, exist_ok=True)
        try:
            if info.run_id:
                path = Path(self.client.download_artifacts(info.run_id, "model", str(dst)))
            else:
                import mlflow

                uri = self.client.get_model_version_download_uri(self.name, version)
                path = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=uri, dst_path=str(dst), tracking_uri=self.uri
                    )
                )
        except MlflowException as e:
            raise self._fail(f"download version {version}", e) from e
        for candidate in (path, path / "model"):
            if (candidate / "config.json").is_file():
                return candidate
        raise RegistryError(
            f"version {version} of {self.name} has no model/ folder with config.json ({path})"
        )

    def cached(self, version: str, cache_dir: Path) -> Path:
        """``<cache_dir>/<name>/v<version>``, downloaded once and renamed into place whole (race- and crash-safe)."""
        return fill_cache(
            cache_dir / self.name / f"v{version}",
            lambda into: self.download(version, into),
            is_checkpoint,
            f"version {version} of {self.name} lacks {' or '.join(CHECKPOINT_FILES)}: not a crackseg checkpoint",
        )
