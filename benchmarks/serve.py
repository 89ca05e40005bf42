"""End-to-end predictor benchmark: a real ``crackseg serve`` process, a 480×320 JPEG, concurrency 1/4/8.

Reports p50/p99 latency and throughput per concurrency next to the bare model forward time measured in this
process with the same thread count, plus ``/ping`` latency while the server is saturated. Writes
``benchmarks/results/serve-<UTC time>.json`` and ``.md``.

    python benchmarks/serve.py [--model models/starter] [--requests 24] [--threads 1] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.argv, _ARGV = sys.argv[:1], sys.argv  # KServe (imported below via tests.helpers) parses sys.argv

from tests.helpers.procs import start_predictor  # noqa: E402


def sample_jpeg() -> bytes:
    from ml.data.synthetic import generate  # the team's synthetic crack generator, when present

    with tempfile.TemporaryDirectory() as tmp:
        generate(1, Path(tmp), size=(320, 480), seed=0)
        img = Image.open(next((Path(tmp) / "images").glob("*.png"))).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def fallback_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (320, 480, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def bare_forward_ms(model_dir: Path, jpeg: bytes, threads: int, repeats: int = 15) -> float:
    import torch

    from ml.checkpoint import load_model
    from ml.data.imageio import read_image
    from ml.inference import Segmenter

    torch.set_num_threads(threads)
    seg = Segmenter(load_model(model_dir))
    rgb = read_image(jpeg)
    for _ in range(3):
        seg.probabilities(rgb)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        seg.probabilities(rgb)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _calibrate_threshold(model_dir: Path, jpeg: bytes, quantile: float) -> None:
    """Give a random model a threshold at which its mask covers a realistic share of the image."""
    from ml.checkpoint import load_model, save_model
    from ml.data.imageio import read_image
    from ml.inference import Segmenter

    loaded = load_model(model_dir)
    probs = Segmenter(loaded).probabilities(read_image(jpeg))
    threshold = float(np.clip(np.quantile(probs, quantile), 1e-4, 1 - 1e-4))
    save_model(loaded.module, loaded.config.model_copy(update={"threshold": threshold}), model_dir)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def run_level(url: str, jpeg: bytes, concurrency: int, n: int, ping: bool) -> dict[str, float]:
    latencies: list[float] = []
    server_ms: list[float] = []
    pings: list[float] = []
    failures = 0
    stop = threading.Event()
    lock = threading.Lock()

    def worker(k: int) -> None:
        nonlocal failures
        with httpx.Client(base_url=url, timeout=120) as c:
            for _ in range(k):
                t = time.perf_counter()
                r = c.post("/predict", files={"file": ("a.jpg", jpeg, "image/jpeg")})
                dt = (time.perf_counter() - t) * 1000
                with lock:
                    if r.status_code == 200:
                        latencies.append(dt)
                        server_ms.append(float(r.json()["inference_ms"]))
                    else:
                        failures += 1

    def pinger() -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                t = time.perf_counter()
                c.get("/ping")
                pings.append((time.perf_counter() - t) * 1000)
                time.sleep(0.05)

    per_worker = max(1, n // concurrency)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency + 1) as pool:
        ping_future = pool.submit(pinger) if ping else None
        futures = [pool.submit(worker, per_worker) for _ in range(concurrency)]
        for f in futures:
            f.result()
        stop.set()
        if ping_future:
            ping_future.result()
    wall = time.perf_counter() - start
    result = {
        "concurrency": concurrency,
        "requests": len(latencies),
        "failures": failures,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "throughput_rps": round(len(latencies) / wall, 2),
        "server_forward_p50_ms": round(percentile(server_ms, 50), 1),
    }
    if pings:
        result.update(
            ping_p50_ms=round(percentile(pings, 50), 1),
            ping_p99_ms=round(percentile(pings, 99), 1),
            ping_max_ms=round(max(pings), 1),
            ping_samples=len(pings),
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO / "models" / "starter")
    parser.add_argument("--requests", type=int, default=24, help="requests per concurrency level")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (server and bare forward)")
    parser.add_argument("--workers", type=int, default=2, help="server's max concurrent inferences")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(_ARGV[1:])
    model_dir: Path = args.model
    note = ""
    if not (model_dir / "config.json").is_file():
        from ml.checkpoint import ModelConfig, save_model
        from ml.models import create_model

        model_dir = Path(tempfile.mkdtemp()) / "bench-model"
        net = create_model("attention_unet", base_width=8, depth=4)
        save_model(net, ModelConfig(base_width=8, depth=4), model_dir)
        note = (
            f"{args.model} not found: a random base-8 depth-4 model was used (the same compute as a trained one), "
            "its threshold set to mark ~3 % of pixels as crack, the share real cracks cover"
        )
    try:
        jpeg = sample_jpeg()
    except Exception:  # the synthetic generator is optional here
        jpeg = fallback_jpeg()
    if note:
        _calibrate_threshold(model_dir, jpeg, quantile=0.97)
    load_before = os.getloadavg()[0]
    forward = bare_forward_ms(model_dir, jpeg, args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "CRACKSEG_FEEDBACK_DIR": tmp,
            "CRACKSEG_THREADS": str(args.threads),
            "CRACKSEG_MAX_CONCURRENT_INFERENCES": str(args.workers),
            "OMP_WAIT_POLICY": "PASSIVE",
        }
        url, proc = start_predictor(model_dir, Path(tmp) / "server.log", env)
        try:
            run_level(url, jpeg, 1, 4, ping=False)  # warm-up
            levels = [run_level(url, jpeg, c, args.requests, ping=(c == 8)) for c in (1, 4, 8)]
        finally:
            proc.stop()

    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": str(args.model),
        "note": note,
        "image": "480x320 JPEG",
        "threads": args.threads,
        "server_workers": args.workers,
        "cpu_count": os.cpu_count(),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "bare_forward_ms": round(forward, 1),
        "levels": levels,
        "p50_over_forward_at_c1": round(levels[0]["p50_ms"] / forward, 2),
    }
    lines = [
        f"Predictor end-to-end, 480×320 JPEG, {args.threads} torch thread(s), {args.workers} server inference "
        f"worker(s), {os.cpu_count()} CPUs (shared machine; 1-min load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after). Bare forward: **{forward:.1f} ms**. {note}",
        "",
        "| concurrency | requests | p50 ms | p99 ms | throughput req/s | p50 / forward | forward in server p50 ms "
        "| /ping p50 / p99 / max ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in levels:
        ping = (
            f"{lv['ping_p50_ms']} / {lv['ping_p99_ms']} / {lv['ping_max_ms']}" if "ping_p50_ms" in lv else "–"
        )
        lines.append(
            f"| {lv['concurrency']} | {lv['requests']} | {lv['p50_ms']} | {lv['p99_ms']} | "
            f"{lv['throughput_rps']} | {lv['p50_ms'] / forward:.2f} | {lv['server_forward_p50_ms']} | {ping} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"serve-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {stem}.json, {stem}.md")


if __name__ == "__main__":
    main()
