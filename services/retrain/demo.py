"""``make loop-demo``: the whole local loop outside pytest, with real processes, printing the served version.

Starts an MLflow server and a predictor serving a tiny champion (``models/starter`` when present, else a
seconds-long model trained on synthetic data), sends labelled feedback through ``POST /save-for-retrain``, runs
``crackseg retrain trigger`` (which launches ``crackseg retrain run``), waits for the run, prints the served version
before and after, and stops everything it started. Exit 0 when the predictor ends up on the new version.
Everything lives under ``state/loop-demo/`` (removed at the start of each demo).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(message: str) -> None:
    print(f"[loop-demo] {message}", flush=True)


class Proc:
    """A child in its own process group, stopped by PID."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True
            )

    def wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.log.name}: exited {self.proc.returncode}\n{self.log.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"{url} not ready after {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


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
    from services.retrain.modelstore import export_version

    root = REPO / "state" / "loop-demo"
    shutil.rmtree(root, ignore_errors=True)
    (root / "logs").mkdir(parents=True)
    synthetic.generate(8, root / "base", size=(64, 64), seed=1)
    synthetic.generate(4, root / "eval", size=(64, 64), seed=2)
    synthetic.generate(3, root / "samples", size=(64, 64), seed=3)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": TINY_TRAIN}))
    mlflow_port, predictor_port = free_port(), free_port()
    tracking = f"http://127.0.0.1:{mlflow_port}"
    predictor = f"http://127.0.0.1:{predictor_port}"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
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
        "CRACKSEG_RETRAIN_THRESHOLD": "3",
        "CRACKSEG_EXECUTOR": "local",
        "CRACKSEG_ROLLOUT": "http",
        "CRACKSEG_PREDICTOR_URL": predictor,
        "CRACKSEG_THREADS": "1",
    }
    os.environ.update({k: v for k, v in env.items() if k == "MLFLOW_TRACKING_URI"})
    procs: list[Proc] = []
    try:
        mlflow = Proc(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(root / "mlartifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
            ],
            root / "logs" / "mlflow.log",
            env,
        )
        procs.append(mlflow)
        say(f"starting MLflow at {tracking}")
        mlflow.wait_http(f"{tracking}/health", 180)
        version = champion_model(root, tracking, root / "base")
        served_dir = export_version(Registry(tracking), version, root / "models")
        server = Proc(
            [
                str(BIN / "crackseg"),
                "serve",
                "--model",
                str(served_dir),
                "--port",
                str(predictor_port),
                "--host",
                "127.0.0.1",
            ],
            root / "logs" / "predictor.log",
            env,
        )
        procs.append(server)
        server.wait_http(f"{predictor}/v2/health/ready", 180)
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
        journal = root / "feedback" / "state" / "retrain" / f"{decision['run_name']}.json"
        deadline = time.monotonic() + 600
        status = "running"
        while time.monotonic() < deadline:
            if journal.is_file():
                status = json.loads(journal.read_text())["status"]
                if status in ("promoted", "rejected", "failed"):
                    break
            time.sleep(1)
        say(f"retraining run finished: {status} (log: {root / 'logs' / decision['run_name']}.log)")
        after = ping(predictor)
        say(f"served version AFTER: {after}")
        return 0 if status == "promoted" and after != before else 1
    finally:
        for proc in reversed(procs):
            proc.stop()


if __name__ == "__main__":
    sys.exit(main())
