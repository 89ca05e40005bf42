"""Kubernetes paths against a fake of our wrapper: the Job body, 409, active runs, rollout patches, timeouts."""

from __future__ import annotations

import copy
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import kubernetes_validate
import pytest
import yaml

from services.common.feedback import FeedbackStore
from services.retrain.errors import (
    ConfigError,
    KubeError,
    KubeNotFoundError,
    RolloutError,
    RolloutTimeoutError,
)
from services.retrain.executors import KubernetesJobExecutor, job_is_running
from services.retrain.jobtemplate import load_template, render_job, validate_template
from services.retrain.kube import KubeClient, KubeConfig
from services.retrain.plan import LabelledItem, RetrainPlan
from services.retrain.rollout import DeploymentRollout, InferenceServiceRollout
from services.retrain.trigger import decide
from tests.services.retrain.fakekube import FakeKube, complete_rollout, deployment, stuck_rollout

TEMPLATE = Path(__file__).parent / "data" / "job-template.yaml"
WM = datetime(2026, 11, 27, 15, 0, 0, 123456, tzinfo=UTC)


def plan(n: int = 3) -> RetrainPlan:
    items = [
        LabelledItem(id=f"{i:064x}", updated_at=datetime(2026, 11, 27, 16, i, tzinfo=UTC)) for i in range(n)
    ]
    return RetrainPlan(
        run_name="crackseg-retrain-0123456789ab",
        watermark=WM,
        target_watermark=items[-1].updated_at,
        items=items,
    )


def test_rendered_job_is_the_template_with_exactly_the_documented_overrides() -> None:
    template = load_template(TEMPLATE)
    job = render_job(template, plan(), "crackseg")

    expected = copy.deepcopy(template)
    labels = {
        "app.kubernetes.io/name": "crackseg",
        "app.kubernetes.io/instance": "prod",
        "app.kubernetes.io/component": "retrain",
        "app.kubernetes.io/managed-by": "crackseg-trigger",
        "app.kubernetes.io/part-of": "crackseg",
        "crackseg.io/watermark": "20261127T150000.123456Z",
        "crackseg.io/run": "crackseg-retrain-0123456789ab",
    }
    expected["metadata"] = {
        "name": "crackseg-retrain-0123456789ab",
        "namespace": "crackseg",
        "labels": {**template["metadata"]["labels"], **labels},
        "annotations": {
            "crackseg.io/labelled-count": "3",
            "crackseg.io/target-watermark": "2026-11-27T16:02:00+00:00",
        },
    }
    expected["spec"]["template"]["metadata"]["labels"] = {**labels}
    env = expected["spec"]["template"]["spec"]["containers"][0]["env"]
    env[:] = [e for e in env if e["name"] != "CRACKSEG_RUN_NAME"]
    env.append({"name": "CRACKSEG_RUN_NAME", "value": "crackseg-retrain-0123456789ab"})
    assert job == expected
    assert template["metadata"]["name"] == "crackseg-retrain-template"  # the template itself is untouched
    # The body is a valid Job for the API server (strict: no unknown fields).
    kubernetes_validate.validate(job, "1.33", strict=True)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ([1, 2], "expected one YAML mapping"),
        ({"apiVersion": "v1", "kind": "Pod"}, "expected apiVersion batch/v1 and kind Job"),
        ({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {}}}}, "non-empty list"),
    ],
)
def test_bad_templates_are_rejected_with_the_reason(manifest: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_template(manifest)


def test_missing_template_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path / "nope.yaml")):
        load_template(tmp_path / "nope.yaml")


def test_second_create_is_a_409_and_counts_as_success() -> None:
    kube = FakeKube()
    executor = KubernetesJobExecutor(kube, load_template(TEMPLATE))
    first = executor.launch(plan())
    second = executor.launch(plan())
    assert first.created and not second.created
    assert "already exists" in second.detail and "crackseg/crackseg-retrain-0123456789ab" in second.detail
    assert [c[0] for c in kube.calls] == ["create_job", "create_job"]
    assert list(kube.jobs) == ["crackseg-retrain-0123456789ab"]


