"""``make loop-demo``: the whole local loop outside pytest, with real processes, printing the served version.

Starts an MLflow server and a predictor serving a tiny champion (``models/starter`` when present, else a
seconds-long model trained on synthetic data), sends labelled feedback through ``POST /save-for-retrain``, runs
``crackseg retrain trigger`` (which launches ``crackseg retrain run``), waits for the run, prints the served version
before and after, and stops everything it started. Exit 0 when the predictor ends up on the new version.
Everything lives under ``state/loop-demo/`` (removed at the start of each demo).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from services.common.procs import BIN, ManagedProcess, NotReadyError, start_mlflow_server, start_predictor

REPO = Path(__file__).resolve().parents[2]
TINY_TRAIN: dict[str, Any] = {
    "base_width": 4,
    "depth": 2,
    "epochs": 1,
    "steps_per_epoch": 3,
    "batch_size": 2,
    "crop_size": 32,
    "train_split": None,
    "val_fraction": 0.25,
    "threads": 1,
    "n_overlays": 0,
    "device": "cpu",
}
# The product's recipe (ml.finetune) at toy scale: the demo shows the loop, not the model.
TINY_FINETUNE: dict[str, Any] = {
    "batch_size": 2,
    "crop_size": 32,
    "min_steps": 3,
    "max_steps": 3,
    "threads": 1,
    "device": "cpu",
}


def say(message: str) -> None:
    print(f"[loop-demo] {message}", flush=True)


def champion_model(root: Path, tracking_uri: str, base: Path) -> str:
    """Register the starter model (or a tiny trained one) as a version, alias it champion; returns the version."""
    from ml.registry import Registry

    registry = Registry(tracking_uri)
    starter = REPO / "models" / "starter"
    if (starter / "config.json").is_file() and (starter / "model.safetensors").is_file():
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment("crackseg")
        with mlflow.start_run(run_name="starter") as run:
            mlflow.log_artifacts(str(starter), artifact_path="model")
        version = registry.register(run.info.run_id, {"status": "promoted", "parent_version": "none"}).version
        say(f"registered models/starter as version {version}")
    else:
        from ml.train import TrainParams, train

        result = train(
            TrainParams(**TINY_TRAIN),
            data_root=base,
            out_dir=root / "champion-train",
            tracking_uri=tracking_uri,
            register=True,
            tags={"run_name": "loop-demo-champion"},
        )
        assert result.registered_version is not None
        version = result.registered_version
        say(f"no models/starter: trained a tiny champion, version {version}")
    registry.set_champion(version)
    return version


def ping(url: str) -> str:
    return str(httpx.get(f"{url}/ping", timeout=10).json()["model_version"])


def main() -> int:
    from ml.data import synthetic
    from ml.registry import Registry
    from services.retrain.executors import LocalSubprocessExecutor, stop_active_run
    from services.retrain.journal import load_journal
    from services.retrain.modelstore import export_version

    root = REPO / "state" / "loop-demo"
    shutil.rmtree(root, ignore_errors=True)
    (root / "logs").mkdir(parents=True)
    synthetic.generate(8, root / "base", size=(64, 64), seed=1)
    synthetic.generate(4, root / "eval", size=(64, 64), seed=2)
    synthetic.generate(3, root / "samples", size=(64, 64), seed=3)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": TINY_TRAIN, "finetune": TINY_FINETUNE}))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CRACKSEG_FEEDBACK_DIR": str(root / "feedback"),
        "CRACKSEG_MODELS_DIR": str(root / "models"),
        "CRACKSEG_MODEL_CACHE_DIR": str(root / "model-cache"),
        "CRACKSEG_BASE_DATA": str(root / "base"),
        "CRACKSEG_EVAL_DATA": str(root / "eval"),
        "CRACKSEG_EVAL_SPLIT": "",
        "CRACKSEG_DVC_REMOTE": str(root / "dvc-storage"),
        "CRACKSEG_RETRAIN_WORK_DIR": str(root / "retrain"),
        "CRACKSEG_RETRAIN_PARAMS": str(root / "params.yaml"),
        "CRACKSEG_RETRAIN_LOG_DIR": str(root / "logs"),
        # A two-step fine-tune on toy data has a noisy F1; the demo shows the loop, so the gate is permissive.
        "CRACKSEG_RETRAIN_TOLERANCE": "1.0",
        "CRACKSEG_RETRAIN_MIN_GAIN": "-1",
        "CRACKSEG_RETRAIN_THRESHOLD": "3",
        "CRACKSEG_RETRAIN_RETRY_WAIT_S": "2",
        "CRACKSEG_EXECUTOR": "local",
        "CRACKSEG_ROLLOUT": "http",
        "CRACKSEG_THREADS": "1",
    }
    procs: list[ManagedProcess] = []
    journal_dir = root / "feedback" / "state" / "retrain"
    try:
        say("starting MLflow")
        tracking, mlflow = start_mlflow_server(root / "mlflow", root / "logs" / "mlflow.log")
        procs.append(mlflow)
        env["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"] = tracking
        version = champion_model(root, tracking, root / "base")
        served_dir = export_version(Registry(tracking), version, root / "models")
        predictor, server = start_predictor(served_dir, root / "logs" / "predictor.log", env)
        procs.append(server)
        env["CRACKSEG_PREDICTOR_URL"] = predictor
        before = ping(predictor)
        say(f"served version BEFORE: {before}")
        for i in range(3):
            r = httpx.post(
                f"{predictor}/save-for-retrain",
                files={
                    "file": (
                        f"{i}.png",
                        (root / "samples" / "images" / f"synth_{i:05d}.png").read_bytes(),
                        "image/png",
                    ),
                    "mask": (
                        "mask.png",
                        (root / "samples" / "masks" / f"synth_{i:05d}.png").read_bytes(),
                        "image/png",
                    ),
                },
                data={"verdict": "missed_cracks"},
                timeout=30,
            )
            r.raise_for_status()
        say(
            f"sent 3 labelled feedback items; stats: {httpx.get(f'{predictor}/v1/feedback/stats').json()['labelled_since_watermark']} since the watermark"
        )
        trigger = subprocess.run(
            [str(BIN / "crackseg"), "retrain", "trigger"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        decision = json.loads(
            [line for line in trigger.stderr.splitlines() if "trigger_decision" in line][-1]
        )
        say(f"trigger: {decision['action']} ({decision['reason']}) run {decision['run_name']}")
        if decision["reason"] != "launched":
            return 1
        executor = LocalSubprocessExecutor(journal_dir, [], root / "logs")
        try:  # the run (retries included) is over when it lets go of the run lock; MLflow must stay up meanwhile
            mlflow.wait_until("the retraining run", lambda: not executor.active_runs(), 600, poll_s=1.0)
        except NotReadyError as e:
            say(str(e))
        journal = load_journal(journal_dir, decision["run_name"])
        status = journal.status if journal else "unknown"
        say(f"retraining run finished: {status} (log: {root / 'logs' / decision['run_name']}.log)")
        after = ping(predictor)
        say(f"served version AFTER: {after}")
        return 0 if status == "promoted" and after != before else 1
    finally:
        stop_active_run(journal_dir)
        for proc in reversed(procs):
            proc.stop()


if __name__ == "__main__":
    sys.exit(main())
