"""Policy over the rendered objects: restricted Pod Security Standard, resources, probes, RBAC, secrets,
NetworkPolicies. Every scenario, every pod (including the Job the trigger creates from the template)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.charts.render import CHART, SCENARIOS, Rendered, render, scenario_values, workloads

# Long-running servers get probes; batch pods (CronJob, Job) are judged by their exit code.
SERVERS = {"Deployment", "InferenceService"}


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_pods_meet_the_restricted_pod_security_standard(scenario: tuple[str, list[Rendered]]) -> None:
    name, objects = scenario
    pods = workloads(objects)
    assert len(pods) >= 5
    for where, spec in pods:
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True, where
        assert ctx["runAsUser"] > 0, where
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), f"{where}: {key}"
        for vol in spec.get("volumes", []):
            assert "hostPath" not in vol, f"{where}: hostPath volume {vol['name']}"
        for c in _containers(spec):
            sc = c["securityContext"]
            label = f"{name} {where} container {c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, label
            assert sc["readOnlyRootFilesystem"] is True, label
            assert sc.get("privileged", False) is False, label
            assert sc["capabilities"]["drop"] == ["ALL"], label
            assert not sc["capabilities"].get("add"), label
            assert sc["runAsNonRoot"] is True, label
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", label
            for port in c.get("ports", []):
                assert "hostPort" not in port, label


def test_read_only_pods_get_a_writable_tmp(scenario: tuple[str, list[Rendered]]) -> None:
    _, objects = scenario
    for where, spec in workloads(objects):
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in _containers(spec):
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp, f"{where}/{c['name']}: no writable /tmp on a read-only root"
            vol = volumes[tmp[0]["name"]]
            assert "emptyDir" in vol and vol["emptyDir"].get("sizeLimit"), (
                f"{where}: /tmp must be a bounded emptyDir"
            )
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            assert env.get("HOME") == "/tmp", f"{where}/{c['name']}: HOME must be writable"


def test_every_container_has_requests_and_limits(scenario: tuple[str, list[Rendered]]) -> None:
    _, objects = scenario
    for where, spec in workloads(objects):
        for c in _containers(spec):
            res = c["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{where}/{c['name']}: {kind}"


def test_servers_have_startup_liveness_and_readiness_probes(scenario: tuple[str, list[Rendered]]) -> None:
    _, objects = scenario
    servers = [r for r in objects if r.kind in SERVERS]
    assert servers
    for r in servers:
        spec = (
            r.obj["spec"]["predictor"] if r.kind == "InferenceService" else r.obj["spec"]["template"]["spec"]
        )
        for c in spec["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in c, f"{r.kind}/{r.name}/{c['name']}: {probe}"
            port_names = {p["name"] for p in c["ports"]}
            assert c["readinessProbe"]["httpGet"]["port"] in port_names


def test_the_predictor_is_ready_only_with_a_model() -> None:
    deploy = next(r.obj for r in render({}) if r.kind == "Deployment" and r.name == "crackseg-predictor")
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    # A rollout keeps the old pod serving until the new one has loaded its model.
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def _rbac(objects: list[Rendered]) -> dict[str, list[dict[str, Any]]]:
    """ServiceAccount name → rules bound to it."""
    roles = {r.name: r.obj for r in objects if r.kind in {"Role", "ClusterRole"}}
    out: dict[str, list[dict[str, Any]]] = {}
    for b in (r.obj for r in objects if r.kind in {"RoleBinding", "ClusterRoleBinding"}):
        for s in b["subjects"]:
            out.setdefault(s["name"], []).extend(roles[b["roleRef"]["name"]]["rules"])
    return out


@pytest.mark.parametrize("kserve", [False, True])
def test_rbac_is_least_privilege(kserve: bool) -> None:
    objects = render({"predictor": {"kserve": {"enabled": kserve}, "autoscaling": {"enabled": not kserve}}})
    assert not [r for r in objects if r.kind in {"ClusterRole", "ClusterRoleBinding"}]
    rbac = _rbac(objects)
    assert set(rbac) == {"crackseg-retrain-trigger", "crackseg-retrain"}
    assert rbac["crackseg-retrain-trigger"] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "list"]}
    ]
    group, resource = ("serving.kserve.io", "inferenceservices") if kserve else ("apps", "deployments")
    assert rbac["crackseg-retrain"] == [
        {
            "apiGroups": [group],
            "resources": [resource],
            "resourceNames": ["crackseg-predictor"],
            "verbs": ["get", "patch"],
        },
        # The run labels its own Job with the outcome (issue 13, item 11).
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["patch"]},
    ]
    for rules in rbac.values():
        for rule in rules:
            assert "*" not in json.dumps(rule), rule
            assert not {"secrets", "pods/exec", "roles", "rolebindings"} & set(rule["resources"])


def test_only_api_clients_mount_a_service_account_token() -> None:
    objects = render({})
    accounts = {r.name: r.obj for r in objects if r.kind == "ServiceAccount"}
    for where, spec in workloads(objects):
        sa = spec["serviceAccountName"]
        assert sa in accounts, f"{where}: ServiceAccount {sa} not rendered"
        mounts = spec.get(
            "automountServiceAccountToken", accounts[sa].get("automountServiceAccountToken", True)
        )
        needs_api = sa in {"crackseg-retrain-trigger", "crackseg-retrain"}
        assert mounts is needs_api, f"{where}: token mounted={mounts}, needs the API={needs_api}"


SECRETISH = re.compile(r"(password|passwd|secret|token|apikey|api_key|credential)", re.IGNORECASE)


@pytest.mark.parametrize("path", [CHART / "values.yaml", *SCENARIOS], ids=lambda p: p.name)
def test_no_plaintext_secrets_in_values(path: Any) -> None:
    """Values may name Secrets and keys, never hold secret material."""
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                here = f"{where}.{k}"
                if (
                    SECRETISH.search(k)
                    and isinstance(v, str)
                    and v
                    and k not in {"existingSecret", "secretKey", "tlsSecretName"}
                ):
                    found.append(here)
                walk(v, here)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")
        elif isinstance(node, str) and re.search(r"://[^/@\s]+:[^/@\s]+@", node):
            found.append(f"{where} (credentials in a URI)")

    walk(yaml.safe_load(path.read_text()) or {}, "values")
    assert not found, found


def test_no_secret_objects_and_no_literal_secret_env(scenario: tuple[str, list[Rendered]]) -> None:
    _, objects = scenario
    assert not [r for r in objects if r.kind == "Secret"], "the chart never creates Secrets from values"
    for where, spec in workloads(objects):
        for c in _containers(spec):
            for e in c.get("env", []):
                if SECRETISH.search(e["name"]):
                    assert "value" not in e, f"{where}: {e['name']} must come from a Secret"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_network_policies_default_deny_then_allow_each_flow(scenario: tuple[str, list[Rendered]]) -> None:
    _, objects = scenario
    policies = [r.obj for r in objects if r.kind == "NetworkPolicy"]
    deny = next(p for p in policies if p["metadata"]["name"] == "crackseg-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    for where, _spec in workloads(objects):
        # The pod's labels: from the template metadata of the workload.
        labels = _pod_labels(objects, where)
        assert _selects(deny["spec"]["podSelector"], labels), f"{where} escapes the default deny"
        own = [p for p in policies if p is not deny and _selects(p["spec"]["podSelector"], labels)]
        component = labels["app.kubernetes.io/component"]
        assert any(
            p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == component
            for p in own
        ), f"{where}: no policy of its own"


def _pod_labels(objects: list[Rendered], where: str) -> dict[str, str]:
    from tests.charts.render import job_template

    if where.startswith("Job/retrain"):
        return dict(job_template(objects)["spec"]["template"]["metadata"]["labels"])
    kind, name = where.split("/", 1)
    obj = next(r.obj for r in objects if r.kind == kind and r.name == name)
    if kind == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
    if kind == "InferenceService":
        return dict(obj["spec"]["predictor"]["labels"])
    return dict(obj["spec"]["template"]["metadata"]["labels"])


def _allowed_ingress(policies: list[dict[str, Any]], component: str, port: int) -> list[dict[str, Any]]:
    peers: list[dict[str, Any]] = []
    for p in policies:
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") != component:
            continue
        for rule in p["spec"].get("ingress", []):
            if any(x["port"] == port for x in rule.get("ports", [])):
                peers.extend(rule["from"])
    return peers


def test_network_flows_match_the_architecture() -> None:
    policies = [r.obj for r in render({}) if r.kind == "NetworkPolicy"]

    def from_components(peers: list[dict[str, Any]]) -> set[str]:
        return {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for peer in peers
            if "podSelector" in peer and "namespaceSelector" not in peer
        }

    assert from_components(_allowed_ingress(policies, "predictor", 8000)) == {"ui", "retrain"}
    assert from_components(_allowed_ingress(policies, "mlflow", 5000)) == {"predictor", "ui", "retrain"}
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in _allowed_ingress(policies, "predictor", 8000)
        if "namespaceSelector" in peer
    }
    assert namespaces == {"monitoring"}, "only Prometheus' namespace may scrape the predictor"
    ui_from = _allowed_ingress(policies, "ui", 8500)
    assert [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in ui_from] == [
        "traefik"
    ]
    mlflow = next(p for p in policies if p["metadata"]["name"] == "crackseg-mlflow")
    assert mlflow["spec"]["egress"] == [], "MLflow on SQLite talks to nobody"
    trigger = next(p for p in policies if p["metadata"]["name"] == "crackseg-retrain-trigger")
    assert [port["port"] for port in trigger["spec"]["egress"][0]["ports"]] == [443, 6443]


def test_scenarios_keep_the_policies() -> None:
    for path in SCENARIOS:
        kinds = {r.kind for r in render(scenario_values(path))}
        assert "NetworkPolicy" in kinds, path.name
