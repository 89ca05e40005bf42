"""skaffold.yaml, k8s/ manifests, the Makefile fragment and the CI workflow agree with the chart and the contract."""

from __future__ import annotations

import re

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.charts.render import CHART, render
from tests.helpers.procs import REPO

IMAGES = {"crackseg-predictor", "crackseg-ui", "crackseg-trainer", "crackseg-mlflow"}


@pytest.fixture(scope="module")
def skaffold() -> dict:
    return dict(yaml.safe_load((REPO / "skaffold.yaml").read_text()))


def test_skaffold_builds_every_image_from_its_dockerfile(skaffold: dict) -> None:
    artifacts = {a["image"]: a for a in skaffold["build"]["artifacts"]}
    assert set(artifacts) == IMAGES
    for name, artifact in artifacts.items():
        dockerfile = REPO / artifact["docker"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        assert "BASE_IMAGE" in artifact["docker"]["buildArgs"], name
        assert dockerfile.name == f"{name.removeprefix('crackseg-')}.Dockerfile"


def test_skaffold_value_templates_are_chart_values(skaffold: dict) -> None:
    release = skaffold["deploy"]["helm"]["releases"][0]
    assert (REPO / release["chartPath"]).resolve() == CHART.resolve()
    templates = release["setValueTemplates"]
    images = {a["image"] for a in skaffold["build"]["artifacts"]}
    overrides: dict = {}
    for key, template in templates.items():
        name = re.search(r"IMAGE_(?:REPO|TAG)_(\w+)", template)
        assert name and name.group(1).replace("_", "-") in images, template
        node = overrides
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = "example"
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(overrides))
    rendered = {
        r.obj["spec"]["template"]["spec"]["containers"][0]["image"]
        for r in render(overrides)
        if r.kind == "Deployment"
    }
    assert rendered == {"example:example"}


def test_skaffold_port_forwards_target_rendered_services(skaffold: dict) -> None:
    services = {r.name for r in render({}) if r.kind == "Service"}
    forwards = {(f["resourceName"], f["port"], f["localPort"]) for f in skaffold["portForward"]}
    assert ("crackseg-ui", 8500, 8500) in forwards
    assert ("crackseg-predictor", 8000, 8000) in forwards
    assert ("crackseg-mlflow", 5000, 5000) in forwards
    assert ("kube-prometheus-stack-grafana", 80, 3000) in forwards
    for name, _, _ in forwards:
        assert name in services or name == "kube-prometheus-stack-grafana", name
    profiles = {p["name"]: p for p in skaffold["profiles"]}
    assert set(profiles) == {"kserve", "gpu"}
    for profile in profiles.values():
        for patch in profile["patches"]:
            for values_file in patch["value"] if patch["path"].endswith("valuesFiles") else []:
                assert (REPO / values_file).is_file(), values_file


def test_k8s_manifests_are_valid() -> None:
    for doc in yaml.safe_load_all((REPO / "k8s" / "namespace.yaml").read_text()):
        for version in ("1.33", "1.37"):
            kubernetes_validate.validate(doc, version, strict=True)
    ns = yaml.safe_load((REPO / "k8s" / "namespace.yaml").read_text())
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_kind_maps_the_ingress_ports_to_the_node_traefik_runs_on() -> None:
    kind = yaml.safe_load((REPO / "k8s" / "kind-config.yaml").read_text())
    node = kind["nodes"][0]
    assert {(m["containerPort"], m["hostPort"]) for m in node["extraPortMappings"]} == {(80, 80), (443, 443)}
    assert "ingress-ready=true" in node["kubeadmConfigPatches"][0]
    traefik = yaml.safe_load((REPO / "k8s" / "traefik-values.yaml").read_text())
    assert traefik["nodeSelector"] == {"ingress-ready": "true"}
    assert traefik["ports"]["web"]["hostPort"] == 80
    assert traefik["ingressClass"]["name"] == "traefik"


def test_makefile_fragment_has_the_delivery_targets() -> None:
    text = (REPO / "mk" / "k8s.mk").read_text()
    for target in ("cluster", "deploy", "dev", "port-forward", "e2e", "destroy", "images", "images-test"):
        assert re.search(rf"^{re.escape(target)}:.*## ", text, re.MULTILINE), target


def test_ci_workflow_runs_make_e2e() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "e2e.yml").read_text())
    steps = workflow["jobs"]["e2e"]["steps"]
    assert any(s.get("run") == "make e2e" for s in steps)
