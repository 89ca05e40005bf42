"""Benchmark plumbing on a tiny network: FLOP convention, report files and table."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ml import bench


def test_flops_count_a_multiply_add_as_two() -> None:
    conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # 8 output channels × 10×10 positions × 3×3×3 taps = 21 600 multiply-adds
    assert bench.count_flops(conv, torch.rand(1, 3, 10, 10)) == 2 * 21_600


def test_run_bench_writes_json_and_markdown(tmp_path: Path) -> None:
    lines: list[str] = []
    report = bench.run_bench(
        widths=[4],
        sizes=[(32, 48)],
        threads=1,
        quick=True,
        train_width=4,
        depth=2,
        train_batch=2,
        train_crop=32,
        progress=lines.append,
    )
    (row,) = report["latency"]
    assert (row["base_width"], row["height"], row["width"]) == (4, 32, 48)
    assert row["eager_ms"] > 0 and row["channels_last_ms"] > 0 and row["gflop"] > 0
    model = __import__("ml.models", fromlist=["create_model"]).create_model(
        "attention_unet", base_width=4, depth=2
    )
    assert row["params_m"] == round(sum(p.numel() for p in model.parameters()) / 1e6, 3)
    assert report["training"][0]["images_per_s"] > 0
    assert report["threads"] == 1 and len(lines) == 2

    json_path, md_path = bench.write_results(report, tmp_path)
    assert json_path.name.startswith(f"bench-{report['host']}-") and json_path.suffix == ".json"
    assert json.loads(json_path.read_text())["latency"] == report["latency"]
    table = md_path.read_text()
    assert md_path.name == "latest.md"
    assert f"| 4 | 48×32 | {row['params_m']} | {row['gflop']} |" in table
