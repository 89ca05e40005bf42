"""Lean serving, measured: ``crackseg[serve]`` in a fresh venv (no torch), its install time and size, and the
predictor's start → ready time and RSS at idle and under load; with ``--image``, the same for the container.

    python benchmarks/lean.py [--venv build/lean-venv] [--reuse] [--image crackseg-predictor:dev]

Writes ``benchmarks/results/lean-<UTC time>.json`` and prints it. ``make test-lean`` builds the venv with this
script and runs the predictor's server tests against it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "services" / "ui" / "samples" / "concrete_single_crack.jpg"


def du_mib(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return round(total / 2**20, 1)


def build_venv(venv: Path, python: str, cold: bool = False) -> float:
    """A fresh venv with ``crackseg[serve]`` from this checkout; returns the ``pip install`` seconds.

    ``cold``: without pip's cache (every wheel downloaded again), as on a machine that never installed it.
    """
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, **({"PIP_NO_CACHE_DIR": "1"} if cold else {})}
    start = time.perf_counter()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{REPO}[serve]"], check=True, env=env)
    return round(time.perf_counter() - start, 1)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} for {pid}")


def wait_ready(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def load(url: str, body: bytes, n: int = 16, concurrency: int = 4) -> int:
    def one(_: int) -> int:
        return httpx.post(f"{url}/predict", files={"file": ("a.jpg", body)}, timeout=300).status_code

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(status == 200 for status in pool.map(one, range(n)))


def measure_process(venv: Path, model: Path) -> dict[str, float | int]:
    sys.path.insert(0, str(REPO))
    from tests.helpers.procs import free_port

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CRACKSEG_FEEDBACK_DIR": tmp, "OMP_WAIT_POLICY": "PASSIVE"}
        cmd = [str(venv / "bin" / "crackseg"), "serve", "--model", str(model), "--port", str(port)]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            ready_s = round(time.perf_counter() - start, 2)
            time.sleep(1.0)
            idle = rss_mib(proc.pid)
            ok = load(url, SAMPLE.read_bytes())
            return {
                "start_to_ready_s": ready_s,
                "idle_rss_mib": idle,
                "peak_rss_mib": rss_mib(proc.pid, "VmHWM"),
                "ok_requests": ok,
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def measure_image(image: str, docker: str) -> dict[str, object]:
    """The predictor image, run and loaded as ``benchmarks/images.py`` does (one start)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from images import SERVERS, measure_server  # type: ignore[import-not-found]

    size = json.loads(
        subprocess.run([docker, "image", "inspect", image], capture_output=True, check=True, text=True).stdout
    )[0]["Size"]
    return {
        "image": image,
        "size_mb": round(size / 1e6, 1),
        **measure_server(docker, image, SERVERS["predictor"], 1, ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--venv", type=Path, default=REPO / "build" / "lean-venv")
    parser.add_argument(
        "--reuse", action="store_true", help="measure an existing venv instead of rebuilding it"
    )
    parser.add_argument("--python", default=getattr(sys, "_base_executable", sys.executable))
    parser.add_argument(
        "--cold", action="store_true", help="install without pip's cache (downloads every wheel)"
    )
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--image", help="also measure this predictor image (needs a Docker engine)")
    parser.add_argument("--docker", default=os.environ.get("DOCKER", "docker"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    result: dict[str, object] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, 1-min load average {os.getloadavg()[0]:.1f}",
    }
    if not args.reuse:
        result["pip_install_serve_s"] = build_venv(args.venv, args.python, cold=args.cold)
        result["pip_cache"] = (
            "none (--cold)" if args.cold else "warm if this machine installed the packages before"
        )
    torch_check = subprocess.run(
        [str(args.venv / "bin" / "python"), "-c", "import torch"], capture_output=True
    )
    if torch_check.returncode == 0:
        raise SystemExit(f"torch is importable in {args.venv}: crackseg[serve] must not pull it in")
    result["venv_mib"] = du_mib(args.venv)
    result["process"] = measure_process(args.venv, args.model)
    if args.image:
        result["container"] = measure_image(args.image, args.docker)
    result["load_average_after"] = round(os.getloadavg()[0], 1)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"lean-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
