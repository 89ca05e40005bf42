"""End-to-end predictor benchmark against a real ``crackseg serve`` process (``make bench-serve``).

Measures, in one run on this machine:
- end-to-end ``POST /predict`` p50/p95 at 544×384, 1920×1080 and 4000×3000 (one request at a time);
- the in-process segmenter time for the same images (same runtime and threads: "forward"), and the overhead
  e2e / forward;
- throughput at concurrency 1/4/16 at 544×384, against 1 / forward; ``/ping`` latency while 16 requests queue;
- the server's peak RSS;
- the seed's way of serving (base-64 Attention U-Net, eager PyTorch fp32, one forward at 544×384) and the speed-up.

Photos are real DeepCrack training photos resized to each size when ``$CRACKSEG_DATASETS`` has them, else synthetic
cracks. Writes ``benchmarks/results/serve-<UTC time>.json`` and ``.md``.

    python benchmarks/serve.py [--model models/default] [--requests 32] [--skip-seed]
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.argv, _ARGV = sys.argv[:1], sys.argv  # KServe (imported below via tests.helpers) parses sys.argv

from ml.bench import cpu_name  # noqa: E402
from tests.helpers.procs import start_predictor  # noqa: E402

SIZES = {"544x384": (544, 384), "1920x1080": (1920, 1080), "4000x3000": (4000, 3000)}
SEQUENTIAL = {"544x384": 24, "1920x1080": 6, "4000x3000": 3}


def photo(width: int, height: int) -> tuple[np.ndarray, str]:
    root = Path(os.environ.get("CRACKSEG_DATASETS", REPO.parent / "shared" / "datasets"))
    photos = sorted((root / "deepcrack" / "train" / "images").glob("*.jpg"))
    if photos:
        img = Image.open(photos[0]).convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
        return np.asarray(img), f"DeepCrack train photo {photos[0].name} resized"
    from ml.data.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(1, Path(tmp), size=(height, width), seed=0)
        img = Image.open(next((Path(tmp) / "images").glob("*.png"))).convert("RGB")
    return np.asarray(img), "synthetic crack image"


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values), q)), 1)


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def forward_ms(model_dir: Path, images: dict[str, np.ndarray], threads: int) -> tuple[dict[str, float], str]:
    from ml.segmenter import open_segmenter

    seg = open_segmenter(model_dir, "auto", threads=threads)
    out = {}
    for name, rgb in images.items():
        out[name] = round(
            statistics.median(timed(lambda rgb=rgb: seg.probabilities(rgb), SEQUENTIAL[name])), 1
        )
    return out, seg.runtime


def seed_forward_ms(threads: int) -> float:
    """The seed's serving path: a base-64 Attention U-Net, eager fp32 PyTorch, one 544×384 forward."""
    import torch

    from ml.models import create_model

    torch.set_num_threads(threads)
    net = create_model("attention_unet", base_width=64, depth=4).eval()
    x = torch.rand(1, 3, 384, 544)
    with torch.inference_mode():
        return round(statistics.median(timed(lambda: net(x), 3)), 1)


def post(c: httpx.Client, body: bytes) -> tuple[float, int]:
    t = time.perf_counter()
    r = c.post("/predict", files={"file": ("a.jpg", body, "image/jpeg")})
    return (time.perf_counter() - t) * 1000, r.status_code


