"""CPU benchmark of the Attention U-Net: latency, parameters, GFLOPs and training throughput.

Latency is the median wall time of a batch-1 fp32 forward pass (``torch.inference_mode``) after warm-up, for the
eager model in the default (NCHW) layout and with ``channels_last`` weights and input. GFLOP counts come from
``torch.utils.flop_counter.FlopCounterMode``, which counts a multiply-add as **2 FLOPs** (so GFLOP = 2 × GMAC);
only convolutions and matrix products are counted (BatchNorm, ReLU, pooling, upsampling and the attention's
elementwise ops are a few percent). The CPU of these machines is shared, so the load average is recorded with
each run: compare numbers only between runs on a quiet machine.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_WIDTHS = (8, 16, 32, 64)
DEFAULT_SIZES = ((320, 480), (384, 544))  # (H, W): CrackForest and DeepCrack image sizes


@dataclass
class LatencyRow:
    """One (width, input size) measurement."""

    base_width: int
    depth: int
    height: int
    width: int
    params_m: float
    gflop: float
    eager_ms: float
    channels_last_ms: float


@dataclass
class TrainRow:
    """Training throughput: forward + backward + AdamW step on random crops."""

    base_width: int
    depth: int
    batch_size: int
    crop_size: int
    images_per_s: float
    step_ms: float


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median_ms(fn: Any, warmup: int, repeats: int, budget_s: float = 30.0) -> float:
    """Median of ``repeats`` timed calls after ``warmup`` calls; slow cases stop early once ``budget_s`` is spent
    (but never with fewer than 3 samples), which keeps width 64 from taking minutes on a busy CPU."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < repeats and (len(times) < min(3, repeats) or spent < budget_s):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        spent += elapsed
        times.append(elapsed * 1000)
    return statistics.median(times)


def count_flops(model: Any, x: Any) -> int:
    """FLOPs of one forward pass (multiply-add = 2 FLOPs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return int(counter.get_total_flops())


def bench_latency(
    base_width: int, height: int, width: int, depth: int = 4, warmup: int = 2, repeats: int = 7
) -> LatencyRow:
    import torch

    from ml.models import create_model

    torch.manual_seed(0)
    model = create_model("attention_unet", base_width=base_width, depth=depth).eval()
    x = torch.rand(1, 3, height, width)
    params = sum(p.numel() for p in model.parameters())
    flops = count_flops(model, x)
    with torch.inference_mode():
        eager = _median_ms(lambda: model(x), warmup, repeats)
        model_cl = model.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        cl = _median_ms(lambda: model_cl(x_cl), warmup, repeats)
    return LatencyRow(
        base_width,
        depth,
        height,
        width,
        round(params / 1e6, 3),
        round(flops / 1e9, 2),
        round(eager, 1),
        round(cl, 1),
    )


def bench_training(
    base_width: int = 16,
    depth: int = 4,
    batch_size: int = 4,
    crop_size: int = 256,
    steps: int = 5,
    warmup: int = 1,
) -> TrainRow:
    import torch

    from ml.losses import SegmentationLoss
    from ml.models import create_model

    torch.manual_seed(0)
    model = create_model("attention_unet", base_width=base_width, depth=depth).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = SegmentationLoss()
    x = torch.rand(batch_size, 3, crop_size, crop_size)
    y = (torch.rand(batch_size, 1, crop_size, crop_size) > 0.97).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()
        optimizer.step()

    ms = _median_ms(step, warmup, steps)
    return TrainRow(
        base_width, depth, batch_size, crop_size, round(batch_size / (ms / 1000), 2), round(ms, 1)
    )


def run_bench(
    widths: Sequence[int] = DEFAULT_WIDTHS,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    threads: int = 2,
    quick: bool = False,
    train_width: int = 16,
    depth: int = 4,
    train_batch: int = 4,
    train_crop: int = 256,
    progress: Any = print,
) -> dict[str, Any]:
    """Measure everything and return the report (see ``write_results``)."""
    import torch

    torch.set_num_threads(threads)
    warmup, repeats = (1, 3) if quick else (2, 7)
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = []
    for w in widths:
        for h, wd in sizes:
            row = bench_latency(w, h, wd, depth=depth, warmup=warmup, repeats=repeats)
            progress(
                f"width {w:>3} {wd}x{h}: eager {row.eager_ms} ms, channels_last {row.channels_last_ms} ms, "
                f"{row.params_m} M params, {row.gflop} GFLOP"
            )
            rows.append(asdict(row))
    train_row = bench_training(train_width, depth, train_batch, train_crop, steps=3 if quick else 5)
    progress(
        f"training width {train_width}: {train_row.images_per_s} images/s (batch {train_row.batch_size} of "
        f"{train_row.crop_size}x{train_row.crop_size})"
    )
    return {
        "host": socket.gethostname(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "quick": quick,
        "warmup": warmup,
        "repeats": repeats,
        "repeat_budget_s": 30.0,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - started, 1),
        "flop_convention": "FLOP = 2 x multiply-add (FlopCounterMode); conv and matmul only",
        "latency": rows,
        "training": [asdict(train_row)],
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark {report['date']} on {report['host']}",
        "",
        f"{report['cpu']} ({report['cpu_count']} cores), {report['threads']} torch threads, torch {report['torch']}, "
        f"batch 1 fp32, median of up to {report['repeats']} runs (at least 3; a case stops after "
        f"{report['repeat_budget_s']:.0f} s) after {report['warmup']} warm-up. "
        f"Load average before/after: {report['loadavg_before'][0]} / {report['loadavg_after'][0]} "
        "(shared CPU: other jobs inflate latencies).",
        "GFLOP counts a multiply-add as 2 FLOPs.",
        "",
        "| base width | input (W×H) | params (M) | GFLOP | eager (ms) | channels_last (ms) |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in report["latency"]:
        lines.append(
            f"| {r['base_width']} | {r['width']}×{r['height']} | {r['params_m']} | {r['gflop']} | "
            f"{r['eager_ms']} | {r['channels_last_ms']} |"
        )
    lines += ["", "| training width | batch × crop | images/s | step (ms) |", "| ---: | --- | ---: | ---: |"]
    for t in report["training"]:
        lines.append(
            f"| {t['base_width']} | {t['batch_size']} × {t['crop_size']}² | {t['images_per_s']} | "
            f"{t['step_ms']} |"
        )
    return "\n".join(lines) + "\n"


def write_results(report: dict[str, Any], results_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``bench-<host>-<date>.json`` and ``latest.md`` in ``results_dir`` (atomic writes)."""
    from ml.fsutil import atomic_write_bytes, atomic_write_json

    out = Path(results_dir)
    stamp = report["date"].replace(":", "").replace("+0000", "Z")
    json_path = out / f"bench-{report['host']}-{stamp}.json"
    atomic_write_json(json_path, report)
    md_path = out / "latest.md"
    atomic_write_bytes(md_path, markdown(report).encode())
    return json_path, md_path