@pytest.mark.parametrize(
    ("status", "running"),
    [
        ({"active": 1}, True),
        ({}, True),  # created, pod not scheduled yet
        ({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}, False),
        ({"failed": 3, "conditions": [{"type": "Failed", "status": "True"}]}, False),
        ({"active": 1, "conditions": [{"type": "Failed", "status": "False"}]}, True),
    ],
)
def test_job_is_running(status: dict[str, Any], running: bool) -> None:
    assert job_is_running({"metadata": {"name": "j"}, "status": status}) is running


def _feedback(tmp_path: Path, n: int) -> FeedbackStore:
    store = FeedbackStore(tmp_path / "feedback")
    for i in range(n):
        store.save(f"img{i}".encode(), "png", 4, 4, mask_png=b"m", verdict="missed_cracks")
    return store


def test_trigger_on_kubernetes_launches_once_then_sees_the_run(tmp_path: Path) -> None:
    store = _feedback(tmp_path, 3)
    kube = FakeKube()
    executor = KubernetesJobExecutor(kube, load_template(TEMPLATE))
    first = decide(store, 3, executor)
    assert (first.action, first.reason, first.created) == ("launch", "launched", True)
    created = kube.jobs[first.run_name]
    assert created["metadata"]["labels"]["app.kubernetes.io/component"] == "retrain"
    second = decide(store, 3, executor)
    assert (second.action, second.reason, second.active_runs) == ("skip", "already_running", [first.run_name])
    # The Job finishes; the same feedback gives the same name, so the create is a 409: no second run.
    kube.jobs[first.run_name]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    third = decide(store, 3, executor)
    assert (third.action, third.reason, third.created) == ("skip", "exists", False)
    assert len(kube.jobs) == 1


def test_trigger_below_threshold_does_not_touch_kubernetes(tmp_path: Path) -> None:
    kube = FakeKube()
    decision = decide(_feedback(tmp_path, 2), 3, KubernetesJobExecutor(kube, load_template(TEMPLATE)))
    assert (decision.action, decision.reason) == ("skip", "below_threshold")
    assert kube.calls == []


# -- Deployment rollout -------------------------------------------------------------------------------------------
def test_deployment_rollout_patch_body_and_wait() -> None:
    kube = FakeKube()
    kube.deployments["crackseg-predictor"] = deployment(version="1")
    kube.on_get_deployment = complete_rollout
    rollout = DeploymentRollout(kube, "crackseg-predictor", timeout_s=2, poll_s=0.01)
    rollout.roll("2", Path("/data/models/v2"))
    assert kube.calls == [
        (
            "patch_deployment",
            "crackseg-predictor",
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"crackseg.io/model-version": "2"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "predictor",
                                    "env": [
                                        {"name": "CRACKSEG_MODEL_VERSION", "value": "2"},
                                        {"name": "CRACKSEG_MODEL_SOURCE", "value": "/data/models/v2"},
                                    ],
                                }
                            ]
                        },
                    }
                }
            },
        )
    ]
    dep = kube.deployments["crackseg-predictor"]
    env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {
        "CRACKSEG_MODEL_SOURCE": "/data/models/v2",
        "CRACKSEG_MODEL_VERSION": "2",
        "CRACKSEG_THREADS": "2",
    }
    assert rollout.current() == "2"


def test_deployment_rollout_timeout_reverts_the_patch() -> None:
    kube = FakeKube()
    kube.deployments["crackseg-predictor"] = deployment(version="1")
    before = copy.deepcopy(kube.deployments["crackseg-predictor"]["spec"]["template"])
    kube.on_get_deployment = stuck_rollout
    rollout = DeploymentRollout(kube, "crackseg-predictor", timeout_s=0.1, poll_s=0.01)
    with pytest.raises(
        RolloutError, match=r"crackseg/crackseg-predictor.*not done after 0.1s.*patch reverted"
    ):
        rollout.roll("2", Path("/data/models/v2"))
    revert = kube.calls[-1]
    assert revert == (
        "patch_deployment",
        "crackseg-predictor",
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"crackseg.io/model-version": "1"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "predictor",
                                "env": [
                                    {"name": "CRACKSEG_MODEL_VERSION", "value": "1"},
                                    {"name": "CRACKSEG_MODEL_SOURCE", "value": "/data/models/v1"},
                                ],
                            }
                        ]
                    },
                }
            }
        },
    )
    after = kube.deployments["crackseg-predictor"]["spec"]["template"]
    env = lambda t: sorted((e["name"], e["value"]) for e in t["spec"]["containers"][0]["env"])  # noqa: E731
    assert env(after) == env(before)
    assert after["metadata"] == before["metadata"]


