"""Training experiments for a CUDA machine: the starter model and the CrackForest / DeepCrack baselines.

Usage (from the repo root, on a machine with a GPU)::

    CRACKSEG_DATASETS=../shared/datasets OUT=results python scripts/gpu_experiments.py all

Runs the jobs below concurrently on one GPU (each in its own process), writes each model to ``$OUT/<job>/model``
and every score to ``$OUT/results.json``. Tracking is off (the GPU machine need not reach an MLflow server);
the numbers go into the closing notes and README with the machine named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = Path(os.environ.get("OUT", "results"))
DATASETS = Path(os.environ.get("CRACKSEG_DATASETS", REPO.parent / "shared" / "datasets"))
STEPS = int(os.environ.get("GPU_STEPS", "3000"))
SYN_IMAGES = int(os.environ.get("GPU_SYN_IMAGES", "800"))
WORKERS = int(os.environ.get("GPU_WORKERS", "3"))
DEVICE = os.environ.get("GPU_DEVICE", "cuda")
SPE = int(os.environ.get("GPU_SPE", min(250, STEPS)))
ONLY = [j for j in os.environ.get("GPU_JOBS", "").split(",") if j]

JOBS = {
    # name: (kind, base_width, training data)
    "starter-w8": ("starter", 8, None),
    "starter-w16": ("starter", 16, None),
    "cfd-w8": ("supervised", 8, "crackforest"),
    "cfd-w16": ("supervised", 16, "crackforest"),
    "deepcrack-w8": ("supervised", 8, "deepcrack/train"),
}


def run_job(name: str) -> dict:
    import torch

    from ml.evaluate import evaluate

    kind, width, data = JOBS[name]
    out = OUT / name
    t0 = time.time()
    cfd = DATASETS / "crackforest"
    if kind == "starter":
        from ml.starter import StarterParams, train_starter

        params = StarterParams(
            steps=STEPS,
            steps_per_epoch=SPE,
            base_width=width,
            n_images=SYN_IMAGES,
            batch_size=16,
            device=DEVICE,
            num_workers=WORKERS,
        )
        summary = train_starter(
            params,
            out=out / "model",
            workdir=Path("/tmp/work") / name,
            tracking_uri="none",
            eval_data=cfd,
            eval_split="test",
        )
        result = {"summary": summary}
    else:
        from ml.train import TrainParams, train

        params = TrainParams(
            base_width=width,
            depth=4,
            epochs=STEPS // SPE,
            steps_per_epoch=SPE,
            batch_size=16,
            crop_size=256,
            device=DEVICE,
            num_workers=WORKERS,
            patience=STEPS // SPE,
            train_split="train",
        )
        res = train(params, data_root=DATASETS / data, out_dir=out, tracking_uri="none", register=False)
        result = {"best_val_f1": res.best_val_f1, "epochs": res.epochs_run}
    report = evaluate(out / "model", cfd, split="test", device=DEVICE)
    result.update(
        job=name,
        base_width=width,
        steps=STEPS,
        seconds=round(time.time() - t0, 1),
        gpu=torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu",
        cfd_test={
            k: getattr(report, k)
            for k in ("f1_ods", "threshold_ods", "f1_at_0_5", "ois", "precision", "recall", "iou", "n_images")
        },
    )
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what != "all":
        run_job(what)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    procs = {
        name: subprocess.Popen(
            [sys.executable, __file__, name], stdout=(OUT / f"{name}.log").open("w"), stderr=subprocess.STDOUT
        )
        for name in (ONLY or JOBS)
    }
    results = {}
    for name, proc in procs.items():
        proc.wait()
        path = OUT / name / "result.json"
        results[name] = json.loads(path.read_text()) if path.exists() else {"failed": proc.returncode}
        print(name, json.dumps(results[name].get("cfd_test", results[name])), flush=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
