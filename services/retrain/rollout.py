"""Rolling the predictor onto a promoted model: local HTTP hot-swap, a Deployment, or an InferenceService.

Each :class:`Rollout` applies the change, waits until the predictor really serves the new version, and on failure
undoes its own change (patch back the previous values) before raising :class:`RolloutError`. Reverting the MLflow
alias is the pipeline's job (run.py / rollback.py), since only it knows the previous champion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import httpx

from services.retrain import events
from services.retrain.errors import KubeError, RolloutError, RolloutTimeoutError
from services.retrain.kube import Kube

VERSION_ANNOTATION = "crackseg.io/model-version"
ENV_VERSION = "CRACKSEG_MODEL_VERSION"
ENV_SOURCE = "CRACKSEG_MODEL_SOURCE"
ENV_STORAGE_URI = "STORAGE_URI"  # how KServe passes storageUri to a custom container
LOAD_PATH = "/v2/repository/models/crackseg/load"


class Rollout(Protocol):
    """Puts a model version into service and reports which version is served."""

    def current(self) -> str | None: ...

    def roll(self, version: str, model_dir: Path) -> None:
        """Serve ``version`` (exported in ``model_dir``); wait for it; on failure revert and raise RolloutError."""
        ...


class _Waiter:
    def __init__(self, timeout_s: float, poll_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.sleep = sleep

    def until(self, what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            if done():
                return
            if time.monotonic() >= deadline:
                raise RolloutTimeoutError(f"{what}: not done after {self.timeout_s:g}s")
            self.sleep(self.poll_s)


def _same_kind(error: Exception, message: str) -> RolloutError:
    """Keep a timeout a timeout after the revert; an API failure while waiting becomes a RolloutError."""
    return type(error)(message) if isinstance(error, RolloutError) else RolloutError(message)


# -- local HTTP ---------------------------------------------------------------------------------------------------
class HttpRollout:
    """The local predictor's repository API: ``POST /v2/repository/models/crackseg/load`` then ``GET /ping``."""

    def __init__(
        self, url: str, token: str | None, models_dir: Path, timeout_s: float = 120.0, poll_s: float = 0.5
    ) -> None:
        self.url = url.rstrip("/")
        self.models_dir = models_dir
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.waiter = _Waiter(timeout_s, poll_s)

    def current(self) -> str | None:
        try:
            r = httpx.get(f"{self.url}/ping", timeout=10.0)
            r.raise_for_status()
        except httpx.HTTPError as e:
            raise RolloutError(f"predictor {self.url}/ping failed: {e}") from e
        version = r.json().get("model_version")
        return str(version) if version is not None else None

    def _load(self, model_dir: Path) -> None:
        try:
            r = httpx.post(
                f"{self.url}{LOAD_PATH}",
                json={"path": str(model_dir.resolve())},
                headers=self.headers,
                timeout=self.waiter.timeout_s,
            )
        except httpx.HTTPError as e:
            raise RolloutError(f"predictor {self.url}{LOAD_PATH} for {model_dir}: {e}") from e
        if r.status_code >= 400:
            raise RolloutError(
                f"predictor {self.url} refused to load {model_dir}: HTTP {r.status_code} {r.text[:300]}"
            )

    def roll(self, version: str, model_dir: Path) -> None:
        previous = self.current()
        # A refused hot swap leaves the old model serving: nothing to undo on that path.
        self._load(model_dir)

        def serving() -> bool:
            return self.current() == version

        try:
            self.waiter.until(f"predictor {self.url} serving version {version}", serving)
        except RolloutError as e:
            old_dir = self.models_dir / f"v{previous}"
            if previous and (old_dir / "config.json").is_file():
                self._load(old_dir)
                raise RolloutError(f"{e} (reloaded version {previous})") from e
            raise
        events.emit("rollout_done", rollout="http", url=self.url, version=version)


# -- Kubernetes Deployment ----------------------------------------------------------------------------------------
def _env_value(container: dict[str, Any], name: str) -> str | None:
    return next((e.get("value") for e in container.get("env") or [] if e.get("name") == name), None)


def _pick_container(containers: list[dict[str, Any]], wanted: str | None, where: str) -> dict[str, Any]:
    if not containers:
        raise RolloutError(f"{where} has no containers")
    if wanted is None:
        return containers[0]
    for c in containers:
        if c.get("name") == wanted:
            return c
    raise RolloutError(f"{where} has no container {wanted!r} (has {[c.get('name') for c in containers]})")