def test_deployment_without_our_env_gets_it_removed_on_revert() -> None:
    kube = FakeKube()
    dep = deployment()
    dep["spec"]["template"]["metadata"] = {}
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "CRACKSEG_THREADS", "value": "2"}]
    kube.deployments["crackseg-predictor"] = dep
    kube.on_get_deployment = stuck_rollout
    with pytest.raises(RolloutTimeoutError):
        DeploymentRollout(kube, "crackseg-predictor", timeout_s=0.05, poll_s=0.01).roll("2", Path("/m/v2"))
    revert = kube.calls[-1][2]["spec"]["template"]
    assert revert["metadata"] == {"annotations": {"crackseg.io/model-version": None}}
    assert revert["spec"]["containers"][0]["env"] == [
        {"name": "CRACKSEG_MODEL_VERSION", "$patch": "delete"},
        {"name": "CRACKSEG_MODEL_SOURCE", "$patch": "delete"},
    ]
    container = kube.deployments["crackseg-predictor"]["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "CRACKSEG_THREADS", "value": "2"}]


def test_progress_deadline_fails_fast_and_reverts() -> None:
    kube = FakeKube()
    kube.deployments["crackseg-predictor"] = deployment()

    def deadline(dep: dict[str, Any]) -> None:
        stuck_rollout(dep)
        dep["status"]["conditions"] = [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": "too slow",
            }
        ]

    kube.on_get_deployment = deadline
    with pytest.raises(RolloutError, match="progress deadline exceeded: too slow"):
        DeploymentRollout(kube, "crackseg-predictor", timeout_s=60, poll_s=0.01).roll("2", Path("/m/v2"))
    assert [c[0] for c in kube.calls] == ["patch_deployment", "patch_deployment"]


def test_missing_deployment_and_container_are_named() -> None:
    kube = FakeKube()
    with pytest.raises(KubeNotFoundError, match="crackseg/absent"):
        DeploymentRollout(kube, "absent").roll("2", Path("/m/v2"))
    kube.deployments["crackseg-predictor"] = deployment()
    with pytest.raises(RolloutError, match="no container 'nope'"):
        DeploymentRollout(kube, "crackseg-predictor", container="nope").roll("2", Path("/m/v2"))
    assert kube.calls == []


# -- InferenceService rollout -------------------------------------------------------------------------------------
def isvc(form: str) -> dict[str, Any]:
    predictor: dict[str, Any]
    if form == "model":
        predictor = {"model": {"modelFormat": {"name": "crackseg"}, "storageUri": "pvc://crackseg-models/v1"}}
    else:
        predictor = {
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "crackseg-predictor:0.1.0",
                    "env": [
                        {"name": "STORAGE_URI", "value": "pvc://crackseg-models/v1"},
                        {"name": "X", "value": "y"},
                    ],
                }
            ]
        }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "crackseg", "generation": 1, "annotations": {"crackseg.io/model-version": "1"}},
        "spec": {"predictor": predictor},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def isvc_ready(obj: dict[str, Any]) -> None:
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {"predictor": {"latestReadyRevision": "r2", "latestCreatedRevision": "r2"}},
    }


def isvc_stuck(obj: dict[str, Any]) -> None:
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {"predictor": {"latestReadyRevision": "r1", "latestCreatedRevision": "r2"}},
    }


def test_inferenceservice_model_storage_uri_patch() -> None:
    kube = FakeKube()
    kube.isvcs["crackseg"] = isvc("model")
    kube.on_get_isvc = isvc_ready
    rollout = InferenceServiceRollout(
        kube, "crackseg", "pvc://crackseg-models/v{version}", timeout_s=2, poll_s=0.01
    )
    rollout.roll("2", Path("/data/models/v2"))
    assert kube.calls == [
        (
            "patch_inference_service",
            "crackseg",
            {
                "metadata": {"annotations": {"crackseg.io/model-version": "2"}},
                "spec": {"predictor": {"model": {"storageUri": "pvc://crackseg-models/v2"}}},
            },
        )
    ]
    assert kube.isvcs["crackseg"]["spec"]["predictor"]["model"]["modelFormat"] == {"name": "crackseg"}
    assert rollout.current() == "2"


