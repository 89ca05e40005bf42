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
from services.retrain.kube import PERMISSIONS, Kube, KubeClient, KubeConfig, Permission
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
        "crackseg.io/attempt": "1",
    }
    expected["metadata"] = {
        "name": "crackseg-retrain-0123456789ab-1",
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


def test_a_racing_trigger_on_the_same_attempt_gets_a_409_and_does_nothing() -> None:
    kube = FakeKube()
    template = load_template(TEMPLATE)
    first = render_job(template, plan(), "crackseg", attempt=1)
    assert kube.create_job(first) is True
    # A second trigger that listed the Jobs before the first created its attempt computes the same name.
    assert kube.create_job(copy.deepcopy(first)) is False
    assert list(kube.jobs) == ["crackseg-retrain-0123456789ab-1"]


def _finish(kube: FakeKube, name: str, condition: str) -> None:
    kube.jobs[name]["status"] = {"conditions": [{"type": condition, "status": "True"}]}


def test_a_failed_attempt_does_not_block_the_next_one() -> None:
    """Issue 13 item 4: with one fixed Job name, a kept failed Job made every later create a 409 for 24 h."""
    kube = FakeKube()
    executor = KubernetesJobExecutor(kube, load_template(TEMPLATE))
    first = executor.launch(plan())
    assert first.created and "attempt 1 of 3" in first.detail
    running = executor.launch(plan())
    assert not running.created and "in progress" in running.detail
    _finish(kube, "crackseg-retrain-0123456789ab-1", "Failed")
    second = executor.launch(plan())
    assert second.created, second.detail
    assert sorted(kube.jobs) == ["crackseg-retrain-0123456789ab-1", "crackseg-retrain-0123456789ab-2"]
    env = kube.jobs["crackseg-retrain-0123456789ab-2"]["spec"]["template"]["spec"]["containers"][0]["env"]
    # Both attempts are the same run: the second resumes the first's journal.
    assert {"name": "CRACKSEG_RUN_NAME", "value": "crackseg-retrain-0123456789ab"} in env


def test_attempts_are_bounded_and_new_feedback_starts_a_new_run() -> None:
    kube = FakeKube()
    executor = KubernetesJobExecutor(kube, load_template(TEMPLATE))
    for attempt in (1, 2, 3):
        assert executor.launch(plan()).created
        _finish(kube, f"crackseg-retrain-0123456789ab-{attempt}", "Failed")
    exhausted = executor.launch(plan())
    assert not exhausted.created and "failed 3 times (limit 3" in exhausted.detail
    assert len(kube.jobs) == 3
    other = plan().model_copy(update={"run_name": "crackseg-retrain-ba9876543210"})
    assert executor.launch(other).created


def test_a_completed_run_is_not_launched_again() -> None:
    kube = FakeKube()
    executor = KubernetesJobExecutor(kube, load_template(TEMPLATE))
    executor.launch(plan())
    _finish(kube, "crackseg-retrain-0123456789ab-1", "Complete")
    again = executor.launch(plan())
    assert not again.created and "already finished" in again.detail
    assert len(kube.jobs) == 1


@pytest.mark.parametrize(("raw", "message"), [("x", "not an integer"), ("0", "must be >= 1")])
def test_a_bad_max_attempts_annotation_is_a_config_error(raw: str, message: str) -> None:
    template = load_template(TEMPLATE)
    template["metadata"].setdefault("annotations", {})["crackseg.io/max-attempts"] = raw
    with pytest.raises(ConfigError, match=message):
        KubernetesJobExecutor(FakeKube(), template).launch(plan())


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
    created = kube.jobs[f"{first.run_name}-1"]
    assert created["metadata"]["labels"]["app.kubernetes.io/component"] == "retrain"
    second = decide(store, 3, executor)
    assert (second.action, second.reason, second.active_runs) == (
        "skip",
        "already_running",
        [f"{first.run_name}-1"],
    )
    # The Job finishes; the same feedback is the same run, which completed: no second Job.
    kube.jobs[f"{first.run_name}-1"]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
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


def test_run_labels_its_job_with_the_outcome_and_survives_a_missing_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.registry import Registry
    from services.retrain.run import RetrainRun
    from services.retrain.settings import RunSettings

    kube = FakeKube()
    executor = KubernetesJobExecutor(kube, load_template(TEMPLATE))
    executor.launch(plan())
    settings = RunSettings(feedback_dir=tmp_path, base_data=tmp_path, eval_data=tmp_path)
    run = RetrainRun(settings, Registry("http://127.0.0.1:9"), None, kube)
    # The chart passes the attempt's own Job name (downward API); the run name alone names no Job.
    monkeypatch.setenv("CRACKSEG_JOB_NAME", "crackseg-retrain-0123456789ab-1")
    run._label_outcome("crackseg-retrain-0123456789ab", "promoted")
    assert (
        kube.jobs["crackseg-retrain-0123456789ab-1"]["metadata"]["labels"]["crackseg.io/outcome"]
        == "promoted"
    )
    assert kube.calls[-1] == (
        "label_job",
        "crackseg-retrain-0123456789ab-1",
        {"crackseg.io/outcome": "promoted"},
    )

    def forbidden(name: str, labels: dict[str, str]) -> None:
        raise KubeError(f"label Job crackseg/{name} in namespace crackseg: HTTP 403 Forbidden", status=403)

    kube.label_job = forbidden  # type: ignore[method-assign]
    run._label_outcome("crackseg-retrain-0123456789ab", "failed")  # an event, not an exception


# -- RBAC: the Roles grant exactly what the code calls -------------------------------------------------------------
def _covers(rules: list[dict[str, Any]], need: Permission, name: str | None) -> bool:
    return any(
        need.group in r["apiGroups"]
        and need.resource in r["resources"]
        and need.verb in r["verbs"]
        and (not r.get("resourceNames") or name in r["resourceNames"])
        for r in rules
    )


def _role(kserve: bool, name: str) -> list[dict[str, Any]]:
    from tests.charts.render import render

    values = {"predictor": {"kserve": {"enabled": kserve}, "autoscaling": {"enabled": not kserve}}}
    role = next(r.obj for r in render(values) if r.kind == "Role" and r.name == name)
    return list(role["rules"])


def test_every_wrapper_method_declares_its_permission() -> None:
    methods = {m for m in vars(Kube) if not m.startswith("_") and m != "namespace"}
    assert methods == set(PERMISSIONS), "a Kube method without an RBAC permission (or a stale entry)"


def test_the_trigger_role_covers_every_call_the_trigger_makes(tmp_path: Path) -> None:
    """Run the trigger through launch, a failure and a relaunch, then check each call against the rendered Role."""
    kube = FakeKube()
    executor = KubernetesJobExecutor(kube, load_template(TEMPLATE))
    store = _feedback(tmp_path, 3)
    first = decide(store, 3, executor)
    _finish(kube, f"{first.run_name}-1", "Failed")
    assert decide(store, 3, executor).created
    rules = _role(False, "crackseg-retrain-trigger")
    for method in sorted(kube.used):
        need = PERMISSIONS[method]
        assert _covers(rules, need, None), f"trigger calls {method}: Role lacks {need}"


@pytest.mark.parametrize("kserve", [False, True])
def test_the_run_role_covers_every_call_the_run_makes(kserve: bool, tmp_path: Path, monkeypatch: Any) -> None:
    """Issue 13 item 11: the run labels its own Job, which the Role did not allow."""
    from ml.registry import Registry
    from services.retrain.run import RetrainRun
    from services.retrain.settings import RunSettings

    kube = FakeKube()
    KubernetesJobExecutor(kube, load_template(TEMPLATE)).launch(plan())
    kube.used.clear()  # the trigger's calls; from here on, the run's
    if kserve:
        kube.isvcs["crackseg-predictor"] = isvc("custom")
        kube.on_get_isvc = isvc_ready
        InferenceServiceRollout(
            kube, "crackseg-predictor", "pvc://crackseg-models/v{version}", timeout_s=2, poll_s=0.01
        ).roll("2", Path("/data/models/v2"))
    else:
        kube.deployments["crackseg-predictor"] = deployment(version="1")
        kube.on_get_deployment = complete_rollout
        DeploymentRollout(kube, "crackseg-predictor", timeout_s=2, poll_s=0.01).roll(
            "2", Path("/data/models/v2")
        )
    monkeypatch.setenv("CRACKSEG_JOB_NAME", "crackseg-retrain-0123456789ab-1")
    settings = RunSettings(feedback_dir=tmp_path, base_data=tmp_path, eval_data=tmp_path)
    RetrainRun(settings, Registry("http://127.0.0.1:9"), None, kube)._label_outcome("r", "promoted")
    assert "label_job" in kube.used
    rules = _role(kserve, "crackseg-retrain")
    for method in sorted(kube.used):
        need = PERMISSIONS[method]
        name = None if method == "label_job" else "crackseg-predictor"
        assert _covers(rules, need, name), f"the run calls {method}: Role lacks {need}"