def _env_patch(values: dict[str, str | None]) -> list[dict[str, Any]]:
    # Strategic merge: env entries merge by name; "$patch: delete" removes one we added to a bare Deployment.
    return [
        {"name": k, "value": v} if v is not None else {"name": k, "$patch": "delete"}
        for k, v in values.items()
    ]


class DeploymentRollout:
    """Patches the predictor Deployment's pod template (annotation + env) and waits for the rollout."""

    def __init__(
        self,
        kube: Kube,
        name: str,
        *,
        container: str | None = None,
        timeout_s: float = 300.0,
        poll_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kube = kube
        self.name = name
        self.container = container
        self.waiter = _Waiter(timeout_s, poll_s, sleep)

    @property
    def where(self) -> str:
        return f"Deployment {self.kube.namespace}/{self.name}"

    def current(self) -> str | None:
        dep = self.kube.get_deployment(self.name)
        annotations = dep["spec"]["template"].get("metadata", {}).get("annotations") or {}
        if VERSION_ANNOTATION in annotations:
            return str(annotations[VERSION_ANNOTATION])
        containers = dep["spec"]["template"]["spec"]["containers"]
        return _env_value(_pick_container(containers, self.container, self.where), ENV_VERSION)

    def patch_body(self, container: str, version: str | None, source: str | None) -> dict[str, Any]:
        return {
            "spec": {
                "template": {
                    "metadata": {"annotations": {VERSION_ANNOTATION: version}},
                    "spec": {
                        "containers": [
                            {"name": container, "env": _env_patch({ENV_VERSION: version, ENV_SOURCE: source})}
                        ]
                    },
                }
            }
        }

    def roll(self, version: str, model_dir: Path) -> None:
        dep = self.kube.get_deployment(self.name)
        container = _pick_container(dep["spec"]["template"]["spec"]["containers"], self.container, self.where)
        annotations = dep["spec"]["template"].get("metadata", {}).get("annotations") or {}
        previous = self.patch_body(
            container["name"], _env_value(container, ENV_VERSION), _env_value(container, ENV_SOURCE)
        )
        previous["spec"]["template"]["metadata"]["annotations"][VERSION_ANNOTATION] = annotations.get(
            VERSION_ANNOTATION
        )
        self.kube.patch_deployment(self.name, self.patch_body(container["name"], version, str(model_dir)))
        events.emit("rollout_patched", rollout="deployment", target=self.where, version=version)
        try:
            self.waiter.until(f"{self.where} rollout of version {version}", self._rolled_out)
        except (RolloutError, KubeError) as e:
            try:
                self.kube.patch_deployment(self.name, previous)
            except KubeError as revert_error:
                raise RolloutError(f"{e}; reverting the patch also failed: {revert_error}") from e
            events.emit(
                "rollout_reverted", rollout="deployment", target=self.where, version=version, error=str(e)
            )
            raise _same_kind(e, f"{e} (patch reverted)") from e
        events.emit("rollout_done", rollout="deployment", target=self.where, version=version)

    def _rolled_out(self) -> bool:
        """The same test as ``kubectl rollout status``: observed, all updated, all available, no old pods."""
        dep = self.kube.get_deployment(self.name)
        status = dep.get("status") or {}
        for c in status.get("conditions") or []:
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                raise RolloutError(f"{self.where}: progress deadline exceeded: {c.get('message', '')}")
        want = dep["spec"].get("replicas", 1)
        return (
            (status.get("observedGeneration") or 0) >= (dep["metadata"].get("generation") or 0)
            and (status.get("updatedReplicas") or 0) >= want
            and (status.get("replicas") or 0) == (status.get("updatedReplicas") or 0)
            and (status.get("availableReplicas") or 0) >= want
        )


# -- KServe InferenceService --------------------------------------------------------------------------------------
class InferenceServiceRollout:
    """Points the InferenceService at ``storage_uri_template.format(version=N)`` and waits for Ready.

    A predictor with ``spec.predictor.model`` gets ``model.storageUri``; a custom-container predictor gets the
    ``STORAGE_URI`` and ``CRACKSEG_MODEL_VERSION`` variables of its first container (custom resources take JSON
    merge patches, which replace lists, so the whole containers list is sent back).
    """

    def __init__(
        self,
        kube: Kube,
        name: str,
        storage_uri_template: str,
        *,
        timeout_s: float = 300.0,
        poll_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kube = kube
        self.name = name
        self.template = storage_uri_template
        self.waiter = _Waiter(timeout_s, poll_s, sleep)

    @property
    def where(self) -> str:
        return f"InferenceService {self.kube.namespace}/{self.name}"

    def current(self) -> str | None:
        isvc = self.kube.get_inference_service(self.name)
        annotations = isvc.get("metadata", {}).get("annotations") or {}
        return annotations.get(VERSION_ANNOTATION)

    @staticmethod
    def _custom_container(isvc: dict[str, Any]) -> bool:
        predictor = isvc["spec"]["predictor"]
        return "model" not in predictor and bool(predictor.get("containers"))

    def patch_body(
        self, isvc: dict[str, Any], *, annotation: str | None, uri: str | None, env_version: str | None
    ) -> dict[str, Any]:
        """The merge patch setting the annotation, the storage URI and (custom container) the version variable."""
        body: dict[str, Any] = {"metadata": {"annotations": {VERSION_ANNOTATION: annotation}}}
        if not self._custom_container(isvc):
            body["spec"] = {"predictor": {"model": {"storageUri": uri}}}
            return body
        containers = [dict(c) for c in isvc["spec"]["predictor"]["containers"]]
        first = containers[0]
        env = [e for e in first.get("env") or [] if e.get("name") not in (ENV_STORAGE_URI, ENV_VERSION)]
        env += [
            {"name": k, "value": v}
            for k, v in ((ENV_STORAGE_URI, uri), (ENV_VERSION, env_version))
            if v is not None
        ]
        first["env"] = env
        body["spec"] = {"predictor": {"containers": containers}}
        return body

    def _revert_body(self, isvc: dict[str, Any]) -> dict[str, Any]:
        annotation = (isvc.get("metadata", {}).get("annotations") or {}).get(VERSION_ANNOTATION)
        if self._custom_container(isvc):
            container = isvc["spec"]["predictor"]["containers"][0]
            return self.patch_body(
                isvc,
                annotation=annotation,
                uri=_env_value(container, ENV_STORAGE_URI),
                env_version=_env_value(container, ENV_VERSION),
            )
        uri = (isvc["spec"]["predictor"].get("model") or {}).get("storageUri")
        return self.patch_body(isvc, annotation=annotation, uri=uri, env_version=None)

    def roll(self, version: str, model_dir: Path) -> None:
        isvc = self.kube.get_inference_service(self.name)
        previous = self._revert_body(isvc)
        uri = self.template.format(version=version)
        self.kube.patch_inference_service(
            self.name, self.patch_body(isvc, annotation=version, uri=uri, env_version=version)
        )
        events.emit(
            "rollout_patched", rollout="inferenceservice", target=self.where, version=version, uri=uri
        )
        try:
            self.waiter.until(f"{self.where} rollout of version {version}", self._ready)
        except (RolloutError, KubeError) as e:
            try:
                self.kube.patch_inference_service(self.name, previous)
            except KubeError as revert_error:
                raise RolloutError(f"{e}; reverting the patch also failed: {revert_error}") from e
            events.emit("rollout_reverted", rollout="inferenceservice", target=self.where, error=str(e))
            raise _same_kind(e, f"{e} (patch reverted)") from e
        events.emit("rollout_done", rollout="inferenceservice", target=self.where, version=version)

    def _ready(self) -> bool:
        isvc = self.kube.get_inference_service(self.name)
        status = isvc.get("status") or {}
        if (status.get("observedGeneration") or 0) < (isvc["metadata"].get("generation") or 0):
            return False
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        predictor = (status.get("components") or {}).get("predictor") or {}
        same_revision = predictor.get("latestReadyRevision") == predictor.get("latestCreatedRevision")
        return ready and same_revision


def build_rollout(settings: Any) -> Rollout | None:
    """The rollout named by ``CRACKSEG_ROLLOUT`` (``none``: registry only, nothing to roll)."""
    if settings.rollout == "none":
        return None
    if settings.rollout == "http":
        return HttpRollout(
            settings.predictor_url, settings.token(), settings.models_dir, settings.rollout_timeout_s
        )
    from services.retrain.kube import KubeClient, KubeConfig

    kube = KubeClient(KubeConfig.from_settings(settings))
    if settings.rollout == "deployment":
        return DeploymentRollout(
            kube,
            settings.predictor_name,
            container=settings.predictor_container,
            timeout_s=settings.rollout_timeout_s,
            poll_s=settings.rollout_poll_s,
        )
    return InferenceServiceRollout(
        kube,
        settings.predictor_name,
        settings.storage_uri_template,
        timeout_s=settings.rollout_timeout_s,
        poll_s=settings.rollout_poll_s,
    )
