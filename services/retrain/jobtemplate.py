"""The retraining Job comes from the manifest the Helm chart renders (one source of truth).

The chart puts a complete ``batch/v1`` Job into a ConfigMap (key ``job-template.yaml``) mounted into the trigger at
``CRACKSEG_JOB_TEMPLATE``. The trigger changes only what docs/retraining.md lists: ``metadata.name``,
``metadata.namespace``, the ``app.kubernetes.io/*`` and ``crackseg.io/*`` labels on the Job and its pod template,
two annotations, and the ``CRACKSEG_RUN_NAME`` variable of the retrain container. Everything else (image, command,
volumes, resources, service account, backoffLimit, ttlSecondsAfterFinished, …) is the chart's.
"""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from services.retrain.errors import ConfigError
from services.retrain.plan import RetrainPlan

RETRAIN_CONTAINER = "retrain"
SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink")


def load_template(path: Path) -> dict[str, Any]:
    """Read and check the Job manifest; raises :class:`ConfigError` naming the file and what is wrong."""
    try:
        manifest = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(
            f"Job template {path} not found (CRACKSEG_JOB_TEMPLATE; the chart mounts it)"
        ) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"Job template {path} is not valid YAML: {e}") from e
    return validate_template(manifest, source=str(path))


def validate_template(manifest: Any, source: str = "Job template") -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise ConfigError(f"{source}: expected one YAML mapping (a Job), got {type(manifest).__name__}")
    if manifest.get("apiVersion") != "batch/v1" or manifest.get("kind") != "Job":
        raise ConfigError(
            f"{source}: expected apiVersion batch/v1 and kind Job, got "
            f"{manifest.get('apiVersion')!r} / {manifest.get('kind')!r}"
        )
    containers = manifest.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    if not isinstance(containers, list) or not containers or not all(isinstance(c, dict) for c in containers):
        raise ConfigError(f"{source}: spec.template.spec.containers must be a non-empty list")
    return manifest


def watermark_label(watermark: datetime | None) -> str:
    """A label-safe rendering of the watermark (``20261127T153012.123456Z`` or ``none``)."""
    if watermark is None:
        return "none"
    return watermark.strftime("%Y%m%dT%H%M%S.%fZ")


def retrain_labels(template: dict[str, Any], plan: RetrainPlan) -> dict[str, str]:
    instance = template.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/instance", "crackseg")
    return {
        "app.kubernetes.io/name": "crackseg",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": "retrain",
        "app.kubernetes.io/managed-by": "crackseg-trigger",
        "app.kubernetes.io/part-of": "crackseg",
        "crackseg.io/watermark": watermark_label(plan.watermark),
        "crackseg.io/run": plan.run_name,
    }


def render_job(template: dict[str, Any], plan: RetrainPlan, namespace: str) -> dict[str, Any]:
    """The Job to create for ``plan``: a deep copy of the template with name, labels and run name filled in."""
    job = copy.deepcopy(validate_template(template))
    labels = retrain_labels(template, plan)
    metadata = job.setdefault("metadata", {})
    for field in (*SERVER_FIELDS, "generateName"):
        metadata.pop(field, None)
    job.pop("status", None)
    metadata["name"] = plan.run_name
    metadata["namespace"] = namespace
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        "crackseg.io/labelled-count": str(plan.labelled_count),
        "crackseg.io/target-watermark": plan.target_watermark.isoformat() if plan.target_watermark else "",
    }
    pod_meta = job["spec"]["template"].setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    containers = job["spec"]["template"]["spec"]["containers"]
    container = next((c for c in containers if c.get("name") == RETRAIN_CONTAINER), containers[0])
    env = [e for e in container.get("env") or [] if e.get("name") != "CRACKSEG_RUN_NAME"]
    env.append({"name": "CRACKSEG_RUN_NAME", "value": plan.run_name})
    container["env"] = env
    return job
