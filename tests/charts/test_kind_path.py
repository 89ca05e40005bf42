"""Static checks on the rendered manifests and the delivery files for the kind path (issue 13, items 1–13).

Each test names the item it guards; each failed on the chart and scripts before the fix.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.render import CHART, SCENARIOS, Rendered, render, scenario_values
from tests.helpers.procs import REPO

MK = (REPO / "mk" / "k8s.mk").read_text()
E2E = (REPO / "scripts" / "e2e.sh").read_text()
# Objects Helm creates at install whose pods run at once: a WaitForFirstConsumer volume binds when one of them
# is scheduled. CronJob Jobs and the Job template in a ConfigMap run later (or never), so they do not count.
INSTALL_CONSUMERS = {"Deployment", "StatefulSet", "Job", "InferenceService"}


def _claims(spec: dict[str, Any]) -> set[str]:
    return {
        v["persistentVolumeClaim"]["claimName"]
        for v in spec.get("volumes", [])
        if "persistentVolumeClaim" in v
    }


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "InferenceService":
        return dict(obj["spec"]["predictor"])
    return dict(obj["spec"]["template"]["spec"])


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_item1_every_pvc_binds_during_helm_wait(path: Path) -> None:
    """`helm --wait` waits for PVCs to bind; on kind (WaitForFirstConsumer) only a scheduled pod binds one."""
    objects = render(scenario_values(path))
    pvcs = {r.name for r in objects if r.kind == "PersistentVolumeClaim"}
    hooks = {r.name for r in objects if "helm.sh/hook" in (r.obj["metadata"].get("annotations") or {})}
    consumed: set[str] = set()
    for r in objects:
        if r.kind in INSTALL_CONSUMERS and r.name not in hooks:
            consumed |= _claims(_pod(r.obj))
    assert pvcs - hooks <= consumed, f"PVCs nothing mounts at install: {sorted(pvcs - hooks - consumed)}"


def _helm_installs() -> list[str]:
    text = MK.replace("\\\n", " ")
    return [
        line
        for line in text.splitlines()
        if "helm upgrade --install" in line and "charts/crackseg" not in line
    ]


def test_item2_every_third_party_chart_is_pinned() -> None:
    installs = _helm_installs()
    assert {re.search(r"--install (\S+)", i)[1] for i in installs} == {  # type: ignore[index]
        "traefik",
        "metrics-server",
        "kube-prometheus-stack",
    }
    for line in installs:
        var = re.search(r"--version \$\((\w+)\)", line)
        assert var, f"not pinned: {line.strip()}"
        version = re.search(rf"^{var[1]} \?= (\S+)$", MK, re.MULTILINE)
        assert version and re.fullmatch(r"\d+\.\d+\.\d+", version[1]), f"{var[1]} is not an exact version"


def test_item2_traefik_gets_no_loadbalancer_service() -> None:
    """Host ports reach Traefik; a LoadBalancer Service never gets an address on kind and `--wait` hangs."""
    values = yaml.safe_load((REPO / "k8s" / "traefik-values.yaml").read_text())
    assert values["service"] == {"enabled": False}


def test_item13_kind_node_image_is_pinned_and_image_gc_is_on() -> None:
    kind = yaml.safe_load((REPO / "k8s" / "kind-config.yaml").read_text())
    for node in kind["nodes"]:
        assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", node["image"]), node["image"]
        kubelet = [yaml.safe_load(p) for p in node["kubeadmConfigPatches"]]
        gc = next(p for p in kubelet if p["kind"] == "KubeletConfiguration")
        assert 0 < gc["imageGCLowThresholdPercent"] < gc["imageGCHighThresholdPercent"] < 100


def test_item3_the_retraining_job_gives_dvc_a_writable_site_cache() -> None:
    from tests.charts.render import job_template

    job = job_template(render({}))
    spec = job["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert any(env["DVC_SITE_CACHE_DIR"].startswith(p.rstrip("/") + "/") for p in writable), env


def test_item5_e2e_runs_on_its_own_cluster() -> None:
    default = re.search(r"^KIND_CLUSTER \?= (\S+)$", MK, re.MULTILINE)[1]  # type: ignore[index]
    e2e = re.search(r'cluster="\$\{E2E_CLUSTER:-([^}]+)\}"', E2E)
    assert e2e and e2e[1] != default, "make e2e would delete the developer's cluster"
    assert "KIND_CLUSTER:-" not in E2E


def test_item6_the_chart_seeds_the_datasets_the_retraining_job_reads() -> None:
    from tests.charts.render import job_template

    objects = render({"image": {"tag": "t1"}})
    seed = next(r.obj for r in objects if r.kind == "Job" and r.name.startswith("crackseg-seed-"))
    spec = _pod(seed)
    container = spec["containers"][0]
    assert container["image"] == "crackseg-trainer:t1"  # item 13: the chart's image, no hard-coded tag
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    script = container["args"][0]
    job = job_template(objects)["spec"]["template"]["spec"]
    for m in job["containers"][0]["volumeMounts"]:
        if m["name"] == "datasets":
            assert f"--out {mounts['datasets']}/{m['subPath']} " in script, m
    assert _claims(spec) >= {c for c in _claims(job) if c.endswith(("datasets", "dvc"))}
    # A changed seed spec is a new Job (pod templates are immutable), not a failed upgrade.
    other = render({"image": {"tag": "t2"}})
    assert {r.name for r in other if r.kind == "Job"} != {seed["metadata"]["name"]}


def _predictor_env(objects: list[Rendered], kind: str = "Deployment") -> dict[str, Any]:
    obj = next(r.obj for r in objects if r.kind == kind and r.name == "crackseg-predictor")
    container = _pod(obj)["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_item7_the_served_version_pointer_lives_with_the_models() -> None:
    """`helm upgrade` re-renders the Deployment: what it renders must be the registry's champion, not a version."""
    objects = render({})
    env = _predictor_env(objects)
    assert env["CRACKSEG_MODEL_SOURCE"] == "models:/crackseg@champion"
    values = (CHART / "values.yaml").read_text()
    assert "/opt/crackseg/models/default\n" not in values.split("bootstrap:")[0]
    pod = _pod(next(r.obj for r in objects if r.kind == "Deployment" and r.name == "crackseg-predictor"))
    (init,) = pod["initContainers"]
    assert "ensure_champion" in init["args"][0] and init["args"][1] == env["MLFLOW_TRACKING_URI"]


