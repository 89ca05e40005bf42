"""The real server process (``crackseg serve``) on a free loopback port: every endpoint over the wire, a real V2
client (tritonclient), the hot swap under concurrent load, the hostile corpus, schemathesis and promtool."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.procs import REPO, ManagedProcess, free_port, start_predictor
from tests.services.predictor.corpus import hostile_cases
from tests.services.predictor.samples import jpeg_bytes, make_tiny_model

pytestmark = pytest.mark.integration
TOKEN = "integration-token"
MAX_BODY, MAX_SIDE = 5_000_000, 4000


@dataclass
class Server:
    url: str
    grpc_port: int
    proc: ManagedProcess
    models_dir: Path
    feedback_dir: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


def _model_source(tmp: Path) -> Path:
    """The starter model when the repository has it (the API behaves the same with a tiny random model)."""
    starter = REPO / "models" / "starter"
    if (starter / "config.json").is_file() and (starter / "model.safetensors").is_file():
        return starter
    return make_tiny_model(tmp / "served")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("predictor")
    source = _model_source(tmp)
    # Version 2 for the swap: another copy of the served weights under $CRACKSEG_MODELS_DIR/v2.
    shutil.copytree(source, tmp / "models" / "v2")
    grpc_port = free_port()
    env = {
        "CRACKSEG_GRPC_PORT": str(grpc_port),
        "CRACKSEG_FEEDBACK_DIR": str(tmp / "feedback"),
        "CRACKSEG_MODELS_DIR": str(tmp / "models"),
        "CRACKSEG_MODEL_CACHE_DIR": str(tmp / "cache"),
        "CRACKSEG_MODEL_VERSION": "1",
        "CRACKSEG_API_TOKEN": TOKEN,
        "CRACKSEG_THREADS": "1",
        "CRACKSEG_MAX_INFLIGHT": "8",
        "CRACKSEG_MAX_BODY_BYTES": str(MAX_BODY),
        "CRACKSEG_MAX_SIDE": str(MAX_SIDE),
        "CRACKSEG_MAX_PIXELS": "1000000",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    url, proc = start_predictor(source, tmp / "server.log", env)
    try:
        yield Server(
            url=url, grpc_port=grpc_port, proc=proc, models_dir=tmp / "models", feedback_dir=tmp / "feedback"
        )
    finally:
        proc.stop()


def test_every_endpoint_over_the_wire(server: Server) -> None:
    jpg = jpeg_bytes(480, 320)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get("/ping").json() == {
            "status": "ok",
            "ready": True,
            "model_version": "1",
            "runtime": "onnx",
            "threads": 1,
        }
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/models/crackseg").json()["versions"] == ["1"]
        assert c.get("/v2/models/crackseg/ready").json()["ready"] is True
        body = c.post("/predict", files={"file": ("a.jpg", jpg)}).json()
        assert (body["width"], body["height"]) == (480, 320)
        assert (
            c.post("/predict?format=png", files={"file": ("a.jpg", jpg)}).headers["content-type"]
            == "image/png"
        )
        assert (
            c.post("/predict?format=overlay", files={"file": ("a.jpg", jpg)}).headers["content-type"]
            == "image/jpeg"
        )
        v1 = c.post(
            "/v1/models/crackseg:predict", json={"instances": [{"b64": base64.b64encode(jpg).decode()}]}
        )
        assert v1.status_code == 200 and v1.json()["predictions"][0]["width"] == 480
        assert c.post("/save-for-retrain", files={"file": ("a.jpg", jpg)}).status_code == 401
        saved = c.post(
            "/save-for-retrain",
            files={"file": ("a.jpg", jpg)},
            data={"verdict": "correct"},
            headers=server.auth,
        )
        assert saved.status_code == 200 and saved.json()["labelled"] is True
        assert (server.feedback_dir / "records" / f"{saved.json()['id']}.json").is_file()
        assert c.get("/v1/feedback/stats").json()["total"] >= 1


@pytest.mark.parametrize("binary", [False, True], ids=["json-base64", "binary-data"])
def test_v2_with_tritonclient(server: Server, binary: bool) -> None:
    import tritonclient.http as triton

    jpg = jpeg_bytes(120, 80, seed=3)
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready("crackseg")
    assert client.get_model_metadata("crackseg")["versions"] == ["1"]
    element = jpg if binary else base64.b64encode(jpg)
    inp = triton.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([element], dtype=object), binary_data=binary)
    outputs = [
        triton.InferRequestedOutput("mask", binary_data=binary),
        triton.InferRequestedOutput("statistics"),
    ]
    result = client.infer("crackseg", inputs=[inp], outputs=outputs)
    mask = result.as_numpy("mask")
    assert mask.shape == (1, 80, 120) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    stats = json.loads(result.as_numpy("statistics")[0])
    assert 0.0 <= stats["crack_ratio"] <= 1.0
    client.close()


_GRPC_CLIENT = """
import sys, numpy as np, tritonclient.grpc as triton_grpc
client = triton_grpc.InferenceServerClient(sys.argv[1])
assert client.is_model_ready("crackseg")
inp = triton_grpc.InferInput("image", [1], "BYTES")
inp.set_data_from_numpy(np.array([sys.stdin.buffer.read()], dtype=object))
print(client.infer("crackseg", inputs=[inp]).as_numpy("mask").shape)
"""


def test_v2_grpc_when_asked(server: Server) -> None:
    # In a child process: tritonclient.grpc and KServe register the same protobuf names, which one process
    # cannot hold twice.
    out = subprocess.run(
        [sys.executable, "-c", _GRPC_CLIENT, f"127.0.0.1:{server.grpc_port}"],
        input=jpeg_bytes(64, 48, seed=4),
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == "(1, 48, 64)"


def test_hot_swap_under_load_has_zero_failures(server: Server) -> None:
    jpg = jpeg_bytes(160, 120, seed=5)
    stop = threading.Event()
    failures: list[str] = []
    versions: set[str] = set()
    lock = threading.Lock()
    answered = [0]  # predictions answered so far, by all loops

    def wait_for_answers(more: int, timeout: float = 120) -> None:
        """Block until ``more`` further predictions were answered (traffic really flows across the swap)."""
        with lock:
            target = answered[0] + more
        deadline = time.monotonic() + timeout
        while True:
            with lock:
                if answered[0] >= target:
                    return
            assert time.monotonic() < deadline, f"only {answered[0]} of {target} predictions answered"
            time.sleep(0.02)

    def predict_loop() -> int:
        n = 0
        with httpx.Client(base_url=server.url, timeout=60) as c:
            while not stop.is_set():
                r = c.post("/predict", files={"file": ("a.jpg", jpg)})
                with lock:
                    if r.status_code != 200:
                        failures.append(f"predict {r.status_code}: {r.text[:200]}")
                    else:
                        versions.add(r.json()["model_version"])
                    answered[0] += 1
                n += 1
        return n

    def ready_loop() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                r = c.get("/v2/health/ready")
                if r.status_code != 200:
                    with lock:
                        failures.append(f"ready {r.status_code}")
                time.sleep(0.02)

    with ThreadPoolExecutor(max_workers=5) as pool:
        workers = [pool.submit(predict_loop) for _ in range(4)]
        pool.submit(ready_loop)
        wait_for_answers(4)
        with httpx.Client(base_url=server.url, timeout=120, headers=server.auth) as c:
            for version in ("2", None, "2"):
                body = {"version": version} if version else {}
                r = c.post("/v2/repository/models/crackseg/load", json=body)
                assert r.status_code == 200, r.text
                wait_for_answers(4)
        stop.set()
        counts = [w.result() for w in workers]
    assert failures == []
    assert sum(counts) >= 8
    assert versions == {"1", "2"}
    assert httpx.get(f"{server.url}/ping").json()["model_version"] == "2"


def test_hostile_corpus_over_the_wire(server: Server) -> None:
    before = sorted(p.name for p in server.feedback_dir.rglob("*") if p.is_file())
    with httpx.Client(base_url=server.url, timeout=60, headers=server.auth) as c:
        for case in hostile_cases(MAX_BODY, MAX_SIDE):
            if "pixels" in case.id:
                continue  # the pixel limit differs from the in-process settings; covered there
            r = c.request(
                case.method,
                case.path,
                files=case.files,
                data=case.data,
                content=case.content,
                headers=case.headers,
            )
            assert 400 <= r.status_code < 500, (case.id, r.status_code, r.text)
            assert set(r.json()) == {"error"}, case.id
    after = sorted(p.name for p in server.feedback_dir.rglob("*") if p.is_file())
    assert after == before
    assert server.proc.proc.poll() is None
    assert httpx.get(f"{server.url}/ping").json()["ready"] is True


def test_schemathesis_finds_no_server_errors(server: Server) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    schema.config.update(base_url=server.url)
    errors: list[str] = []
    n_operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        n_operations += 1

        @hsettings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy())
        def run(case) -> None:  # type: ignore[no-untyped-def]
            # Feedback uploads get the token so their validation is exercised; the model load stays locked
            # (random loads would only be refused, and without the token they are refused earlier).
            headers = server.auth if case.path == "/save-for-retrain" else None
            response = case.call(timeout=60, headers=headers)
            if response.status_code >= 500:
                errors.append(
                    f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:200]}"
                )

        run()
    assert n_operations >= 15
    assert errors == []
    assert server.proc.proc.poll() is None


def test_promtool_accepts_a_real_scrape(server: Server) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install -y prometheus)")
    httpx.post(f"{server.url}/predict", files={"file": ("a.jpg", jpeg_bytes())}, timeout=60)
    scrape = httpx.get(f"{server.url}/metrics").text
    for name in (
        "crackseg_model_info",
        "crackseg_inference_seconds",
        "http_requests_total",
        "request_predict_seconds",
    ):
        assert name in scrape
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=scrape, capture_output=True, text=True, timeout=60
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
