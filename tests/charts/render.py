"""Render charts/crackseg with the real Helm SDK (helm-python-sdk) and return the objects as dictionaries."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import yaml
from helm_python import _native

from tests.helpers.procs import REPO

CHART = REPO / "charts" / "crackseg"
SCENARIOS = sorted(CHART.glob("ci/*-values.yaml"))
RELEASE = "crackseg"
NAMESPACE = "crackseg"
# The CRDs the chart's optional objects need, as the API server would advertise them once installed.
API_VERSIONS = [
    "monitoring.coreos.com/v1",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PodMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
    "serving.kserve.io/v1beta1",
    "serving.kserve.io/v1beta1/InferenceService",
]
KUBE_VERSIONS = ["1.33", "1.37"]


@dataclass(frozen=True)
class Rendered:
    """One rendered object and the template that produced it."""

    template: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


@cache
def _chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def render_raw(values: dict[str, Any] | None = None, kube_version: str = "1.33") -> dict[str, str]:
    """Template path → rendered text. Uses the SDK's render call with an explicit kube version and API list
    (``Chart.render`` does not expose them; the options are the library's documented render options)."""
    opts = {
        "name": RELEASE,
        "namespace": NAMESPACE,
        "kube_version": f"v{kube_version}.0",
        "api_versions": API_VERSIONS,
    }
    chart = _chart()
    out: dict[str, str] = json.loads(
        _native.call_string("helm_render", chart._raw(), json.dumps(values or {}), json.dumps(opts))
    )
    return out


def render(values: dict[str, Any] | None = None, kube_version: str = "1.33") -> list[Rendered]:
    """Every object the chart renders with ``values`` (NOTES.txt excluded)."""
    objects: list[Rendered] = []
    for template, text in sorted(render_raw(values, kube_version).items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(Rendered(template, doc))
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    return next(v for k, v in render_raw(values).items() if k.endswith("NOTES.txt"))


def scenario_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def schemas_dir() -> Path | None:
    """The CRD JSON schemas: $CRACKSEG_SCHEMAS, else ../shared/schemas (None when absent)."""
    root = Path(os.environ.get("CRACKSEG_SCHEMAS", REPO.parent / "shared" / "schemas"))
    crds = root / "crds" if (root / "crds").is_dir() else root
    return crds if any(crds.glob("*.json")) else None


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload (Deployment, CronJob, Job, InferenceService predictor), or None."""
    kind = obj["kind"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return dict(obj["spec"]["template"]["spec"])
    if kind == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    if kind == "InferenceService":
        return dict(obj["spec"]["predictor"])
    return None


def job_template(objects: list[Rendered]) -> dict[str, Any]:
    """The retraining Job manifest the chart renders into the trigger's ConfigMap."""
    cm = next(
        r.obj for r in objects if r.kind == "ConfigMap" and "job-template.yaml" in r.obj.get("data", {})
    )
    job: dict[str, Any] = yaml.safe_load(cm["data"]["job-template.yaml"])
    return job


def workloads(objects: list[Rendered]) -> list[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every pod the release runs, including the Job the trigger creates."""
    out = [(f"{r.kind}/{r.name}", spec) for r in objects if (spec := pod_spec(r.obj)) is not None]
    if any(r.kind == "CronJob" for r in objects):
        out.append(("Job/retrain (template)", pod_spec(job_template(objects)) or {}))
    return out
