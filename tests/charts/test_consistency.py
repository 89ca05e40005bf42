"""The chart against docs/contracts.md and the code that consumes what it renders: env names, mount paths,
labels, images, ports, commands, and the retraining Job template fed through the trigger's own loader."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.charts.render import Rendered, job_template, pod_spec, render, workloads
from tests.helpers.procs import REPO

CONTRACTS = (REPO / "docs" / "contracts.md").read_text()
COMPONENTS = {"predictor", "ui", "mlflow", "trigger", "retrain", "seed"}
# Variables the chart sets that are not crackseg settings: runtime plumbing of the images.
PLUMBING = {
    "HOME",
    "OMP_WAIT_POLICY",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
    "MLFLOW_BACKEND_STORE_URI",
    "STORAGE_URI",
}


def _contract_env() -> set[str]:
    section = CONTRACTS.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z_]+)`", line.split("|")[1]))
    return names


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.fixture(scope="module")
def objects() -> list[Rendered]:
    return render({"auth": {"existingSecret": "crackseg-api-token"}})


def _container(objects: list[Rendered], kind: str, name: str) -> dict[str, Any]:
    obj = next(r.obj for r in objects if r.kind == kind and r.name == name)
    spec = pod_spec(obj)
    assert spec is not None
    return dict(spec["containers"][0])


def test_contract_env_table_is_parsed() -> None:
    names = _contract_env()
    assert {"CRACKSEG_MODEL_SOURCE", "CRACKSEG_JOB_TEMPLATE", "MLFLOW_TRACKING_URI", "PREDICTOR_URL"} <= names


def test_every_crackseg_variable_is_in_the_contract_or_a_settings_field(objects: list[Rendered]) -> None:
    contract = _contract_env()
    extra_fields: set[str] = set()
    settings = pytest.importorskip("services.retrain.settings")
    extra_fields |= {f"CRACKSEG_{f.upper()}" for f in settings.RunSettings.model_fields}
    extra_fields |= {f"CRACKSEG_{f.upper()}" for f in settings.TriggerSettings.model_fields}
    unknown = set()
    for where, spec in workloads(objects):
        for c in spec["containers"]:
            for name in _env(c):
                if name not in PLUMBING and name not in contract and name not in extra_fields:
                    unknown.add(f"{where}: {name}")
    assert not unknown, sorted(unknown)


def test_paths_match_the_contract(objects: list[Rendered]) -> None:
    for path in ("/data/feedback", "/data/models", "/data/dvc-storage", "/etc/crackseg/job-template.yaml"):
        assert f"`{path}`" in CONTRACTS, path
    job = job_template(objects)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in job["containers"][0]["volumeMounts"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in job["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims[mounts["/data/feedback"]] == "crackseg-feedback"
    assert claims[mounts["/data/models"]] == "crackseg-models"
    assert claims[mounts["/data/dvc-storage"]] == "crackseg-dvc"
    env = _env(job["containers"][0])
    assert env["CRACKSEG_FEEDBACK_DIR"] == "/data/feedback"
    assert env["CRACKSEG_MODELS_DIR"] == "/data/models"
    assert env["CRACKSEG_DVC_REMOTE"] == "/data/dvc-storage"
    assert env["CRACKSEG_BASE_DATA"] == "/data/base" and "/data/base" in mounts
    predictor = _container(objects, "Deployment", "crackseg-predictor")
    p_mounts = {m["mountPath"]: m for m in predictor["volumeMounts"]}
    assert p_mounts["/data/feedback"].get("readOnly") is not True, "the predictor writes feedback"
    assert p_mounts["/data/models"]["readOnly"] is True
    assert _env(predictor)["CRACKSEG_FEEDBACK_DIR"] == "/data/feedback"


def test_the_trigger_mounts_the_job_template_it_is_told_about(objects: list[Rendered]) -> None:
    cron = next(r.obj for r in objects if r.kind == "CronJob")
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    c = spec["containers"][0]
    env = _env(c)
    assert env["CRACKSEG_JOB_TEMPLATE"] == "/etc/crackseg/job-template.yaml"
    assert env["CRACKSEG_EXECUTOR"] == "kubernetes"
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/crackseg")
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    cm = next(r.obj for r in objects if r.kind == "ConfigMap" and r.name == volume["configMap"]["name"])
    assert volume["configMap"]["items"] == [{"key": "job-template.yaml", "path": "job-template.yaml"}]
    assert set(cm["data"]) == {"job-template.yaml"}
    assert c["args"] == ["retrain", "trigger"]


def test_labels_follow_the_contract(objects: list[Rendered]) -> None:
    for r in objects:
        labels = r.obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "crackseg", f"{r.kind}/{r.name}"
        assert labels["app.kubernetes.io/instance"] == "crackseg"
        if "app.kubernetes.io/component" in labels:
            assert labels["app.kubernetes.io/component"] in COMPONENTS, f"{r.kind}/{r.name}"
    job = job_template(objects)
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        assert meta["labels"]["app.kubernetes.io/component"] == "retrain"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "crackseg"


def test_images_ports_and_commands_follow_the_contract(objects: list[Rendered]) -> None:
    for image in ("crackseg-predictor", "crackseg-ui", "crackseg-trainer", "crackseg-mlflow"):
        assert f"`{image}`" in CONTRACTS
    predictor = _container(objects, "Deployment", "crackseg-predictor")
    assert predictor["image"].startswith("crackseg-predictor:")
    assert predictor["args"] == ["serve", "--model", "$(CRACKSEG_MODEL_SOURCE)", "--port", "8000"]
    assert predictor["ports"][0]["containerPort"] == 8000
    ui = _container(objects, "Deployment", "crackseg-ui")
    assert ui["image"].startswith("crackseg-ui:") and ui["args"] == ["ui", "--port", "8500"]
    assert ui["ports"][0]["containerPort"] == 8500
    assert _env(ui)["CRACKSEG_PREDICTOR_URL"] == "http://crackseg-predictor.crackseg.svc:8000"
    mlflow = _container(objects, "Deployment", "crackseg-mlflow")
    assert mlflow["image"].startswith("crackseg-mlflow:") and mlflow["ports"][0]["containerPort"] == 5000
    assert mlflow["args"][0] == "server" and "--serve-artifacts" in mlflow["args"]
    job = job_template(objects)["spec"]["template"]["spec"]["containers"][0]
    assert job["image"].startswith("crackseg-trainer:") and job["args"] == ["retrain", "run"]
    assert _env(job)["MLFLOW_TRACKING_URI"] == "http://crackseg-mlflow.crackseg.svc:5000"
    assert _env(job)["CRACKSEG_API_TOKEN"] == {"secretKeyRef": {"name": "crackseg-api-token", "key": "token"}}
    for row, port in (("| predictor |", "8000"), ("| UI |", "8500"), ("| MLflow |", "5000")):
        assert any(line.startswith(row) and f"| {port} |" in line for line in CONTRACTS.splitlines()), row


@pytest.mark.parametrize(
    "argv",
    [["serve", "--help"], ["ui", "--help"], ["retrain", "trigger", "--help"], ["retrain", "run", "--help"]],
)
def test_the_commands_the_chart_runs_exist(argv: list[str]) -> None:
    typer_testing = pytest.importorskip("typer.testing")
    from services.cli import app

    result = typer_testing.CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output


def test_rendered_job_template_goes_through_the_triggers_loader(
    objects: list[Rendered], tmp_path: Path
) -> None:
    jobtemplate = pytest.importorskip("services.retrain.jobtemplate")
    plan_mod = pytest.importorskip("services.retrain.plan")
    cm = next(r.obj for r in objects if r.kind == "ConfigMap" and "job-template.yaml" in r.obj["data"])
    mounted = tmp_path / "job-template.yaml"
    mounted.write_text(cm["data"]["job-template.yaml"])
    template = jobtemplate.load_template(mounted)

    watermark = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
    plan = plan_mod.RetrainPlan(
        run_name="crackseg-retrain-0123456789ab", watermark=watermark, target_watermark=watermark, items=[]
    )
    job = jobtemplate.render_job(template, plan, "crackseg", attempt=2)
    assert job["metadata"]["name"] == "crackseg-retrain-0123456789ab-2"
    assert jobtemplate.max_attempts(template) == 3  # retrain.job.maxAttempts, through the template annotation
    labels = job["metadata"]["labels"]
    assert labels["crackseg.io/run"] == "crackseg-retrain-0123456789ab"
    assert labels["crackseg.io/attempt"] == "2"
    assert labels["app.kubernetes.io/component"] == "retrain"
    assert labels["app.kubernetes.io/instance"] == "crackseg"
    assert labels["crackseg.io/watermark"] == "20261127T153000.000000Z"
    # The Job the trigger submits is still a valid Job for both API versions, and the client model accepts it.
    for version in ("1.33", "1.37"):
        kubernetes_validate.validate(job, version, strict=True)
    from kubernetes import client

    assert client.V1Job.from_dict(job) is not None
    # The retrain selector the trigger lists Jobs by matches the pods the template produces.
    executors = pytest.importorskip("services.retrain.executors")
    for pair in executors.RETRAIN_SELECTOR.split(","):
        key, value = pair.split("=")
        assert labels[key] == value
        assert job["spec"]["template"]["metadata"]["labels"][key] == value


def test_job_env_builds_the_retrain_settings(
    objects: list[Rendered], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = pytest.importorskip("services.retrain.settings")
    env = _env(job_template(objects)["spec"]["template"]["spec"]["containers"][0])
    for name, value in env.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRACKSEG_NAMESPACE", "crackseg")
    run = settings.RunSettings()
    assert run.rollout == "deployment"
    assert run.predictor_name == "crackseg-predictor"
    assert str(run.feedback_dir) == "/data/feedback"
    assert run.storage_uri_template == "pvc://crackseg-models/v{version}"
    cron = next(r.obj for r in objects if r.kind == "CronJob")
    for name, value in _env(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]).items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    trigger = settings.TriggerSettings()
    assert trigger.executor == "kubernetes"
    assert str(trigger.job_template) == "/etc/crackseg/job-template.yaml"


def test_rollout_target_is_the_rendered_predictor(objects: list[Rendered]) -> None:
    env = _env(job_template(objects)["spec"]["template"]["spec"]["containers"][0])
    deploy = next(r for r in objects if r.kind == "Deployment" and r.name == env["CRACKSEG_PREDICTOR_NAME"])
    c = deploy.obj["spec"]["template"]["spec"]["containers"][0]
    rollout = pytest.importorskip("services.retrain.rollout")
    # The rollout patches these two variables; the container must read its model from them.
    assert {rollout.ENV_SOURCE, rollout.ENV_VERSION} <= set(_env(c))
    assert "$(" + rollout.ENV_SOURCE + ")" in c["args"]


def test_grafana_sidecar_and_servicemonitor_selection_match_the_stack_values(objects: list[Rendered]) -> None:
    stack = yaml.safe_load((REPO / "monitoring" / "kube-prometheus-stack-values.yaml").read_text())
    sidecar = stack["grafana"]["sidecar"]["dashboards"]
    cm = next(r.obj for r in objects if r.kind == "ConfigMap" and r.name == "crackseg-dashboards")
    assert sidecar["enabled"] is True
    assert cm["metadata"]["labels"][sidecar["label"]] == str(sidecar["labelValue"])
    prom = stack["prometheus"]["prometheusSpec"]
    sm = next(r.obj for r in objects if r.kind == "ServiceMonitor")
    for key in ("serviceMonitorSelector", "ruleSelector", "podMonitorSelector"):
        for k, v in prom[key]["matchLabels"].items():
            assert sm["metadata"]["labels"][k] == v, key
    assert stack["grafana"]["ingress"]["ingressClassName"] == "traefik"
