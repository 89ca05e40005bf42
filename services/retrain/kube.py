"""The one wrapper around the official ``kubernetes`` client that the retraining loop uses.

Everything Kubernetes goes through :class:`Kube` (a Protocol): :class:`KubeClient` talks to a real API server,
tests use a fake of this same interface. The wrapper speaks plain dicts in the API's own camelCase shape, so callers
and fakes never depend on the client's model classes. In-cluster versus kubeconfig is chosen once, in
:meth:`KubeConfig.load`; retries are configured once, on the client ``Configuration``; every error names the kind,
namespace/name and HTTP status; 404 and 409 become :class:`KubeNotFoundError` / :class:`KubeConflictError`, except
that a 409 on create means "already exists", which is success for our idempotent, deterministically named Jobs.
The ``kubernetes`` package is imported only when a real client is built (the local loop does not need it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel, Field

from services.retrain.errors import KubeConflictError, KubeError, KubeNotFoundError

if TYPE_CHECKING:
    from services.retrain.settings import CommonSettings

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# Transient answers worth retrying; 409/404/422 are answers, not glitches.
RETRY_STATUSES = (429, 500, 502, 503, 504)

T = TypeVar("T")


class Permission(NamedTuple):
    """One RBAC rule atom: ``verb`` on ``resource`` in API group ``group`` ("" is the core group)."""

    group: str
    resource: str
    verb: str


# Every Kube method and the one API permission it needs: the chart's Roles must grant exactly what the code calls
# (tests/services/retrain/test_kubernetes.py derives each Role's needs from the calls the code really makes).
PERMISSIONS: dict[str, Permission] = {
    "create_job": Permission("batch", "jobs", "create"),
    "list_jobs": Permission("batch", "jobs", "list"),
    "label_job": Permission("batch", "jobs", "patch"),
    "get_deployment": Permission("apps", "deployments", "get"),
    "patch_deployment": Permission("apps", "deployments", "patch"),
    "get_inference_service": Permission(KSERVE_GROUP, KSERVE_PLURAL, "get"),
    "patch_inference_service": Permission(KSERVE_GROUP, KSERVE_PLURAL, "patch"),
}


def permissions_for(methods: set[str]) -> set[Permission]:
    """The permissions a caller of these :class:`Kube` methods needs; an unknown method is a ``KeyError``."""
    return {PERMISSIONS[m] for m in methods}


class Kube(Protocol):
    """What the retraining loop needs from Kubernetes, in the namespace the wrapper was built for."""

    @property
    def namespace(self) -> str: ...

    def create_job(self, body: dict[str, Any]) -> bool:
        """Create a Job; ``True`` if created, ``False`` if one with that name already exists (409)."""
        ...

    def list_jobs(self, label_selector: str) -> list[dict[str, Any]]: ...

    def label_job(self, name: str, labels: dict[str, str]) -> None: ...

    def get_deployment(self, name: str) -> dict[str, Any]: ...

    def patch_deployment(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Strategic-merge patch (containers and env merge by name)."""
        ...

    def get_inference_service(self, name: str) -> dict[str, Any]: ...

    def patch_inference_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch (custom resources do not support strategic merge)."""
        ...


class KubeConfig(BaseModel):
    """How to reach the API server.

    Attributes:
        namespace: Explicit namespace; otherwise the service account's (in-cluster) or the context's.
        in_cluster: Force in-cluster (``True``) or kubeconfig (``False``); ``None`` detects
            ``KUBERNETES_SERVICE_HOST``.
        kubeconfig: kubeconfig file (default ``~/.kube/config`` / ``$KUBECONFIG``).
        context: kubeconfig context (default: the current one).
        retries: Retries of connection errors and 429/5xx answers, with exponential backoff.
        timeout_s: Per-request timeout.
    """

    namespace: str | None = None
    in_cluster: bool | None = None
    kubeconfig: Path | None = None
    context: str | None = None
    retries: int = Field(3, ge=0, le=10)
    timeout_s: float = Field(30.0, gt=0)

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> KubeConfig:
        return cls(
            namespace=settings.namespace,
            kubeconfig=settings.kubeconfig,
            context=settings.kube_context,
            retries=settings.kube_retries,
            timeout_s=settings.kube_timeout_s,
        )

    def load(self) -> tuple[Any, str]:
        """Build a client ``Configuration`` (in-cluster or kubeconfig, retries set) and resolve the namespace."""
        from kubernetes import client, config
        from urllib3.util.retry import Retry

        configuration = client.Configuration()
        in_cluster = (
            self.in_cluster if self.in_cluster is not None else "KUBERNETES_SERVICE_HOST" in os.environ
        )
        namespace = self.namespace
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
                if namespace is None and SERVICE_ACCOUNT_NAMESPACE.is_file():
                    namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
            else:
                config_file = str(self.kubeconfig) if self.kubeconfig else None
                config.load_kube_config(
                    config_file=config_file, context=self.context, client_configuration=configuration
                )
                if namespace is None:
                    contexts, active = config.list_kube_config_contexts(config_file)
                    chosen = next((c for c in contexts if c["name"] == self.context), active)
                    namespace = (chosen or {}).get("context", {}).get("namespace")
        except config.ConfigException as e:
            where = (
                "in-cluster service account"
                if in_cluster
                else f"kubeconfig {self.kubeconfig or '~/.kube/config'}"
            )
            raise KubeError(f"cannot load Kubernetes configuration from the {where}: {e}") from e
        configuration.retries = Retry(
            total=self.retries,
            backoff_factor=0.5,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # retry every verb: creates are idempotent here (409 = exists)
            raise_on_status=False,
        )
        return configuration, namespace or "default"


class KubeClient:
    """The real implementation of :class:`Kube` on top of the official client."""

    def __init__(self, config: KubeConfig) -> None:
        from kubernetes import client

        configuration, self._namespace = config.load()
        self._timeout = config.timeout_s
        self._api_client = client.ApiClient(configuration)
        self._batch = client.BatchV1Api(self._api_client)
        self._apps = client.AppsV1Api(self._api_client)
        self._custom = client.CustomObjectsApi(self._api_client)

    @property
    def namespace(self) -> str:
        return self._namespace

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as e:
            detail = f"{what} in namespace {self._namespace}: HTTP {e.status} {e.reason}"
            if e.status == 404:
                raise KubeNotFoundError(f"{detail} (not found)", status=404) from e
            if e.status == 409:
                raise KubeConflictError(f"{detail} (conflict)", status=409) from e
            raise KubeError(f"{detail}: {(e.body or '')[:300]}", status=e.status) from e
        except Exception as e:  # connection refused, TLS, timeouts after the retries
            raise KubeError(f"{what} in namespace {self._namespace}: {type(e).__name__}: {e}") from e

    def _plain(self, obj: Any) -> dict[str, Any]:
        return dict(self._api_client.sanitize_for_serialization(obj))

    def create_job(self, body: dict[str, Any]) -> bool:
        from kubernetes import client

        name = body.get("metadata", {}).get("name")
        job = client.V1Job.from_dict(body)
        if job is None:
            raise KubeError(f"create Job {self._namespace}/{name}: empty body")
        try:
            self._call(
                f"create Job {self._namespace}/{name}",
                lambda: self._batch.create_namespaced_job(
                    self._namespace, job, _request_timeout=self._timeout
                ),
            )
        except KubeConflictError:
            return False
        return True

    def list_jobs(self, label_selector: str) -> list[dict[str, Any]]:
        result = self._call(
            f"list Jobs with labels {label_selector!r}",
            lambda: self._batch.list_namespaced_job(
                self._namespace, label_selector=label_selector, _request_timeout=self._timeout
            ),
        )
        return [self._plain(item) for item in result.items or []]

    def label_job(self, name: str, labels: dict[str, str]) -> None:
        self._call(
            f"label Job {self._namespace}/{name}",
            lambda: self._batch.patch_namespaced_job(
                name,
                self._namespace,
                {"metadata": {"labels": labels}},
                _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            ),
        )

    def get_deployment(self, name: str) -> dict[str, Any]:
        return self._plain(
            self._call(
                f"get Deployment {self._namespace}/{name}",
                lambda: self._apps.read_namespaced_deployment(
                    name, self._namespace, _request_timeout=self._timeout
                ),
            )
        )

    def patch_deployment(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._plain(
            self._call(
                f"patch Deployment {self._namespace}/{name}",
                lambda: self._apps.patch_namespaced_deployment(
                    name,
                    self._namespace,
                    patch,
                    _content_type=STRATEGIC_MERGE,
                    _request_timeout=self._timeout,
                ),
            )
        )

    def get_inference_service(self, name: str) -> dict[str, Any]:
        result = self._call(
            f"get InferenceService {self._namespace}/{name}",
            lambda: self._custom.get_namespaced_custom_object(
                KSERVE_GROUP,
                KSERVE_VERSION,
                self._namespace,
                KSERVE_PLURAL,
                name,
                _request_timeout=self._timeout,
            ),
        )
        return dict(result)  # type: ignore[call-overload]

    def patch_inference_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        result = self._call(
            f"patch InferenceService {self._namespace}/{name}",
            lambda: self._custom.patch_namespaced_custom_object(
                KSERVE_GROUP,
                KSERVE_VERSION,
                self._namespace,
                KSERVE_PLURAL,
                name,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=self._timeout,
            ),
        )
        return dict(result)  # type: ignore[call-overload]
