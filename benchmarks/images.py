"""The four images, measured: size, ``docker save`` (what ``kind load`` ships), start → ready, memory idle and loaded.

    python benchmarks/images.py [--tag dev] [--runs 3] [--kind-cluster NAME]

Each server image runs as its pod does (read-only root filesystem, its non-root user, tmpfs for /tmp and a volume
where the chart mounts one, its own default command); start → ready is from ``docker run`` to the first 200 of
its readiness endpoint, the median of ``--runs`` starts. Memory is the container's (``docker stats``: RSS plus
page cache of the cgroup) one second after ready, and again after a load: 16 predictions of a real photo at
concurrency 4 (predictor), three browser sessions that upload and analyse the photo through a predictor container
on a private Docker network (UI), 40 experiment and registry searches (MLflow). The trainer is a
Job, not a server: its "start → ready" is the time to import the training stack (``import torch, ml.train``) and
its memory the peak RSS of that process. The UI's load needs Chromium (``/usr/bin/chromium``) and Playwright.

``kind load docker-image`` is ``docker save`` piped into the node's ``ctr import``; without a kind cluster the
``docker save`` half is measured (seconds and tar size); with ``--kind-cluster`` the whole ``kind load`` is.
Writes ``benchmarks/results/images-<UTC time>.json`` and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "services" / "ui" / "samples" / "concrete_single_crack.jpg"
sys.path.insert(0, str(REPO))

from ml.bench import cpu_name  # noqa: E402
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.helpers.procs import free_port  # noqa: E402


@dataclass(frozen=True)
class Server:
    port: int  # inside the container
    ready: str  # readiness path
    args: tuple[str, ...] = ()  # extra docker run arguments (volumes)
    load: Callable[[str], int] | None = None  # sends the load, returns how many answers were 200
    load_means: str = ""
    needs_predictor: bool = False  # the UI's load analyses photos through a predictor container beside it


def _predict_load(url: str) -> int:
    body = SAMPLE.read_bytes()

    def one(_: int) -> int:
        return httpx.post(f"{url}/predict", files={"file": ("a.jpg", body)}, timeout=300).status_code

    with ThreadPoolExecutor(4) as pool:
        return sum(s == 200 for s in pool.map(one, range(16)))


def _ui_load(url: str) -> int:
    """Three browser sessions, one after another, each uploading the photo and analysing it (the page runs in the
    container, and calls the predictor); counts the sessions that showed the result."""
    from playwright.sync_api import expect, sync_playwright

    ok = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1400, "height": 1900})
                page.goto(url)
                page.locator("input[type=file]").first.set_input_files(str(SAMPLE))
                page.get_by_role("button", name="Analyse").click()
                expect(page.get_by_text("Download mask (PNG)")).to_be_visible(timeout=120_000)
                ok += 1
                page.close()
        finally:
            browser.close()
    return ok


def _mlflow_load(url: str) -> int:
    ok = 0
    for _ in range(20):
        ok += httpx.post(
            f"{url}/api/2.0/mlflow/experiments/search", json={"max_results": 10}, timeout=30
        ).is_success
        ok += httpx.get(
            f"{url}/api/2.0/mlflow/registered-models/search", params={"max_results": 10}, timeout=30
        ).is_success
    return ok


SERVERS = {
    "predictor": Server(
        8000,
        "/v2/health/ready",
        load=_predict_load,
        load_means="16 predictions of a 544x384 photo, concurrency 4",
    ),
    "ui": Server(
        8500,
        "/_stcore/health",
        load=_ui_load,
        load_means="3 Chromium sessions, each uploading and analysing the photo through a predictor container",
        needs_predictor=True,
    ),
    "mlflow": Server(
        5000,
        "/health",
        args=("--tmpfs", "/mlflow:rw,uid=10001,gid=10001"),
        load=_mlflow_load,
        load_means="20 experiment and 20 registered-model searches",
    ),
}


def _docker(docker: str, *args: str, check: bool = True) -> str:
    return subprocess.run([docker, *args], capture_output=True, check=check, text=True).stdout.strip()


def _mem(docker: str, cid: str) -> str:
    return _docker(docker, "stats", "--no-stream", "--format", "{{.MemUsage}}", cid).split("/")[0].strip()


def _wait(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout} s")


@contextmanager
def _predictor_beside(docker: str, tag: str) -> Iterator[tuple[str, ...]]:
    """A predictor container on a private network; yields the docker run arguments that reach it."""
    network = f"crackseg-bench-{os.getpid()}"
    _docker(docker, "network", "create", network)
    name = f"{network}-predictor"
    try:
        _docker(
            docker,
            "run",
            "--detach",
            "--name",
            name,
            "--network",
            network,
            "--read-only",
            "--tmpfs",
            "/tmp:rw,size=512m,uid=10001,gid=10001",
            f"crackseg-predictor:{tag}",
        )
        yield ("--network", network, "--env", f"CRACKSEG_PREDICTOR_URL=http://{name}:8000")
    finally:
        _docker(docker, "rm", "--force", name, check=False)
        _docker(docker, "network", "rm", network, check=False)


def measure_server(docker: str, image: str, server: Server, runs: int, tag: str) -> dict[str, object]:
    with contextlib.ExitStack() as stack:
        extra: tuple[str, ...] = ()
        if server.needs_predictor:
            extra = stack.enter_context(_predictor_beside(docker, tag))
        return _measure_server(docker, image, replace(server, args=server.args + extra), runs)


def _measure_server(docker: str, image: str, server: Server, runs: int) -> dict[str, object]:
    starts: list[float] = []
    result: dict[str, object] = {}
    for run in range(runs):
        port = free_port()
        start = time.perf_counter()
        cid = _docker(
            docker,
            "run",
            "--detach",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,size=512m,uid=10001,gid=10001",
            *server.args,
            "--publish",
            f"127.0.0.1:{port}:{server.port}",
            image,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(url + server.ready)
            starts.append(time.perf_counter() - start)
            if run == runs - 1:
                time.sleep(1.0)
                result["idle_mem"] = _mem(docker, cid)
                if server.load is not None:
                    result["load"] = server.load_means
                    result["load_ok"] = server.load(url)
                    result["loaded_mem"] = _mem(docker, cid)
        finally:
            _docker(docker, "rm", "--force", cid, check=False)
    result["start_to_ready_s"] = round(statistics.median(starts), 2)
    result["start_to_ready_runs_s"] = [round(s, 2) for s in starts]
    return result


def measure_trainer(docker: str, image: str, runs: int) -> dict[str, object]:
    script = (
        "import resource, time; t = time.perf_counter(); import torch, ml.train; "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    times, peaks = [], []
    for _ in range(runs):
        start = time.perf_counter()
        out = _docker(
            docker,
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,size=512m,uid=10001,gid=10001",
            "--entrypoint",
            "python3",
            image,
            "-c",
            script,
        )
        times.append(time.perf_counter() - start)
        peaks.append(int(out.split()[-1]) / 1024)
    return {
        "start_to_ready_s": round(statistics.median(times), 2),
        "start_to_ready_runs_s": [round(t, 2) for t in times],
        "ready_means": "the container ran `import torch, ml.train` and exited",
        "peak_rss_mib": round(max(peaks), 1),
    }


def measure_save(docker: str, image: str, cluster: str | None) -> dict[str, object]:
    if cluster:
        start = time.perf_counter()
        subprocess.run(["kind", "load", "docker-image", image, "--name", cluster], check=True)
        return {"kind_load_s": round(time.perf_counter() - start, 1)}
    with tempfile.TemporaryDirectory(dir=REPO / "build") as tmp:
        tar = Path(tmp) / "image.tar"
        start = time.perf_counter()
        subprocess.run([docker, "save", "--output", str(tar), image], check=True)
        seconds = time.perf_counter() - start
        return {"docker_save_s": round(seconds, 1), "tar_mb": round(tar.stat().st_size / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tag", default=os.environ.get("IMAGE_TAG", "dev"))
    parser.add_argument("--images", nargs="+", default=["predictor", "ui", "mlflow", "trainer"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kind-cluster", help="measure `kind load docker-image` into this cluster")
    parser.add_argument("--docker", default=os.environ.get("DOCKER", "docker"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    (REPO / "build").mkdir(exist_ok=True)
    result: dict[str, object] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, {platform.system()}",
        "load_average_before": round(os.getloadavg()[0], 1),
        "images": {},
    }
    images: dict[str, dict[str, object]] = {}
    for name in args.images:
        image = f"crackseg-{name}:{args.tag}"
        size = json.loads(_docker(args.docker, "image", "inspect", image))[0]["Size"]
        entry: dict[str, object] = {"image": image, "size_mb": round(size / 1e6, 1)}
        entry.update(measure_save(args.docker, image, args.kind_cluster))
        if name == "trainer":
            entry.update(measure_trainer(args.docker, image, args.runs))
        else:
            entry.update(measure_server(args.docker, image, SERVERS[name], args.runs, args.tag))
        images[name] = entry
        print(json.dumps({name: entry}), flush=True)
    result["images"] = images
    result["load_average_after"] = round(os.getloadavg()[0], 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"images-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(table(result))
    print(table(result))
    print(f"written: {stem}.json, {stem}.md")


def table(result: dict[str, object]) -> str:
    images = result["images"]
    assert isinstance(images, dict)
    lines = [
        f"Images measured {result['timestamp']} on {result['machine']} "
        f"(load average {result['load_average_before']} → {result['load_average_after']}).",
        "",
        "| image | size MB | docker save s (tar MB) | start → ready s (median) | memory idle | memory loaded |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, e in images.items():
        save = (
            f"kind load {e['kind_load_s']}" if "kind_load_s" in e else f"{e['docker_save_s']} ({e['tar_mb']})"
        )
        idle = e.get("idle_mem", f"peak RSS {e.get('peak_rss_mib')} MiB")
        lines.append(
            f"| {name} | {e['size_mb']} | {save} | {e['start_to_ready_s']} | {idle} | {e.get('loaded_mem', '—')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
