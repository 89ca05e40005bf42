"""A small HTTPS stand-in for the Kubernetes API server, for the pods the pod-spec runner starts.

The trigger and the retraining run talk to it through the real ``kubernetes`` client with in-cluster configuration
(service-account token and CA files, ``KUBERNETES_SERVICE_HOST``), exactly as in a cluster. It serves the calls
the Role allows (Jobs: list/create/patch; the predictor Deployment: get/patch) and answers 403 for anything else,
so an RBAC gap shows up as the pod failing. Created Jobs and patched Deployments are handed to callbacks: the
runner runs the Job's pod and rolls the predictor, then reports status back here.
"""

from __future__ import annotations

import copy
import json
import re
import ssl
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.services.retrain.fakekube import merge_patch, strategic_merge

TOKEN = "podspec-runner-token"


def self_signed(directory: Path, ip: str) -> tuple[Path, Path]:
    """A CA-less self-signed certificate for ``ip`` (the client trusts it as its CA bundle)."""
    cert, key = directory / "apiserver.crt", directory / "apiserver.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kubernetes",
         "-addext", f"subjectAltName=IP:{ip}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class FakeApi:
    def __init__(self, namespace: str, deployments: list[dict[str, Any]], rules: list[dict[str, Any]]):
        self.namespace = namespace
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deployments = {d["metadata"]["name"]: copy.deepcopy(d) for d in deployments}
        for d in self.deployments.values():
            d["metadata"].setdefault("generation", 1)
            d["status"] = {
                "observedGeneration": 1,
                "replicas": 1,
                "updatedReplicas": 1,
                "availableReplicas": 1,
            }
        self.rules = (
            rules  # the rendered Roles' rules, union (who may call what is checked per Role in tests)
        )
        self.requests: list[tuple[str, str, int]] = []
        self.on_job: Callable[[dict[str, Any]], None] = lambda job: None
        self.on_deployment_patch: Callable[[dict[str, Any]], None] = lambda dep: None
        self.lock = threading.Lock()

    def allowed(self, group: str, resource: str, verb: str) -> bool:
        return any(
            group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in self.rules
        )

    def handle(self, method: str, url: str, body: Any) -> tuple[int, dict[str, Any]]:
        path, query = urlparse(url).path, parse_qs(urlparse(url).query)
        ns = re.escape(self.namespace)
        m = re.fullmatch(rf"/apis/(batch|apps)/v1/namespaces/{ns}/(jobs|deployments)(?:/([^/]+))?", path)
        if not m:
            return 404, _status(404, f"{path} not served")
        group, resource, name = m.groups()
        verb = {"GET": "get" if name else "list", "POST": "create", "PATCH": "patch"}.get(
            method, method.lower()
        )
        if not self.allowed(group, resource, verb):
            return 403, _status(403, f"{verb} {resource} is not allowed by the Roles")
        with self.lock:
            if resource == "jobs":
                return self._jobs(verb, name, body, query)
            return self._deployments(verb, name, body)

    def _jobs(
        self, verb: str, name: str | None, body: Any, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        if verb == "list":
            wanted = dict(p.split("=", 1) for p in query.get("labelSelector", [""])[0].split(",") if p)
            items = [
                j for j in self.jobs.values()
                if all(j["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
            ]  # fmt: skip
            return 200, {"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": items}
        if verb == "create":
            job_name = body["metadata"]["name"]
            if job_name in self.jobs:
                return 409, _status(409, f'jobs.batch "{job_name}" already exists')
            job = {**body, "status": {"active": 1}}
            job["metadata"]["uid"] = f"uid-{job_name}"
            self.jobs[job_name] = job
            threading.Thread(target=self.on_job, args=(copy.deepcopy(job),), daemon=True).start()
            return 201, job
        if name not in self.jobs:
            return 404, _status(404, f'jobs.batch "{name}" not found')
        if verb == "patch":
            self.jobs[name] = merge_patch(self.jobs[name], body)
        return 200, self.jobs[name]

    def _deployments(self, verb: str, name: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        if name not in self.deployments:
            return 404, _status(404, f'deployments.apps "{name}" not found')
        dep = self.deployments[name]
        if verb == "patch":
            new = strategic_merge(dep, body)
            new["metadata"]["generation"] = dep["metadata"]["generation"] + 1
            self.deployments[name] = new
            threading.Thread(target=self.on_deployment_patch, args=(copy.deepcopy(new),), daemon=True).start()
            return 200, new
        return 200, dep

    def set_job_status(self, name: str, condition: str) -> None:
        with self.lock:
            key = "succeeded" if condition == "Complete" else "failed"
            self.jobs[name]["status"] = {key: 1, "conditions": [{"type": condition, "status": "True"}]}

    def set_rolled_out(self, name: str, generation: int) -> None:
        with self.lock:
            self.deployments[name]["status"] = {
                "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1,
            }  # fmt: skip

    def serve(self, host: str, cert: Path, key: Path) -> tuple[ThreadingHTTPServer, int]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
                if scheme.lower() != "bearer" or token != TOKEN:
                    code, out = 401, _status(401, "Unauthorized")
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length)) if length else None
                    code, out = api.handle(self.command, self.path, body)
                api.requests.append((self.command, self.path, code))
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _reply

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((host, 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, server.server_address[1]


def _status(code: int, message: str) -> dict[str, Any]:
    reason = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists"}.get(code, "")
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