def test_item10_kserve_starts_from_a_model_that_exists_on_a_fresh_cluster() -> None:
    objects = render(yaml.safe_load((CHART / "ci" / "kserve-values.yaml").read_text()))
    env = _predictor_env(objects, "InferenceService")
    assert "STORAGE_URI" not in env, env.get("STORAGE_URI")
    assert env["CRACKSEG_MODEL_SOURCE"] == "models:/crackseg@champion"


def test_the_predictor_reads_its_cpu_limit_from_the_downward_api() -> None:
    for kind, values in (
        ("Deployment", {}),
        ("InferenceService", {"predictor": {"kserve": {"enabled": True}, "autoscaling": {"enabled": False}}}),
    ):
        objects = render(values)
        env = _predictor_env(objects, kind)
        assert env["CRACKSEG_CPU_LIMIT"] == {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}
    limits = yaml.safe_load((CHART / "values.yaml").read_text())["predictor"]["resources"]["limits"]
    assert limits["cpu"]


def test_item9_the_hpa_has_a_metrics_server_on_kind() -> None:
    assert any(r.kind == "HorizontalPodAutoscaler" for r in render({}))
    (install,) = [i for i in _helm_installs() if "metrics-server" in i]
    values = yaml.safe_load((REPO / "k8s" / "metrics-server-values.yaml").read_text())
    assert "-f k8s/metrics-server-values.yaml" in install and "--kubelet-insecure-tls" in values["args"]


def test_item13_the_ui_ingress_serves_the_host_the_kind_config_promises() -> None:
    ingress = next(r.obj for r in render({}) if r.kind == "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "crackseg.localtest.me"
    assert "crackseg.localtest.me" in (REPO / "k8s" / "kind-config.yaml").read_text()


def test_item13_e2e_waits_without_races_and_skaffold_is_checked() -> None:
    assert ".items[0]" not in E2E
    assert "--for=condition=complete" not in E2E.split("wait_job()", 1)[1]
    assert re.search(r"^dev: skaffold-check", MK, re.MULTILINE)
    assert "SKAFFOLD_MIN_VERSION ?= 2.17" in MK


FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "$LOG"
case "$1 $2" in
  "image inspect") echo "sha256:$(echo "$CONTENT-$5" | sha256sum | cut -c1-64)" ;;
esac
"""


def _deploy(tmp_path: Path, content: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("docker", "kind", "helm"):
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / f"log-{content}"
    # `make` exports DOCKER (mk/k8s.mk): drop the tool overrides so deploy.sh finds the fakes on PATH.
    inherited = {k: v for k, v in os.environ.items() if k not in ("DOCKER", "KIND", "HELM")}
    env = {
        **inherited,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LOG": str(log),
        "CONTENT": content,
        "KIND_LOAD_LOG": str(tmp_path / "kind-load-times.txt"),
    }
    subprocess.run(
        [str(REPO / "scripts" / "deploy.sh")], env=env, check=True, capture_output=True, timeout=60
    )
    return log.read_text().splitlines()


def test_item8_deploy_tags_images_by_content(tmp_path: Path) -> None:
    first, second = _deploy(tmp_path, "a"), _deploy(tmp_path, "b")
    timings = (tmp_path / "kind-load-times.txt").read_text().splitlines()
    assert len(timings) == 8 and all(re.search(r" kind-load \d+ ms$", line) for line in timings)
    helm = [line for line in first if line.startswith("helm ")]
    assert len(helm) == 1 and "image.tag=dev" not in helm[0]
    tags = re.findall(r"--set (\w+)\.image\.tag=(c-[0-9a-f]{16})", helm[0])
    assert {k for k, _ in tags} == {"predictor", "ui", "retrain", "mlflow"}
    for key, tag in tags:
        assert any(
            line.startswith("kind load docker-image") and line.endswith(f":{tag}") for line in first
        ), key
    assert re.findall(r"image\.tag=(\S+)", helm[0]) != re.findall(
        r"image\.tag=(\S+)", next(line for line in second if line.startswith("helm "))
    ), "a rebuild with other content must roll new tags"
