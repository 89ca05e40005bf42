"""The pod-spec runner: every workload of the rendered default scenario, run in Docker as a kubelet would run it.

Same manifests as tests/charts (real Helm through helm-python-sdk) and the images `make images` builds. Order:
MLflow (ready) → the seed Job (exit 0) → the predictor (its init container registers the starter as champion,
then ready) → the UI (ready) → labelled feedback over the threshold → the trigger CronJob's Job (exit 0), which
creates the retraining Job through the Kubernetes API (tests/k8s/fakeapi.py) → that Job (exit 0): DVC snapshot on
a read-only root, fine-tune, evaluate, register, promote, patch the predictor Deployment → the runner rolls the
predictor like the Deployment controller → a registered version 2 is served.

Needs a Docker engine and the images (`make images-test` builds them); skips otherwise, except under
CRACKSEG_REQUIRE_IMAGES=1, where a missing engine or image fails.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.charts.render import render
from tests.k8s.fakeapi import TOKEN, FakeApi, self_signed
from tests.k8s.podspec import Cluster, Pod, docker, start_pod, wait_exit, wait_ready

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.integration]

TAG = os.environ.get("IMAGE_TAG", "dev")
NS = "crackseg"
THRESHOLD = 3
VALUES: dict[str, Any] = {
    "image": {"tag": TAG},
    "retrainThreshold": THRESHOLD,
    "datasets": {"seed": {"baseImages": 12, "evalImages": 4, "height": 128, "width": 160}},
    "retrain": {
        "job": {
            # A tiny budget and a gate that always promotes: this checks the pod specs, not the model.
            "params": {
                "epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "crop_size": 64, "train_split": None,
                "val_fraction": 0.25, "amp": False, "device": "cpu",
            },
            "extraEnv": [
                {"name": "CRACKSEG_RETRAIN_TOLERANCE", "value": "1"},
                # The gate's held-back-feedback condition too: a 2-step challenger never beats models/default.
                {"name": "CRACKSEG_RETRAIN_MIN_GAIN", "value": "-1"},
                {"name": "CRACKSEG_EVAL_SPLIT", "value": ""},
            ],
        }
    },
}  # fmt: skip


def _engine_or_skip() -> None:
    required = os.environ.get("CRACKSEG_REQUIRE_IMAGES") == "1"
    problem = None
    if shutil.which(os.environ.get("DOCKER") or "docker") is None:
        problem = "docker CLI not installed"
    elif docker("info", timeout=20, check=False).returncode != 0:
        problem = "no Docker engine answers (make images-test starts one)"
    else:
        missing = [
            i for i in ("predictor", "ui", "trainer", "mlflow")
            if docker("image", "inspect", f"crackseg-{i}:{TAG}", check=False).returncode != 0
        ]  # fmt: skip
        if missing:
            problem = f"images {missing} (tag {TAG}) are not built: run make images"
    if problem:
        if required:
            pytest.fail(problem)
        pytest.skip(problem)


def _workload(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _meta(template: dict[str, Any], name: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The pod's metadata as the downward API sees it."""
    labels = {**(template.get("metadata", {}).get("labels") or {}), **(extra or {})}
    return {"name": name, "namespace": NS, "labels": labels}


