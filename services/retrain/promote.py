"""The promotion gate and the MLflow registry operations of the loop (aliases, lineage tags, downloads).

The gate compares challenger and champion on the same fixed evaluation set: the challenger is promoted unless its
metric is lower than the champion's by more than the tolerance. With no champion at all, it is promoted.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from services.retrain.errors import RegistryError
from services.retrain.settings import CHAMPION_ALIAS, MODEL_NAME


class GateDecision(BaseModel):
    """Whether to promote, and the reason in words (it becomes the ``rejection_reason`` tag when rejected)."""

    promote: bool
    reason: str
    metric: str
    challenger: float
    champion: float | None
    tolerance: float


def gate(metric: str, challenger: float, champion: float | None, tolerance: float) -> GateDecision:
    """Promote unless ``challenger < champion - tolerance`` (a negative tolerance demands an improvement)."""
    if not -1.0 <= tolerance <= 1.0:
        raise ValueError(f"tolerance must lie in [-1, 1], got {tolerance}")
    common = {"metric": metric, "challenger": challenger, "champion": champion, "tolerance": tolerance}
    if champion is None:
        return GateDecision(promote=True, reason="no champion yet", **common)
    if challenger < champion - tolerance:
        return GateDecision(
            promote=False,
            reason=(
                f"{metric} {challenger:.4f} is worse than the champion's {champion:.4f} "
                f"minus the tolerance {tolerance:g}"
            ),
            **common,
        )
    return GateDecision(
        promote=True,
        reason=f"{metric} {challenger:.4f} vs champion {champion:.4f} (tolerance {tolerance:g})",
        **common,
    )


@dataclass(frozen=True)
class VersionInfo:
    version: str
    run_id: str | None
    tags: dict[str, str]


class Registry:
    """Registered model ``crackseg`` in an MLflow server: versions, tags and the ``champion`` alias."""

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
        return VersionInfo(version=str(mv.version), run_id=mv.run_id, tags=dict(mv.tags or {}))

    def champion(self) -> VersionInfo | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._info(self.client.get_model_version_by_alias(self.name, CHAMPION_ALIAS))
        except MlflowException as e:
            if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise self._fail("read alias champion", e) from e

    def get(self, version: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            return self._info(self.client.get_model_version(self.name, version))
        except MlflowException as e:
            raise self._fail(f"get version {version}", e) from e

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
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name = '{self.name}'")
        except MlflowException as e:
            raise self._fail("list versions", e) from e
        return sorted((self._info(mv) for mv in found), key=lambda v: int(v.version))

    def register(self, run_id: str, tags: dict[str, str], artifact_path: str = "model") -> VersionInfo:
        """A new version from the run's ``model/`` artifact folder, with lineage tags."""
        from mlflow.exceptions import MlflowException

        try:
            try:
                self.client.get_registered_model(self.name)
            except MlflowException:
                with contextlib.suppress(MlflowException):  # a racing creator is fine
                    self.client.create_registered_model(self.name)
            run = self.client.get_run(run_id)
            mv = self.client.create_model_version(
                self.name, source=f"{run.info.artifact_uri}/{artifact_path}", run_id=run_id, tags=tags
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
        """Download the version's ``model/`` folder under ``dst``; returns the folder holding ``config.json``."""
        from mlflow.exceptions import MlflowException

        info = self.get(version)
        dst.mkdir(parents=True, exist_ok=True)
        try:
            if info.run_id:
                path = Path(self.client.download_artifacts(info.run_id, "model", str(dst)))
            else:
                import mlflow

                uri = self.client.get_model_version_download_uri(self.name, version)
                path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
        except MlflowException as e:
            raise self._fail(f"download version {version}", e) from e
        for candidate in (path, path / "model"):
            if (candidate / "config.json").is_file():
                return candidate
        raise RegistryError(
            f"version {version} of {self.name} has no model/ folder with config.json ({path})"
        )
