"""Device check for a GPU machine: the CUDA path of training and a synthetic-only starter model.

1. Two-epoch tiny trainings on CUDA with bf16 autocast and with fp16 autocast + GradScaler (channels_last,
   cuDNN autotuning); each saved checkpoint must load back on the CPU.
2. The starter recipe (``ml.starter``) with a GPU-sized budget; its checkpoint, history and PR curve are
   written to ``OUT/starter``.

Usage (from the repository root, tracking off so mlflow need not be installed):
    python3 benchmarks/gpu_check.py OUT_DIR [STEPS] [N_IMAGES] [DEVICE]
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from ml.checkpoint import load_model
from ml.data import synthetic
from ml.starter import StarterParams, train_starter
from ml.train import TrainParams, train


def main() -> None:
    out = Path(sys.argv[1])
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    n_images = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    device = sys.argv[4] if len(sys.argv) > 4 else "cuda"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, object] = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    tmp = Path(tempfile.mkdtemp())
    synthetic.generate(8, tmp / "tiny", size=(64, 64), seed=0)
    for dtype in ("bfloat16", "float16"):
        params = TrainParams(
            base_width=4,
            depth=2,
            epochs=2,
            steps_per_epoch=3,
            batch_size=2,
            crop_size=32,
            train_split=None,
            val_fraction=0.25,
            device=device,
            amp_dtype=dtype,
        )
        start = time.perf_counter()
        result = train(params, data_root=tmp / "tiny", out_dir=tmp / f"tiny-{dtype}", tracking_uri="none")
        loaded = load_model(result.model_dir, "cpu")
        info[f"tiny_{dtype}"] = {
            "seconds": round(time.perf_counter() - start, 1),
            "epochs": result.epochs_run,
            "losses": [h["train_loss"] for h in result.history],
            "loads_on_cpu": loaded.config.base_width == 4,
        }
        print(json.dumps(info[f"tiny_{dtype}"]), flush=True)

    start = time.perf_counter()
    params_s = StarterParams(
        steps=steps,
        steps_per_epoch=100,
        base_width=16,
        n_images=n_images,
        batch_size=16,
        num_workers=8 if device == "cuda" else 0,
        device=device,
    )
    summary = train_starter(params_s, out=out / "starter", workdir=tmp / "starter", tracking_uri="none")
    info["starter"] = summary
    info["starter_seconds"] = round(time.perf_counter() - start, 1)
    info["starter_params"] = params_s.model_dump()
    for name in ("history.json", "pr_curve.png"):
        shutil.copy2(tmp / "starter" / "train" / name, out / name)
    (out / "gpu_check.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info, indent=2), flush=True)


if __name__ == "__main__":
    main()
