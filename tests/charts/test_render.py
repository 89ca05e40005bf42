"""Real Helm rendering of every CI scenario, validated against the Kubernetes and CRD schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.charts.render import (
    CHART,
    KUBE_VERSIONS,
    SCENARIOS,
    Rendered,
    job_template,
    notes,
    render,
    schemas_dir,
)

CRD_SCHEMAS = {
    "ServiceMonitor": "servicemonitor-monitoring-v1-strict.json",
    "PodMonitor": "podmonitor-monitoring-v1-strict.json",
    "PrometheusRule": "prometheusrule-monitoring-v1-strict.json",
    "InferenceService": "inferenceservice-serving-v1beta1-strict.json",
}


def test_ci_scenarios_cover_the_documented_cases() -> None:
    names = {p.name for p in SCENARIOS}
    assert names == {
        "default-values.yaml",
        "kserve-values.yaml",
        "external-db-values.yaml",
        "gpu-values.yaml",
        "ingress-values.yaml",
    }


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_is_valid_kubernetes_in_strict_mode(
    scenario: tuple[str, list[Rendered]], kube_version: str
) -> None:
    name, objects = scenario
    objects = [*objects, Rendered("job-template.yaml", job_template(objects))]
    checked = 0
    for r in objects:
        if r.kind in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(r.obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name}: {r.template} {r.kind}/{r.name} invalid for {kube_version}: {e.message}")
        checked += 1
    assert checked >= 20, f"{name}: only {checked} objects rendered"


def test_custom_resources_match_their_crd_schemas(scenario: tuple[str, list[Rendered]]) -> None:
    root = schemas_dir()
    if root is None:
        pytest.skip("CRD schemas not found (set CRACKSEG_SCHEMAS or provide ../shared/schemas/crds)")
    name, objects = scenario
    custom = [r for r in objects if r.kind in CRD_SCHEMAS]
    assert custom, f"{name}: no custom resources rendered"
    for r in custom:
        schema = json.loads((root / CRD_SCHEMAS[r.kind]).read_text())
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(r.obj), key=lambda e: list(e.path))
        assert not errors, f"{name}: {r.kind}/{r.name}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
        )


def test_a_bad_custom_resource_fails_its_crd_schema() -> None:
    """The CRD check itself can fail: a ServiceMonitor with an unknown field is rejected."""
    root = schemas_dir()
    if root is None:
        pytest.skip("CRD schemas not found")
    sm = next(r.obj for r in render({}) if r.kind == "ServiceMonitor")
    sm["spec"]["endpoints"][0]["scrapeEvery"] = "15s"
    schema = json.loads((root / CRD_SCHEMAS["ServiceMonitor"]).read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(sm))


def test_helm_lint_passes_strict() -> None:
    report = helm_python.lint(CHART, strict=True, namespace="crackseg", kube_version="v1.33.0")
    errors = [m for m in report["messages"] if m["severity"] >= 2]
    assert not errors and not report["errors"], report


def test_values_schema_rejects_unknown_keys() -> None:
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(chart.values)
        with pytest.raises(helm_python.HelmValuesError, match=r"predictr|additional"):
            chart.validate_schema({**chart.values, "predictr": {"enabled": True}})
        with pytest.raises(helm_python.HelmValuesError):
            chart.validate_schema(chart.merge_values({"ui": {"ingress": {"enabled": "yes"}}}))
        with pytest.raises(helm_python.HelmValuesError):
            chart.validate_schema(chart.merge_values({"persistence": {"feedback": {"accessModes": ["RWO"]}}}))


def test_render_fails_on_a_plaintext_database_password() -> None:
    with pytest.raises(helm_python.HelmError, match="existingSecret"):
        render({"mlflow": {"backendStore": {"uri": "postgresql://mlflow:hunter2@db:5432/mlflow"}}})


def test_render_fails_on_shared_rwo_volumes_across_nodes() -> None:
    with pytest.raises(helm_python.HelmError, match="ReadWriteMany"):
        render({"persistence": {"singleNode": False}})
    rwx = {"accessModes": ["ReadWriteMany"]}
    objs = render({"persistence": {"singleNode": False, "feedback": rwx, "models": rwx}})
    pvc = next(r.obj for r in objs if r.kind == "PersistentVolumeClaim" and r.name == "crackseg-feedback")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def _kinds(objects: list[Rendered]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in objects:
        out.setdefault(r.kind, set()).add(r.name)
    return out


def test_default_scenario_objects(default_objects: list[Rendered]) -> None:
    kinds = _kinds(default_objects)
    assert kinds["Deployment"] == {"crackseg-predictor", "crackseg-ui", "crackseg-mlflow"}
    assert kinds["Service"] == {"crackseg-predictor", "crackseg-ui", "crackseg-mlflow"}
    assert kinds["HorizontalPodAutoscaler"] == {"crackseg-predictor"}
    assert kinds["PodDisruptionBudget"] == {"crackseg-predictor"}
    assert kinds["CronJob"] == {"crackseg-retrain-trigger"}
    assert kinds["PersistentVolumeClaim"] == {
        "crackseg-feedback",
        "crackseg-models",
        "crackseg-dvc",
        "crackseg-datasets",
        "crackseg-mlflow",
    }
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds.keys()
    assert "InferenceService" not in kinds and "PodMonitor" not in kinds
    # The kind cluster of `make cluster` routes http://crackseg.localtest.me to the UI (item 13 of issue 13).
    assert kinds["Ingress"] == {"crackseg-ui"}
    assert {n.rsplit("-", 1)[0] for n in kinds["Job"]} == {"crackseg-seed"}
    cron = next(r.obj for r in default_objects if r.kind == "CronJob")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["successfulJobsHistoryLimit"] == 3 and cron["failedJobsHistoryLimit"] == 3


def test_kserve_scenario_swaps_the_deployment_for_an_inferenceservice() -> None:
    objects = render(yaml.safe_load((CHART / "ci" / "kserve-values.yaml").read_text()))
    kinds = _kinds(objects)
    assert kinds["InferenceService"] == {"crackseg-predictor"}
    assert "crackseg-predictor" not in kinds["Deployment"] and "HorizontalPodAutoscaler" not in kinds
    assert "PodMonitor" in kinds and "ServiceMonitor" not in kinds
    isvc = next(r.obj for r in objects if r.kind == "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    plain = next(r.obj for r in render({}) if r.kind == "Deployment" and r.name == "crackseg-predictor")
    container = isvc["spec"]["predictor"]["containers"][0]
    expected = plain["spec"]["template"]["spec"]["containers"][0]
    for key in ("image", "args", "readinessProbe", "livenessProbe", "volumeMounts", "securityContext"):
        assert container[key] == expected[key], key
    env = {e["name"]: e.get("value") for e in container["env"]}
    # A fresh cluster has no exported folder: the InferenceService starts from the champion like the Deployment.
    assert env == {e["name"]: e.get("value") for e in expected["env"]}
    # Once a rollout (or values) names an exported folder, KServe serves it, mounted at /mnt/models.
    pinned = render(
        {**yaml.safe_load((CHART / "ci" / "kserve-values.yaml").read_text())}
        | {
            "predictor": {
                "autoscaling": {"enabled": False},
                "kserve": {"enabled": True, "storageUri": "pvc://m/v3"},
            }
        }
    )
    pinned_isvc = next(r.obj for r in pinned if r.kind == "InferenceService")
    pinned_env = {e["name"]: e.get("value") for e in pinned_isvc["spec"]["predictor"]["containers"][0]["env"]}
    assert pinned_env["STORAGE_URI"] == "pvc://m/v3" and pinned_env["CRACKSEG_MODEL_SOURCE"] == "/mnt/models"
    assert isvc["spec"]["predictor"]["volumes"] == plain["spec"]["template"]["spec"]["volumes"]
    role = next(r.obj for r in objects if r.kind == "Role" and r.name == "crackseg-retrain")
    assert role["rules"][0]["resources"] == ["inferenceservices"]
    env = {
        e["name"]: e.get("value")
        for e in job_template(objects)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CRACKSEG_ROLLOUT"] == "inferenceservice"
    assert "crackseg-predictor-predictor" in (env["CRACKSEG_PREDICTOR_URL"] or "")


def test_gpu_scenario_requests_gpus_for_training_only() -> None:
    objects = render(yaml.safe_load((CHART / "ci" / "gpu-values.yaml").read_text()))
    job = job_template(objects)["spec"]["template"]["spec"]
    res = job["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "1" and res["requests"]["nvidia.com/gpu"] == "1"
    assert res["limits"]["memory"] == "16Gi"
    assert job["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert job["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    for r in objects:
        if r.kind in {"Deployment", "CronJob"}:
            assert "nvidia.com/gpu" not in json.dumps(r.obj), r.name


def test_external_db_scenario_reads_the_uri_from_a_secret() -> None:
    objects = render(yaml.safe_load((CHART / "ci" / "external-db-values.yaml").read_text()))
    mlflow = next(r.obj for r in objects if r.kind == "Deployment" and r.name == "crackseg-mlflow")
    env = {e["name"]: e for e in mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "crackseg-mlflow-db",
        "key": "uri",
    }
    policy = next(r.obj for r in objects if r.kind == "NetworkPolicy" and r.name == "crackseg-mlflow")
    assert policy["spec"]["egress"][0]["ports"] == [{"port": 5432, "protocol": "TCP"}]
    for r in objects:
        if pod := r.obj.get("spec", {}).get("template", {}).get("spec"):
            for c in pod["containers"]:
                token = [e for e in c.get("env", []) if e["name"] == "CRACKSEG_API_TOKEN"]
                if token:
                    assert token[0]["valueFrom"]["secretKeyRef"]["name"] == "crackseg-api-token"


def test_ingress_scenario_routes_the_ui_through_traefik() -> None:
    objects = render(yaml.safe_load((CHART / "ci" / "ingress-values.yaml").read_text()))
    ingress = next(r.obj for r in objects if r.kind == "Ingress")
    assert ingress["spec"]["ingressClassName"] == "traefik"
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "crackseg.localtest.me"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "crackseg-ui", "port": {"name": "http"}}
    assert "http://crackseg.localtest.me/" in notes(
        yaml.safe_load((CHART / "ci" / "ingress-values.yaml").read_text())
    )


def test_components_can_be_switched_off() -> None:
    objects = render(
        {
            "ui": {"enabled": False},
            "retrain": {"enabled": False},
            "monitoring": {"enabled": False},
            "networkPolicy": {"enabled": False},
            "mlflow": {"enabled": False, "externalUrl": "http://mlflow.example:5000"},
        }
    )
    kinds = _kinds(objects)
    assert kinds["Deployment"] == {"crackseg-predictor"}
    assert not {"CronJob", "ServiceMonitor", "PrometheusRule", "NetworkPolicy", "Role"} & kinds.keys()
    deploy = next(r.obj for r in objects if r.kind == "Deployment")
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    with pytest.raises(helm_python.HelmError, match="externalUrl"):
        render({"mlflow": {"enabled": False}})


def test_notes_give_working_port_forward_commands() -> None:
    text = notes({})
    for svc, ports in (
        ("crackseg-ui", "8500:8500"),
        ("crackseg-predictor", "8000:8000"),
        ("crackseg-mlflow", "5000:5000"),
    ):
        assert f"kubectl -n crackseg port-forward svc/{svc} {ports}" in text
    assert "port-forward svc/kube-prometheus-stack-grafana 3000:80" in text


def test_image_references_follow_values() -> None:
    objects = render({"global": {"imageRegistry": "registry.example/ml"}, "image": {"tag": "1.2.3"}})
    images: set[str] = set()
    for r in objects:
        images |= set(_images(r.obj))
    images |= set(_images(job_template(objects)))
    assert images == {
        "registry.example/ml/crackseg-predictor:1.2.3",
        "registry.example/ml/crackseg-ui:1.2.3",
        "registry.example/ml/crackseg-mlflow:1.2.3",
        "registry.example/ml/crackseg-trainer:1.2.3",
    }


def _images(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        found = [obj["image"]] if isinstance(obj.get("image"), str) else []
        return found + [i for v in obj.values() for i in _images(v)]
    if isinstance(obj, list):
        return [i for v in obj for i in _images(v)]
    return []


def test_chart_files_are_the_monitoring_sources() -> None:
    """Dashboards and rules are never edited twice: the chart's files/ entries are links into monitoring/."""
    for name in ("dashboards", "rules"):
        link = CHART / "files" / name
        assert link.is_symlink(), f"{link} must be a symlink into monitoring/"
        assert link.resolve() == (CHART.parents[1] / "monitoring" / name).resolve()
    rendered = next(r.obj for r in render({}) if r.kind == "ConfigMap" and r.name == "crackseg-dashboards")
    sources = {p.name: p.read_text() for p in (CHART.parents[1] / "monitoring" / "dashboards").glob("*.json")}
    assert rendered["data"] == {k: v.rstrip("\n") for k, v in sources.items()}
    assert rendered["metadata"]["labels"]["grafana_dashboard"] == "1"
    rule = next(r.obj for r in render({}) if r.kind == "PrometheusRule")
    source = yaml.safe_load((CHART.parents[1] / "monitoring" / "rules" / "crackseg.rules.yaml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_release_label_is_configurable() -> None:
    objects = render({"monitoring": {"release": "prom"}})
    for r in objects:
        if r.kind in {"ServiceMonitor", "PrometheusRule"}:
            assert r.obj["metadata"]["labels"]["release"] == "prom"


def test_values_yaml_documents_every_key() -> None:
    """helm-docs: every leaf or block in values.yaml has a `# --` comment above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    values = yaml.safe_load("\n".join(lines))
    undocumented = []
    for path in _leaf_paths(values):
        key = path[-1]
        idx = _find_key_line(lines, path)
        above = lines[:idx]
        block = []
        for line in reversed(above):
            if line.strip().startswith("#"):
                block.append(line.strip())
            else:
                break
        if not any(c.startswith("# --") for c in block):
            undocumented.append(".".join(path) + f" ({key})")
    assert not undocumented, undocumented


def _leaf_paths(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for k, v in values.items():
        path = (*prefix, k)
        # resources blocks are documented as a whole.
        if isinstance(v, dict) and v and k != "resources":
            out.extend(_leaf_paths(v, path))
        else:
            out.append(path)
    return out


def _find_key_line(lines: list[str], path: tuple[str, ...]) -> int:
    start, indent = 0, 0
    for depth, key in enumerate(path):
        for i in range(start, len(lines)):
            line = lines[i]
            if line.startswith(" " * indent + f"{key}:") and (len(line) - len(line.lstrip())) == indent:
                start, indent = i + 1, indent + 2
                if depth == len(path) - 1:
                    return i
                break
        else:
            raise AssertionError(f"key {'.'.join(path)} not found in values.yaml")
    raise AssertionError(".".join(path))


def test_schema_and_values_have_the_same_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(s: dict[str, Any], v: Any, path: str) -> None:
        if s.get("type") == "object" and "properties" in s:
            assert s.get("additionalProperties") is False, f"{path}: additionalProperties must be false"
            assert set(s["properties"]) == set(v), (
                f"{path}: schema {sorted(s['properties'])} vs values {sorted(v)}"
            )
            assert set(s.get("required", [])) == set(v), f"{path}: every key is required"
            for k, sub in s["properties"].items():
                walk(sub, v[k], f"{path}.{k}")

    walk(schema, values, "values")


def test_scenario_files_parse(scenario: tuple[str, list[Rendered]]) -> None:
    name, objects = scenario
    assert Path(CHART / "ci" / name).is_file() and objects
