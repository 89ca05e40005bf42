"""Run a rendered pod spec in the real Docker engine the way a kubelet would.

What is translated, and how:
- ``command``/``args``: ``command[0]`` becomes the entrypoint, the rest plus ``args`` the arguments (``args`` alone
  keep the image's entrypoint); ``$(VAR)`` references are expanded from the container's env, like the kubelet.
- ``env``: literal values; ``fieldRef`` (``metadata.namespace``, ``metadata.name``, ``metadata.labels['k']``) and
  ``resourceFieldRef`` (``limits.cpu``/``limits.memory`` with a divisor) resolved here; ConfigMap/Secret key refs
  from the rendered objects.
- ``securityContext``: ``runAsUser``/``runAsGroup`` → ``--user``, ``fsGroup`` → ``--group-add`` and the volume
  folders' group, ``readOnlyRootFilesystem`` → ``--read-only``, dropped capabilities → ``--cap-drop``,
  ``allowPrivilegeEscalation: false`` → ``no-new-privileges``; a root user under ``runAsNonRoot`` is refused.
- volumes: ``emptyDir`` → tmpfs (``sizeLimit``), PVC → a host folder shared by every container (``subPath`` and
  ``readOnly`` honoured), ConfigMap/Secret → files, the service-account token → the projected files when the pod
  mounts one (``automountServiceAccountToken``).
- ``resources.limits`` → ``--cpus``/``--memory``; Services → network aliases (``name``, ``name.ns``,
  ``name.ns.svc``) on one Docker network; init containers run to completion first.
- readiness: ``httpGet`` probes from the host to the container's address, ``exec`` probes with ``docker exec``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DOCKER = os.environ.get("DOCKER") or "docker"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:3])} … failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return result


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if str(quantity).endswith("m") else float(quantity)


def memory_bytes(quantity: str) -> int:
    q = str(quantity)
    for suffix, factor in _QUANTITY.items():
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * factor)
    return int(q)


@dataclass
class Cluster:
    """What the pods share: a Docker network, the PVC folders, the rendered objects, the API server if any."""

    root: Path
    namespace: str
    objects: list[dict[str, Any]]
    network: str
    api_env: dict[str, str] = field(default_factory=dict)
    sa_files: dict[str, str] = field(default_factory=dict)
    containers: list[str] = field(default_factory=list)

    def claim_dir(self, claim: str, gid: int | None) -> Path:
        path = self.root / "pvc" / claim
        if not path.exists():
            path.mkdir(parents=True)
            if gid is not None:  # the kubelet makes fsGroup own a volume, setgid so new files keep the group
                os.chown(path, 0, gid)
                path.chmod(0o2775)
        return path

    def find(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise AssertionError(f"{kind} {name} is not among the rendered objects")

    def aliases(self, labels: dict[str, str]) -> list[str]:
        """Names the Services selecting these pod labels answer to inside the cluster."""
        out: list[str] = []
        for obj in self.objects:
            selector = obj.get("spec", {}).get("selector") if obj["kind"] == "Service" else None
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                name = obj["metadata"]["name"]
                out += [name, f"{name}.{self.namespace}", f"{name}.{self.namespace}.svc"]
        return out


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)


def _field(path: str, meta: dict[str, Any]) -> str:
    if path == "metadata.namespace":
        return str(meta["namespace"])
    if path == "metadata.name":
        return str(meta["name"])
    label = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
    if label:
        return str(meta.get("labels", {}).get(label[1], ""))
    raise AssertionError(f"fieldRef {path} is not emulated")


def _env(container: dict[str, Any], meta: dict[str, Any], cluster: Cluster) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _expand(str(item["value"]), env)
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            env[item["name"]] = _field(ref["fieldRef"]["fieldPath"], meta)
        elif "resourceFieldRef" in ref:
            r = ref["resourceFieldRef"]
            limit = container.get("resources", {}).get("limits", {}).get(r["resource"].split(".")[1])
            assert limit is not None, f"{item['name']}: {r['resource']} has no limit to read"
            if r["resource"] == "limits.cpu":
                env[item["name"]] = str(math.ceil(cpu_cores(limit) / cpu_cores(r.get("divisor", "1"))))
            else:
                env[item["name"]] = str(math.ceil(memory_bytes(limit) / memory_bytes(r.get("divisor", "1"))))
        else:
            kind, key = (
                ("ConfigMap", "configMapKeyRef") if "configMapKeyRef" in ref else ("Secret", "secretKeyRef")
            )
            obj = cluster.find(kind, ref[key]["name"])
            data = obj.get("data", {})
            value = data[ref[key]["key"]]
            env[item["name"]] = base64.b64decode(value).decode() if kind == "Secret" else value
    return env


def _volume_args(pod: dict[str, Any], container: dict[str, Any], cluster: Cluster, work: Path) -> list[str]:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    gid = pod.get("securityContext", {}).get("fsGroup")
    args: list[str] = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        target, ro = mount["mountPath"], mount.get("readOnly", False)
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit", "1Gi")
            args += ["--tmpfs", f"{target}:rw,exec,mode=1777,size={memory_bytes(size)}"]
            continue
        if "persistentVolumeClaim" in volume:
            source = cluster.claim_dir(volume["persistentVolumeClaim"]["claimName"], gid)
            ro = ro or volume["persistentVolumeClaim"].get("readOnly", False)
        elif "configMap" in volume or "secret" in volume:
            kind = "ConfigMap" if "configMap" in volume else "Secret"
            ref = volume["configMap"] if kind == "ConfigMap" else volume["secret"]
            obj = cluster.find(kind, ref.get("name") or ref.get("secretName"))
            data = obj.get("data", {})
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            source = work / "files" / mount["name"]
            for item in items:
                value = data[item["key"]]
                out = source / item["path"]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(base64.b64decode(value) if kind == "Secret" else value.encode())
                out.chmod(0o644)
            ro = True
        else:
            raise AssertionError(f"volume {mount['name']}: {sorted(volume)} is not emulated")
        if mount.get("subPath"):
            source = source / mount["subPath"]
            source.mkdir(parents=True, exist_ok=True)
        args += ["--volume", f"{source}:{target}:{'ro' if ro else 'rw'}"]
    return args


def container_args(
    pod: dict[str, Any], container: dict[str, Any], meta: dict[str, Any], cluster: Cluster, work: Path
) -> list[str]:
    """``docker run`` arguments for one container of ``pod`` (without ``run`` and the detach flags)."""
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    user = csc.get("runAsUser", psc.get("runAsUser"))
    group = csc.get("runAsGroup", psc.get("runAsGroup"))
    if csc.get("runAsNonRoot", psc.get("runAsNonRoot")):
        assert user not in (None, 0), f"{container['name']}: runAsNonRoot without a non-root runAsUser"
    env = _env(container, meta, cluster)
    if pod.get("automountServiceAccountToken", True) and cluster.sa_files:
        env.update(cluster.api_env)
    args = ["--network", cluster.network, "--label", "crackseg-podspec=1"]
    for alias in cluster.aliases(meta.get("labels", {})):
        args += ["--network-alias", alias]
    if user is not None:
        args += ["--user", f"{user}:{group if group is not None else user}"]
    if psc.get("fsGroup") is not None:
        args += ["--group-add", str(psc["fsGroup"])]
    if csc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for cap in csc.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    if csc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    limits = container.get("resources", {}).get("limits", {})
    if "cpu" in limits:
        args += ["--cpus", str(cpu_cores(limits["cpu"]))]
    if "memory" in limits:
        args += ["--memory", str(memory_bytes(limits["memory"]))]
    args += _volume_args(pod, container, cluster, work)
    if pod.get("automountServiceAccountToken", True) and cluster.sa_files:
        sa = work / "serviceaccount"
        sa.mkdir(parents=True, exist_ok=True)
        for name, text in cluster.sa_files.items():
            (sa / name).write_text(text)
            (sa / name).chmod(0o644)
        args += ["--volume", f"{sa}:{SA_DIR}:ro"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    command = [_expand(c, env) for c in container.get("command", [])]
    rest = [_expand(a, env) for a in container.get("args", [])]
    if command:
        args += ["--entrypoint", command[0]]
        rest = command[1:] + rest
    return [*args, container["image"], *rest]


@dataclass
class Pod:
    name: str
    ids: dict[str, str]

    def address(self, container: str) -> str:
        info = json.loads(docker("inspect", self.ids[container]).stdout)[0]
        return str(next(iter(info["NetworkSettings"]["Networks"].values()))["IPAddress"])

    def logs(self, container: str, tail: int = 80) -> str:
        result = docker("logs", "--tail", str(tail), self.ids[container], check=False)
        return result.stdout + result.stderr


def start_pod(name: str, pod: dict[str, Any], meta: dict[str, Any], cluster: Cluster) -> Pod:
    """Init containers to completion (exit 0 required), then the containers, detached."""
    work = cluster.root / "pods" / name
    work.mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    for init in pod.get("initContainers", []):
        cid = _run(f"{name}-{init['name']}", pod, init, meta, cluster, work)
        code = wait_exit(cid, timeout=600)
        if code != 0:
            logs = docker("logs", "--tail", "60", cid, check=False)
            raise AssertionError(
                f"{name}: init container {init['name']} exited {code}:\n{logs.stdout}{logs.stderr}"
            )
        ids[init["name"]] = cid
    for container in pod["containers"]:
        ids[container["name"]] = _run(f"{name}-{container['name']}", pod, container, meta, cluster, work)
    return Pod(name, ids)


def _run(
    name: str,
    pod: dict[str, Any],
    container: dict[str, Any],
    meta: dict[str, Any],
    cluster: Cluster,
    work: Path,
) -> str:
    cid = docker(
        "run",
        "--detach",
        "--name",
        f"{cluster.network}-{name}",
        *container_args(pod, container, meta, cluster, work),
    ).stdout.strip()
    cluster.containers.append(cid)
    return cid


def wait_exit(cid: str, timeout: float) -> int:
    result = docker("wait", cid, timeout=timeout)
    return int(result.stdout.strip())


def wait_ready(pod: Pod, container: dict[str, Any], timeout: float) -> None:
    """Poll the container's readiness probe until it passes; a container that exits fails at once."""
    probe = container["readinessProbe"]
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", pod.ids[container["name"]]).stdout)[0]["State"]
        if not state["Running"]:
            raise AssertionError(
                f"{pod.name}: {container['name']} exited {state['ExitCode']}:\n{pod.logs(container['name'])}"
            )
        if "httpGet" in probe:
            port = probe["httpGet"]["port"]
            if isinstance(port, str):
                port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
            url = f"http://{pod.address(container['name'])}:{port}{probe['httpGet'].get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds", 1)) as r:
                    if 200 <= r.status < 400:
                        return
            except OSError as e:
                last = str(e)
        else:
            if (
                docker("exec", pod.ids[container["name"]], *probe["exec"]["command"], check=False).returncode
                == 0
            ):
                return
        time.sleep(min(probe.get("periodSeconds", 5), 2))
    raise AssertionError(f"{pod.name}: not ready in {timeout:.0f}s ({last}):\n{pod.logs(container['name'])}")
