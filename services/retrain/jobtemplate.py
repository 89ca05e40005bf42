"""The retraining Job comes from the manifest the Helm chart renders (one source of truth).

The chart puts a complete ``batch/v1`` Job into a ConfigMap (key ``job-template.yaml``) mounted into the trigger at
``CRACKSEG_JOB_TEMPLATE``. The trigger changes only what docs/retraining.md lists: ``metadata.name``,
``metadata.namespace``, the ``app.kubernetes.io/*`` and ``crackseg.io/*`` labels on the Job and its pod template,
two annotations, and the ``CRACKSEG_RUN_NAME`` variable of the retrain container. Everything else (image, command,
volumes, resources, service account, backoffLimit, ttlSecondsAfterFinished, …) is the chart's.

A run (one frozen labelled set, one run name) may take several attempts: each is its own Job, named
``<run>-<attempt>``, so a failed Job that is kept for inspection never blocks the next attempt (a fixed name would
answer 409 until the Job's TTL expired). Attempt numbers are derived from the Jobs that exist, so two triggers racing
on the same attempt still collide on one name (409: the second does nothing). The template's
``crackseg.io/max-attempts`` annotation bounds the attempts of one run; after that only new feedback (a new run name)
starts a Job.
"""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from services.retrain.errors import ConfigError
from services.retrain.plan import RetrainPlan

if TYPE_CHECKING:
    from services.retrain.kube import Kube

RETRAIN_CONTAINER = "retrain"
RUN_LABEL = "crackseg.io/run"
ATTEMPT_LABEL = "crackseg.io/attempt"
MAX_ATTEMPTS_ANNOTATION = "crackseg.io/max-attempts"
DEFAULT_MAX_ATTEMPTS = 3
RETRAIN_SELECTOR = "app.kubernetes.io/name=crackseg,app.kubernetes.io/component=retrain"
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
        RUN_LABEL: plan.run_name,
    }


def job_name(run_name: str, attempt: int) -> str:
    """``<run>-<attempt>``: 17 + 12 + a few characters, far below the 63 a Job name (and its label) allows."""
    return f"{run_name}-{attempt}"


def max_attempts(template: dict[str, Any]) -> int:
    raw = (template.get("metadata", {}).get("annotations") or {}).get(MAX_ATTEMPTS_ANNOTATION)
    if raw is None:
        return DEFAULT_MAX_ATTEMPTS
    try:
        value = int(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"Job template: annotation {MAX_ATTEMPTS_ANNOTATION}={raw!r} is not an integer"
        ) from e
    if value < 1:
        raise ConfigError(f"Job template: annotation {MAX_ATTEMPTS_ANNOTATION} must be >= 1, got {value}")
    return value


def _conditions(job: dict[str, Any]) -> set[str]:
    status = job.get("status") or {}
    return {str(c.get("type")) for c in status.get("conditions") or [] if c.get("status") == "True"}


def _attempt(job: dict[str, Any]) -> int:
    try:
        return int((job.get("metadata", {}).get("labels") or {}).get(ATTEMPT_LABEL, "0"))
    except ValueError:
        return 0


class Launch(NamedTuple):
    """What :func:`launch_job` did: the Job it created or found, and why."""

    job_name: str | None
    created: bool
    detail: str


def launch_job(kube: Kube, template: dict[str, Any], plan: RetrainPlan) -> Launch:
    """Create the next attempt of ``plan``'s run unless one runs, one succeeded, or the attempts are used up."""
    where = kube.namespace
    jobs = kube.list_jobs(f"{RETRAIN_SELECTOR},{RUN_LABEL}={plan.run_name}")
    done = [j for j in jobs if "Complete" in _conditions(j)]
    if done:
        name = done[0]["metadata"]["name"]
        return Launch(name, False, f"run {plan.run_name} already finished: Job {where}/{name} completed")
    running = [j for j in jobs if "Failed" not in _conditions(j)]
    if running:
        name = running[0]["metadata"]["name"]
        return Launch(name, False, f"run {plan.run_name} is in progress: Job {where}/{name}")
    limit = max_attempts(template)
    if len(jobs) >= limit:
        return Launch(
            None,
            False,
            f"run {plan.run_name} failed {len(jobs)} times (limit {limit}, retrain.job.maxAttempts): "
            "new feedback starts a new run",
        )
    attempt = max((_attempt(j) for j in jobs), default=0) + 1
    body = render_job(template, plan, where, attempt=attempt)
    name = body["metadata"]["name"]
    if kube.create_job(body):
        return Launch(name, True, f"created Job {where}/{name} (attempt {attempt} of {limit})")
    return Launch(name, False, f"Job {where}/{name} already exists (another trigger created it)")


def render_job(
    template: dict[str, Any], plan: RetrainPlan, namespace: str, attempt: int = 1
) -> dict[str, Any]:
    """The Job to create for ``plan``: a deep copy of the template with name, labels and run name filled in."""
    job = copy.deepcopy(validate_template(template))
    labels = {**retrain_labels(template, plan), ATTEMPT_LABEL: str(attempt)}
    metadata = job.setdefault("metadata", {})
    for field in (*SERVER_FIELDS, "generateName"):
        metadata.pop(field, None)
    job.pop("status", None)
    metadata["name"] = job_name(plan.run_name, attempt)
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
