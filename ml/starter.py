"""The starter model: a small Attention U-Net trained only on procedurally generated cracks (clean licence).

``crackseg starter-model`` generates the synthetic set once into a work folder, trains for a budget of optimizer
steps (CPU or CUDA, whichever ``--device`` picks), copies the best checkpoint to ``models/starter`` and, given
``--eval-data``, reports its zero-shot scores on a real dataset and records them in the checkpoint's metrics.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StarterParams(BaseModel):
    """The starter recipe; ``steps`` is the compute budget."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(500, ge=1)
    steps_per_epoch: int = Field(100, ge=1)
    base_width: int = Field(8, ge=1)
    depth: int = Field(4, ge=1, le=6)
    n_images: int = Field(320, ge=4)
    height: int = Field(320, ge=32)
    width: int = Field(480, ge=32)
    batch_size: int = Field(16, ge=1)
    crop_size: int = Field(256, ge=16)
    lr: float = Field(1e-3, gt=0)
    pos_weight: float = Field(10.0, gt=0)
    seed: int = 0
    device: str = "auto"
    num_workers: int = Field(0, ge=0)


def _write_samples(args: tuple[int, list[int], int, int, str]) -> None:
    from ml.data import synthetic
    from ml.data.imageio import encode_png
    from ml.fsutil import atomic_write_bytes

    seed, indices, height, width, out = args
    for index in indices:
        image, mask = synthetic.synthesize(synthetic.sample_seed(seed, index), (height, width))
        # Same names as ml.data.synthetic.generate, so a parallel set equals a sequential one.
        atomic_write_bytes(Path(out) / "images" / f"synth_{index:05d}.png", encode_png(image))
        atomic_write_bytes(Path(out) / "masks" / f"synth_{index:05d}.png", encode_png(mask))


def synthetic_set(params: StarterParams, workdir: Path, processes: int | None = None) -> Path:
    """Generate (once) the synthetic dataset for ``params`` under ``workdir``; reused when complete.

    Samples are independent (sample ``i`` depends only on ``(seed, i)``), so they are drawn in ``processes``
    worker processes (default: the CPU count, at most 16).
    """
    from concurrent.futures import ProcessPoolExecutor

    from ml.fsutil import atomic_dir

    name = f"synthetic-n{params.n_images}-{params.height}x{params.width}-s{params.seed}"
    root = workdir / name
    if (root / ".complete").is_file():
        return root
    procs = max(1, min(processes or os.cpu_count() or 1, 16, params.n_images))
    chunks = [list(range(i, params.n_images, procs)) for i in range(procs)]
    with atomic_dir(root) as staging:
        jobs = [(params.seed, c, params.height, params.width, str(staging)) for c in chunks]
        if procs == 1:
            _write_samples(jobs[0])
        else:
            import multiprocessing

            # spawn, not fork: the parent may already run torch's thread pools.
            with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(_write_samples, jobs))
        (staging / ".complete").write_text("")
    return root


def train_starter(
    params: StarterParams,
    *,
    out: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    tracking_uri: str | None = "none",
    eval_data: str | os.PathLike[str] | None = None,
    eval_split: str | None = "test",
) -> dict[str, Any]:
    """Train on synthetic data only, write the checkpoint to ``out``; returns a summary (and zero-shot scores)."""
    from ml.checkpoint import read_config
    from ml.fsutil import atomic_dir, atomic_write_json
    from ml.tracking import resolve_tracking_uri
    from ml.train import TrainParams, train

    work = Path(workdir)
    data = synthetic_set(params, work)
    spe = min(params.steps_per_epoch, params.steps)
    epochs = math.ceil(params.steps / spe)
    tp = TrainParams(
        base_width=params.base_width,
        depth=params.depth,
        epochs=epochs,
        steps_per_epoch=spe,
        batch_size=params.batch_size,
        crop_size=params.crop_size,
        lr=params.lr,
        pos_weight=params.pos_weight,
        seed=params.seed,
        device=params.device,
        num_workers=params.num_workers,
        train_split=None,
        val_fraction=0.1,
        patience=epochs,  # a fixed budget: keep the best epoch, never stop early
    )
    uri = resolve_tracking_uri(tracking_uri)
    result = train(
        tp,
        data_root=data,
        out_dir=work / "train",
        tracking_uri=tracking_uri,
        register=uri is not None,
        tags={"run_name": "starter", "training_data": "synthetic"},
    )
    target = Path(out)
    with atomic_dir(target) as staging:
        shutil.copytree(result.model_dir, staging, dirs_exist_ok=True)

    summary: dict[str, Any] = {
        "model_dir": str(target),
        "steps": epochs * spe,
        "best_val_f1_synthetic": round(result.best_val_f1, 4),
        "threshold": result.threshold,
        "registered_version": result.registered_version,
    }
    if eval_data is not None:
        from ml.evaluate import evaluate

        report = evaluate(target, eval_data, split=eval_split)
        name = Path(eval_data).name or "data"
        zero_shot = {
            f"zero_shot_{name}_{eval_split or 'all'}_f1_ods": report.f1_ods,
            f"zero_shot_{name}_{eval_split or 'all'}_f1_at_0_5": report.f1_at_0_5,
            f"zero_shot_{name}_{eval_split or 'all'}_f1_at_model_threshold": report.model_threshold["f1"],
        }
        config = read_config(target)
        # Only the metrics change: the weights and their checksum stay as saved.
        atomic_write_json(
            target / "config.json",
            config.model_copy(update={"metrics": {**config.metrics, **zero_shot}}).model_dump(mode="json"),
        )
        summary["zero_shot"] = {
            "data": str(eval_data),
            "split": eval_split,
            "f1_ods": report.f1_ods,
            "threshold_ods": report.threshold_ods,
            "f1_at_0_5": report.f1_at_0_5,
            "f1_at_model_threshold": report.model_threshold["f1"],
            "ois": report.ois,
        }
    atomic_write_json(work / "summary.json", json.loads(json.dumps(summary)))
    return summary