def test_inferenceservice_custom_container_timeout_reverts() -> None:
    kube = FakeKube()
    kube.isvcs["crackseg"] = isvc("containers")
    original = copy.deepcopy(kube.isvcs["crackseg"]["spec"])
    kube.on_get_isvc = isvc_stuck
    rollout = InferenceServiceRollout(
        kube, "crackseg", "pvc://crackseg-models/v{version}", timeout_s=0.1, poll_s=0.01
    )
    with pytest.raises(RolloutTimeoutError, match="InferenceService crackseg/crackseg"):
        rollout.roll("2", Path("/data/models/v2"))
    forward, revert = kube.calls
    assert forward[2]["spec"]["predictor"]["containers"][0]["env"] == [
        {"name": "X", "value": "y"},
        {"name": "STORAGE_URI", "value": "pvc://crackseg-models/v2"},
        {"name": "CRACKSEG_MODEL_VERSION", "value": "2"},
    ]
    assert revert[2]["metadata"] == {"annotations": {"crackseg.io/model-version": "1"}}
    env = kube.isvcs["crackseg"]["spec"]["predictor"]["containers"][0]["env"]
    assert sorted(env, key=lambda e: e["name"]) == sorted(
        original["predictor"]["containers"][0]["env"], key=lambda e: e["name"]
    )


# -- the real wrapper against a loopback HTTP endpoint -------------------------------------------------------------
class _ApiHandler(BaseHTTPRequestHandler):
    """Answers like an API server would: 409 for a Job that exists, 404 for a missing Deployment."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.seen.append(("POST", self.path))
        json.loads(self.rfile.read(length))
        self._reply(409, {"kind": "Status", "code": 409, "reason": "AlreadyExists", "message": "exists"})

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path))
        self._reply(404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": "not found"})

    def log_message(self, *args: Any) -> None:
        pass


def test_real_client_maps_409_to_exists_and_404_to_not_found(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
                    ],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [
                        {"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "ns1"}}
                    ],
                    "current-context": "ctx",
                }
            )
        )
        client = KubeClient(KubeConfig(in_cluster=False, kubeconfig=kubeconfig, retries=0, timeout_s=5))
        assert client.namespace == "ns1"
        job = render_job(load_template(TEMPLATE), plan(), client.namespace)
        assert client.create_job(job) is False
        with pytest.raises(KubeNotFoundError, match=r"Deployment ns1/crackseg-predictor.*HTTP 404"):
            client.get_deployment("crackseg-predictor")
        assert ("POST", "/apis/batch/v1/namespaces/ns1/jobs") in _ApiHandler.seen
    finally:
        server.shutdown()


def test_unloadable_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KubeError, match="cannot load Kubernetes configuration"):
        KubeClient(KubeConfig(in_cluster=False, kubeconfig=tmp_path / "missing"))


def test_run_labels_its_job_with_the_outcome_and_survives_a_missing_job(tmp_path: Path) -> None:
    from services.retrain.promote import Registry
    from services.retrain.run import RetrainRun
    from services.retrain.settings import RunSettings

    kube = FakeKube()
    executor = KubernetesJobExecutor(kube, load_template(TEMPLATE))
    executor.launch(plan())
    settings = RunSettings(feedback_dir=tmp_path, base_data=tmp_path, eval_data=tmp_path)
    run = RetrainRun(settings, Registry("http://127.0.0.1:9"), None, kube)
    run._label_outcome("crackseg-retrain-0123456789ab", "promoted")
    assert (
        kube.jobs["crackseg-retrain-0123456789ab"]["metadata"]["labels"]["crackseg.io/outcome"] == "promoted"
    )
    assert kube.calls[-1] == (
        "label_job",
        "crackseg-retrain-0123456789ab",
        {"crackseg.io/outcome": "promoted"},
    )

    def forbidden(name: str, labels: dict[str, str]) -> None:
        raise KubeError(f"label Job crackseg/{name} in namespace crackseg: HTTP 403 Forbidden", status=403)

    kube.label_job = forbidden  # type: ignore[method-assign]
    run._label_outcome("crackseg-retrain-0123456789ab", "failed")  # an event, not an exception
