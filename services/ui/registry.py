"""Read-only view of the MLflow model registry over its REST API (no mlflow import, no torch).

Reads the registered model ``crackseg``: its versions with the tags of the contract (``dataset_hash``,
``feedback_count``, ``f1_ods``, ``f1_at_0_5``, ``status``, ``parent_version``, ``rejection_reason``), the
``champion`` alias, and the metrics of each version's training run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from ml.mlflow_rest import MlflowRest, MlflowRestError, MlflowUnavailable
from ml.names import CHAMPION_ALIAS, MODEL_NAME
from services.ui.settings import UISettings

CHAMPION = CHAMPION_ALIAS
# A registry page never needs more than the most recent versions; older ones stay in MLflow's own UI.
MAX_VERSIONS = 200


# Reading the registry failed (``message`` is meant for the person using the UI); the server was not reachable.
RegistryError = MlflowRestError
RegistryUnavailable = MlflowUnavailable


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, with what the UI shows about it."""

    version: int
    created_at: datetime | None
    run_id: str | None
    tags: dict[str, str]
    aliases: tuple[str, ...] = ()
    run_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.tags.get("status"):
            return self.tags["status"]
        return "promoted" if CHAMPION in self.aliases else "unknown"

    @property
    def is_champion(self) -> bool:
        return CHAMPION in self.aliases

    def metric(self, name: str) -> float | None:
        """A quality number: the version tag of the contract first, else the run's metric of that name."""
        raw = self.tags.get(name)
        if raw is not None:
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if math.isfinite(value):
                return value
        return self.run_metrics.get(name)

    def row(self) -> dict[str, Any]:
        """One row of the version history table."""
        feedback = self.tags.get("feedback_count")
        return {
            "version": self.version,
            "champion": self.is_champion,
            "status": self.status,
            "f1_ods": self.metric("f1_ods"),
            "f1_at_0_5": self.metric("f1_at_0_5"),
            "dataset_hash": (self.tags.get("dataset_hash") or "")[:12],
            "feedback_count": int(feedback) if feedback and feedback.isdigit() else None,
            "parent_version": self.tags.get("parent_version") or "",
            "created": self.created_at.strftime("%Y-%m-%d %H:%M") if self.created_at else "",
            "gate": self.gate_summary(),
            "note": self.tags.get("rejection_reason") or "",
        }

    def gate_summary(self) -> str:
        """The retraining gate's numbers (``gate_*`` tags): held-back feedback and base set, challenger vs champion."""
        if "gate_decision" not in self.tags:
            return ""
        parts = []
        for check, label in (("feedback", "feedback"), ("base", "base")):
            ours, theirs = self.tags.get(f"gate_{check}_challenger"), self.tags.get(f"gate_{check}_champion")
            if ours is not None:
                parts.append(f"{label} {ours} vs {theirs or '—'}")
        return f"{self.tags['gate_decision']}: " + " · ".join(parts)


@dataclass(frozen=True)
class RegistryView:
    """The registered model as the Models page shows it; ``versions`` newest first."""

    name: str
    exists: bool
    versions: tuple[ModelVersion, ...] = ()

    @property
    def champion(self) -> ModelVersion | None:
        return next((v for v in self.versions if v.is_champion), None)

    def quality_by_version(self, metric: str = "f1_ods") -> list[dict[str, Any]]:
        """``[{version, label, metric, status}]`` oldest first, for versions that have the metric."""
        rows = []
        for v in sorted(self.versions, key=lambda v: v.version):
            value = v.metric(metric)
            if value is not None:
                label = f"v{v.version} ★" if v.is_champion else f"v{v.version}"
                rows.append({"version": v.version, "label": label, metric: value, "status": v.status})
        return rows


class RegistryClient:
    """Reads the MLflow registry through its REST API.

    Args:
        tracking_uri: The MLflow server, e.g. ``http://127.0.0.1:5000``.
        model_name: The registered model (``crackseg``).
        token: Optional bearer token (``MLFLOW_TRACKING_TOKEN``).
        timeout: Seconds per request.
        retries: Extra attempts after connection errors and 502/503/504.
        backoff: First wait between attempts in seconds, doubled each time.
    """

    def __init__(
        self,
        tracking_uri: str,
        model_name: str = MODEL_NAME,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self.model_name = model_name
        self._rest = MlflowRest(
            self.tracking_uri,
            token=token,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            transport=transport,
            sleep=sleep,
        )

    @classmethod
    def from_settings(cls, settings: UISettings) -> RegistryClient:
        return cls(
            settings.mlflow_tracking_uri,
            settings.registered_model,
            token=settings.mlflow_token.get_secret_value() if settings.mlflow_token else None,
            timeout=settings.read_timeout,
            retries=settings.retries,
            backoff=settings.backoff,
        )

    @property
    def cache_key(self) -> str:
        return f"{self.tracking_uri}/{self.model_name}#{id(self)}"

    def close(self) -> None:
        self._rest.close()

    def view(self, with_run_metrics: bool = True) -> RegistryView:
        """The registered model, its versions (newest first) and their run metrics."""
        model = self._get("/api/2.0/mlflow/registered-models/get", {"name": self.model_name}, missing_ok=True)
        if model is None:
            return RegistryView(name=self.model_name, exists=False)
        aliases: dict[str, list[str]] = {}
        for entry in model.get("registered_model", {}).get("aliases", []):
            aliases.setdefault(str(entry.get("version")), []).append(str(entry.get("alias")))
        body = self._get(
            "/api/2.0/mlflow/model-versions/search",
            {"filter": f"name='{self.model_name}'", "max_results": MAX_VERSIONS},
        )
        versions = []
        for raw in (body or {}).get("model_versions", []):
            number = str(raw.get("version", ""))
            if not number.isdigit():
                continue
            run_id = raw.get("run_id") or None
            versions.append(
                ModelVersion(
                    version=int(number),
                    created_at=_from_millis(raw.get("creation_timestamp")),
                    run_id=run_id,
                    tags={t["key"]: str(t.get("value", "")) for t in raw.get("tags", []) if "key" in t},
                    aliases=tuple(sorted(aliases.get(number, []))),
                    run_metrics=self.run_metrics(run_id) if (with_run_metrics and run_id) else {},
                )
            )
        versions.sort(key=lambda v: v.version, reverse=True)
        return RegistryView(name=self.model_name, exists=True, versions=tuple(versions))

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """Latest value of each metric of a run; ``{}`` when the run is gone (deleted runs are not an error)."""
        body = self._get("/api/2.0/mlflow/runs/get", {"run_id": run_id}, missing_ok=True)
        if body is None:
            return {}
        metrics = body.get("run", {}).get("data", {}).get("metrics", [])
        out: dict[str, float] = {}
        for m in metrics:
            try:
                out[str(m["key"])] = float(m["value"])
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def _get(self, path: str, params: dict[str, Any], *, missing_ok: bool = False) -> dict[str, Any] | None:
        return self._rest.get_json(path, params, missing_ok=missing_ok)


def _from_millis(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