def sequential(url: str, body: bytes, n: int) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=300) as c:
        post(c, body)
        runs = [post(c, body) for _ in range(n)]
    ms = [t for t, status in runs if status == 200]
    return {"requests": len(ms), "failures": n - len(ms), "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95)}


def concurrent(url: str, body: bytes, concurrency: int, n: int) -> dict[str, float]:
    pings: list[float] = []
    stop = threading.Event()

    def worker(k: int) -> list[tuple[float, int]]:
        with httpx.Client(base_url=url, timeout=300) as c:
            return [post(c, body) for _ in range(k)]

    def pinger() -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                t = time.perf_counter()
                c.get("/ping")
                pings.append((time.perf_counter() - t) * 1000)
                time.sleep(0.02)

    per = max(1, n // concurrency)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency + 1) as pool:
        ping = pool.submit(pinger)
        runs = [r for f in [pool.submit(worker, per) for _ in range(concurrency)] for r in f.result()]
        stop.set()
        ping.result()
    wall = time.perf_counter() - start
    ok = [t for t, status in runs if status == 200]
    return {
        "concurrency": concurrency,
        "requests": len(ok),
        "failures": len(runs) - len(ok),
        "throughput_rps": round(len(ok) / wall, 2),
        "p50_ms": pct(ok, 50),
        "p95_ms": pct(ok, 95),
        "ping_p99_ms": pct(pings, 99),
    }


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level (544×384)")
    parser.add_argument("--skip-seed", action="store_true", help="do not measure the base-64 eager forward")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(_ARGV[1:])
    from ml.cpus import usable_cpus

    threads = usable_cpus(int(os.environ.get("CRACKSEG_CPU_LIMIT", "0") or 0))
    images, source = {}, ""
    for name, (w, h) in SIZES.items():
        images[name], source = photo(w, h)
    bodies = {name: jpeg(rgb) for name, rgb in images.items()}
    load_before = os.getloadavg()
    forward, runtime = forward_ms(args.model, images, threads)

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "CRACKSEG_FEEDBACK_DIR": tmp,
            "CRACKSEG_MAX_INFLIGHT": "64",  # measure queueing, not shedding
            "CRACKSEG_MAX_BODY_BYTES": str(64 << 20),
            "OMP_WAIT_POLICY": "PASSIVE",
        }
        url, proc = start_predictor(args.model, Path(tmp) / "server.log", env)
        try:
            e2e = {name: sequential(url, bodies[name], SEQUENTIAL[name]) for name in SIZES}
            levels = [concurrent(url, bodies["544x384"], c, args.requests) for c in (1, 4, 16)]
            rss = peak_rss_mib(proc.pid)
            with httpx.Client(base_url=url) as c:
                served = c.get("/v2/models/crackseg").json()["parameters"]
        finally:
            proc.stop()
    seed = None if args.skip_seed else seed_forward_ms(threads)
    load_after = os.getloadavg()

    small = e2e["544x384"]["p50_ms"]
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, {threads} usable",
        "load_average_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "model": str(args.model),
        "images": source + ", JPEG quality 90",
        "runtime": runtime,
        "server": served,
        "forward_ms": forward,
        "e2e": e2e,
        "overhead_e2e_over_forward": {n: round(e2e[n]["p50_ms"] / forward[n], 2) for n in SIZES},
        "throughput_544x384": levels,
        "throughput_c4_over_one_over_forward": round(
            levels[1]["throughput_rps"] * forward["544x384"] / 1000, 2
        ),
        "server_peak_rss_mib": rss,
        "seed_style_base64_eager_forward_544x384_ms": seed,
        "speedup_vs_seed_style": round(seed / small, 1) if seed else None,
    }
    lines = [
        f"# Predictor benchmark {result['timestamp']}",
        "",
        f"{result['machine']}; runtime {runtime}, {served.get('threads')} threads; {result['images']}. "
        f"1-min load average {load_before[0]:.1f} before, {load_after[0]:.1f} after.",
        "",
        "| image | forward p50 ms | e2e p50 ms | e2e p95 ms | e2e / forward |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for n in SIZES:
        lines.append(
            f"| {n} | {forward[n]} | {e2e[n]['p50_ms']} | {e2e[n]['p95_ms']} | "
            f"{result['overhead_e2e_over_forward'][n]} |"  # type: ignore[index]
        )
    lines += [
        "",
        "| concurrency (544×384) | req/s | p50 ms | p95 ms | /ping p99 ms | failures |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for lv in levels:
        lines.append(
            f"| {lv['concurrency']} | {lv['throughput_rps']} | {lv['p50_ms']} | {lv['p95_ms']} | "
            f"{lv['ping_p99_ms']} | {lv['failures']} |"
        )
    lines += [
        "",
        f"Throughput at concurrency 4 × forward time: {result['throughput_c4_over_one_over_forward']} "
        f"(1.0 = the queue adds nothing). Server peak RSS: {rss} MiB.",
        f"Seed-style forward (base 64, eager fp32, 544×384): {seed} ms → {result['speedup_vs_seed_style']}× "
        "the end-to-end p50 here.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"serve-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {stem}.json, {stem}.md")


if __name__ == "__main__":
    main()