class Runner:
    """The kubelet and the two controllers the scenario needs (Job, Deployment rollout)."""

    def __init__(self, cluster: Cluster, api: FakeApi) -> None:
        self.cluster = cluster
        self.api = api
        self.pods: dict[str, Pod] = {}
        self.job_exit: dict[str, int] = {}
        self.predictor_generation = 1
        self.errors: list[str] = []

    def deployment(self, obj: dict[str, Any], pod_name: str) -> Pod:
        template = obj["spec"]["template"]
        pod = start_pod(pod_name, template["spec"], _meta(template, pod_name), self.cluster)
        for container in template["spec"]["containers"]:
            wait_ready(pod, container, timeout=300)
        return pod

    def job(self, name: str, template: dict[str, Any], timeout: float) -> int:
        labels = {"batch.kubernetes.io/job-name": name, "job-name": name}
        pod = start_pod(name, template["spec"], _meta(template, name, labels), self.cluster)
        self.pods[name] = pod
        code = wait_exit(pod.ids[template["spec"]["containers"][0]["name"]], timeout=timeout)
        self.job_exit[name] = code
        return code

    def on_job(self, job: dict[str, Any]) -> None:  # the Job controller
        name = job["metadata"]["name"]
        try:
            code = self.job(name, job["spec"]["template"], timeout=1800)
            self.api.set_job_status(name, "Complete" if code == 0 else "Failed")
        except Exception as e:  # reported by the test, not lost in a thread
            self.errors.append(f"Job {name}: {e}")
            self.api.set_job_status(name, "Failed")

    def on_deployment_patch(self, dep: dict[str, Any]) -> None:  # the Deployment controller, one replica
        try:
            old = self.pods.pop("predictor")
            for cid in old.ids.values():
                docker("rm", "--force", cid, check=False)
            generation = dep["metadata"]["generation"]
            self.pods["predictor"] = self.deployment(dep, f"predictor-g{generation}")
            self.api.set_rolled_out(dep["metadata"]["name"], generation)
        except Exception as e:
            self.errors.append(f"rollout: {e}")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runner, list[dict[str, Any]]]]:
    _engine_or_skip()
    objects = [r.obj for r in render(VALUES)]
    root = tmp_path_factory.mktemp("podspec")
    root.chmod(0o755)
    network = f"crackseg-podspec-{os.getpid()}"
    docker("network", "create", network)
    info = json.loads(docker("network", "inspect", network).stdout)[0]
    gateway = info["IPAM"]["Config"][0]["Gateway"]
    cert, key = self_signed(root, gateway)
    roles = [o for o in objects if o["kind"] == "Role"]
    api = FakeApi(
        NS, [_workload(objects, "Deployment", "crackseg-predictor")], [r for o in roles for r in o["rules"]]
    )
    server, port = api.serve(gateway, cert, key)
    cluster = Cluster(
        root=root, namespace=NS, objects=objects, network=network,
        api_env={"KUBERNETES_SERVICE_HOST": gateway, "KUBERNETES_SERVICE_PORT": str(port)},
        sa_files={"token": TOKEN, "ca.crt": cert.read_text(), "namespace": NS},
    )  # fmt: skip
    runner = Runner(cluster, api)
    api.on_job = runner.on_job
    api.on_deployment_patch = runner.on_deployment_patch
    try:
        yield runner, objects
    finally:
        server.shutdown()
        for cid in cluster.containers:
            docker("rm", "--force", cid, check=False)
        docker("network", "rm", network, check=False)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def test_every_workload_runs_as_the_kubelet_would_and_the_loop_closes(
    scenario: tuple[Runner, list[dict[str, Any]]], tmp_path: Path
) -> None:
    runner, objects = scenario
    cluster = runner.cluster

    runner.pods["mlflow"] = runner.deployment(_workload(objects, "Deployment", "crackseg-mlflow"), "mlflow")

    seed = next(
        o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("crackseg-seed-")
    )
    assert runner.job("seed", seed["spec"]["template"], timeout=600) == 0, runner.pods["seed"].logs("seed")
    datasets = cluster.root / "pvc" / "crackseg-datasets"
    assert len(list((datasets / "base" / "images").iterdir())) == 12
    assert len(list((datasets / "eval" / "images").iterdir())) == 4

    predictor = _workload(objects, "Deployment", "crackseg-predictor")
    runner.pods["predictor"] = runner.deployment(predictor, "predictor")
    url = f"http://{runner.pods['predictor'].address('predictor')}:8000"
    assert (
        _get(f"{url}/ping")["model_version"] == "1"
    )  # the init container registered the starter as champion

    runner.pods["ui"] = runner.deployment(_workload(objects, "Deployment", "crackseg-ui"), "ui")

    from ml.data.synthetic import generate

    generate(THRESHOLD + 1, tmp_path / "samples", size=(96, 128), seed=7)
    for image in sorted((tmp_path / "samples" / "images").iterdir()):
        mask = tmp_path / "samples" / "masks" / f"{image.stem}.png"
        files = {"file": (image.name, image.read_bytes()), "mask": (mask.name, mask.read_bytes())}
        r = httpx.post(f"{url}/save-for-retrain", files=files, data={"verdict": "missed_cracks"}, timeout=30)
        assert r.status_code in (200, 201), r.text

    cron = _workload(objects, "CronJob", "crackseg-retrain-trigger")
    code = runner.job("trigger", cron["spec"]["jobTemplate"]["spec"]["template"], timeout=300)
    assert code == 0, runner.pods["trigger"].logs("trigger")
    assert len(runner.api.jobs) == 1, (runner.api.requests, runner.pods["trigger"].logs("trigger"))
    (job_name,) = runner.api.jobs

    deadline = time.monotonic() + 1800
    while job_name not in runner.job_exit and not runner.errors and time.monotonic() < deadline:
        time.sleep(5)
    assert not runner.errors, runner.errors
    logs = runner.pods[job_name].logs("retrain", tail=60)
    assert runner.job_exit.get(job_name) == 0, logs
    # The predictor the run rolled onto serves the promoted version, registered in MLflow.
    for _ in range(60):
        if runner.api.deployments["crackseg-predictor"]["status"]["observedGeneration"] > 1:
            break
        time.sleep(2)
    url = f"http://{runner.pods['predictor'].address('predictor')}:8000"
    assert _get(f"{url}/ping")["model_version"] == "2", logs
    mlflow = f"http://{runner.pods['mlflow'].address('mlflow')}:5000"
    alias = httpx.get(
        f"{mlflow}/api/2.0/mlflow/registered-models/alias",
        params={"name": "crackseg", "alias": "champion"},
        headers={"Host": "crackseg-mlflow.crackseg.svc:5000"},  # MLflow checks Host against its allowed hosts
        timeout=10,
    )
    assert alias.json()["model_version"]["version"] == "2", alias.text
    # The run labelled its own attempt through the API (the Role allows it: item 11).
    assert runner.api.jobs[job_name]["metadata"]["labels"]["crackseg.io/outcome"] == "promoted"
