"""An in-memory fake of ``services.retrain.kube.Kube`` (the one allowed fake: the Kubernetes API boundary).

It records every call, stores Jobs/Deployments/InferenceServices as plain dicts, answers 409 on duplicate creates
like the API server, applies patches with simplified strategic-merge / JSON-merge semantics, and lets a test
decide how the "controller" reacts (``on_get_*`` hooks that update ``status``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from services.retrain.errors import KubeNotFoundError


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge for what our patches use: lists of dicts with ``name`` merge by name; ``$patch: delete``."""
    if isinstance(patch, list) and all(isinstance(p, dict) and "name" in p for p in patch):
        items = [copy.deepcopy(t) for t in target or []]
        for p in patch:
            index = next((i for i, t in enumerate(items) if t.get("name") == p["name"]), None)
            if p.get("$patch") == "delete":
                if index is not None:
                    items.pop(index)
            elif index is None:
                items.append(copy.deepcopy(p))
            else:
                items[index] = strategic_merge(items[index], p)
        return items
    if isinstance(patch, dict):
        result = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge(result.get(key), value)
        return result
    return copy.deepcopy(patch)


class FakeKube:
    def __init__(self, namespace: str = "crackseg") -> None:
        self._namespace = namespace
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.isvcs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        # Every method called, reads included (``calls`` keeps only the writes and lists, in order): the RBAC
        # test derives the verbs each Role needs from it.
        self.used: set[str] = set()
        self.on_get_deployment: Callable[[dict[str, Any]], None] | None = None
        self.on_get_isvc: Callable[[dict[str, Any]], None] | None = None

    @property
    def namespace(self) -> str:
        return self._namespace

    def create_job(self, body: dict[str, Any]) -> bool:
        self.used.add("create_job")
        name = body["metadata"]["name"]
        self.calls.append(("create_job", name, copy.deepcopy(body)))
        if name in self.jobs:
            return False
        self.jobs[name] = {**copy.deepcopy(body), "status": {"active": 1}}
        return True

    def list_jobs(self, label_selector: str) -> list[dict[str, Any]]:
        self.used.add("list_jobs")
        self.calls.append(("list_jobs", label_selector, None))
        wanted = dict(part.split("=", 1) for part in label_selector.split(","))
        return [
            copy.deepcopy(j)
            for j in self.jobs.values()
            if all(j["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]

    def label_job(self, name: str, labels: dict[str, str]) -> None:
        self.used.add("label_job")
        self.calls.append(("label_job", name, labels))
        self._get(self.jobs, "Job", name)["metadata"]["labels"].update(labels)

    def _get(self, store: dict[str, dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
        if name not in store:
            raise KubeNotFoundError(
                f"get {kind} {self._namespace}/{name} in namespace {self._namespace}: HTTP 404"
            )
        return store[name]

    def get_deployment(self, name: str) -> dict[str, Any]:
        self.used.add("get_deployment")
        dep = self._get(self.deployments, "Deployment", name)
        if self.on_get_deployment:
            self.on_get_deployment(dep)
        return copy.deepcopy(dep)

    def patch_deployment(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.used.add("patch_deployment")
        self.calls.append(("patch_deployment", name, copy.deepcopy(patch)))
        dep = self._get(self.deployments, "Deployment", name)
        new = strategic_merge(dep, patch)
        new["metadata"]["generation"] = dep["metadata"].get("generation", 1) + 1
        self.deployments[name] = new
        return copy.deepcopy(new)

    def get_inference_service(self, name: str) -> dict[str, Any]:
        self.used.add("get_inference_service")
        isvc = self._get(self.isvcs, "InferenceService", name)
        if self.on_get_isvc:
            self.on_get_isvc(isvc)
        return copy.deepcopy(isvc)

    def patch_inference_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.used.add("patch_inference_service")
        self.calls.append(("patch_inference_service", name, copy.deepcopy(patch)))
        isvc = self._get(self.isvcs, "InferenceService", name)
        new = merge_patch(isvc, patch)
        new["metadata"]["generation"] = isvc["metadata"].get("generation", 1) + 1
        self.isvcs[name] = new
        return copy.deepcopy(new)


def deployment(name: str = "crackseg-predictor", version: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "generation": 1},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"annotations": {"crackseg.io/model-version": version}},
                "spec": {
                    "containers": [
                        {
                            "name": "predictor",
                            "image": "crackseg-predictor:0.1.0",
                            "env": [
                                {"name": "CRACKSEG_MODEL_SOURCE", "value": f"/data/models/v{version}"},
                                {"name": "CRACKSEG_MODEL_VERSION", "value": version},
                                {"name": "CRACKSEG_THREADS", "value": "2"},
                            ],
                        },
                        {"name": "sidecar", "image": "busybox"},
                    ]
                },
            },
        },
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
    }


def complete_rollout(dep: dict[str, Any]) -> None:
    """A healthy controller: the new generation is observed and all replicas are updated and available."""
    replicas = dep["spec"]["replicas"]
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
    }


def stuck_rollout(dep: dict[str, Any]) -> None:
    """New pods never become available (e.g. the weights do not load): the old ReplicaSet keeps serving."""
    replicas = dep["spec"]["replicas"]
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": replicas + 1,
        "updatedReplicas": 1,
        "availableReplicas": replicas,
    }
