"""``crackseg loop bench``: does one retrain on users' corrected photos make the served model better on their photos?

It runs the real local loop, as ``make up`` would: an MLflow server; a predictor process serving the champion;
every feedback photo sent with its corrected mask through ``POST /save-for-retrain``; ``crackseg retrain trigger``
(threshold = the number of photos), which launches ``crackseg retrain run`` with the recipe the product ships
(``services/up/retrain-params.yaml``): snapshot, fine-tune, gate, register, export, promote, roll. Around it, the
champion before and the model served after are evaluated on ``--eval`` and ``--base-eval`` with ``crackseg eval``'s
own function (``ml.evaluate.evaluate``; its JSON is what ``crackseg eval --out`` writes).

Data the run needs besides the feedback: ``--base-train`` (replayed during fine-tuning) and ``--base-eval`` (the
gate's fixed base set). Without them a seeded synthetic set stands in for each (licence-clean, like the starter's
training data). Everything lives under ``--work`` (default ``state/loop-bench``, emptied first); every process the
bench starts is stopped by its PID before it returns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
PRODUCT_PARAMS = REPO / "services" / "up" / "retrain-params.yaml"
TERMINAL = ("promoted", "rejected", "failed")


class BenchInputError(ValueError):
    """Bad input to the bench (exit 2): the message names the folder or file."""


def say(message: str) -> None:
    print(f"[loop-bench] {message}", flush=True)


def check_folder(path: Path, option: str) -> list[Any]:
    """The pairs of a flat ``images/`` + ``masks/`` folder, every file decoded and checked; else BenchInputError."""
    from ml.data.datasets import DatasetIntegrityError, check_integrity, discover

    if not path.is_dir():
        raise BenchInputError(f"{option} {path}: not a folder")
    for sub in ("images", "masks"):
        if not (path / sub).is_dir():
            raise BenchInputError(
                f"{option} {path}: no {sub}/ folder (a flat images/ + masks/ folder is expected)"
            )
    try:
        pairs = discover(path, None)
    except ValueError as e:
        raise BenchInputError(f"{option} {path}: {e}") from e
    if not pairs:
        raise BenchInputError(f"{option} {path}: no image/mask pairs in images/ and masks/")
    try:
        check_integrity(pairs)
    except DatasetIntegrityError as e:
        raise BenchInputError(f"{option} {path}: {e}") from e
    return pairs


def default_champion() -> Path:
    """``models/default`` when it exists, else ``models/starter``."""
    for name in ("default", "starter"):
        if (REPO / "models" / name / "config.json").is_file():
            return REPO / "models" / name
    raise BenchInputError("no --champion given and neither models/default nor models/starter exists")


@dataclass(frozen=True)
class BenchConfig:
    feedback: Path
    eval: Path
    out: Path
    base_eval: Path | None = None
    base_train: Path | None = None
    champion: Path | None = None
    work: Path = REPO / "state" / "loop-bench"
    params: Path = PRODUCT_PARAMS
    seed: int | None = None
    timeout_s: float = 3600.0


def _params_file(cfg: BenchConfig, work: Path) -> Path:
    """The product's params with the retrain seed overridden (when ``--seed`` is given)."""
    if cfg.seed is None:
        return cfg.params
    raw = yaml.safe_load(cfg.params.read_text()) or {}
    raw.setdefault("finetune", {})["seed"] = cfg.seed
    raw.setdefault("train", {})["seed"] = cfg.seed
    path = work / "retrain-params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _synthetic(folder: Path, n: int, seed: int) -> Path:
    from ml.data import synthetic

    synthetic.generate(n, folder, size=(320, 480), seed=seed)
    return folder


def _register_champion(tracking: str, model_dir: Path) -> str:
    """Register ``model_dir`` as a version of ``crackseg`` (with its validation metrics), alias it champion."""
    import mlflow

    from ml.checkpoint import read_config
    from ml.registry import Registry

    config = read_config(model_dir)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment("crackseg-loop-bench")
    with mlflow.start_run(run_name="bench-champion") as run:
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        if config.metrics:
            mlflow.log_metrics(config.metrics)
    registry = Registry(tracking)
    tags = {"status": "promoted", "parent_version": "none", "source": str(model_dir)}
    tags.update({k: f"{v:.4f}" for k, v in config.metrics.items()})
    version = registry.register(run.info.run_id, tags).version
    registry.set_champion(version)
    return version


def _send_feedback(url: str, pairs: list[Any]) -> None:
    for pair in pairs:
        r = httpx.post(
            f"{url}/save-for-retrain",
            files={
                "file": (pair.image.name, pair.image.read_bytes(), "application/octet-stream"),
                "mask": ("mask.png", pair.mask.read_bytes(), "image/png"),
            },
            data={"verdict": "missed_cracks"},
            timeout=120,
        )
        if r.status_code != 200:
            raise RuntimeError(f"POST /save-for-retrain {pair.image}: HTTP {r.status_code} {r.text[:300]}")


def _evaluate(model_dir: Path, folder: Path) -> dict[str, Any]:
    from ml.evaluate import evaluate

    result: dict[str, Any] = evaluate(model_dir, folder, None).to_dict()
    return result


def _trigger(env: dict[str, str], bin_dir: Path) -> str:
    done = subprocess.run(
        [str(bin_dir / "crackseg"), "retrain", "trigger"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if '"trigger_decision"' in line]
    if not lines or lines[-1].get("reason") != "launched":
        raise RuntimeError(f"the trigger launched no run (exit {done.returncode}): {done.stderr[-2000:]}")
    return str(lines[-1]["run_name"])


def _wait_run(journal: Path, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if journal.is_file():
            data: dict[str, Any] = json.loads(journal.read_text())
            if data.get("status") in TERMINAL:
                return data
        time.sleep(2)
    raise TimeoutError(f"the retraining run did not finish within {timeout_s:.0f}s ({journal})")


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Run the loop once and return the report (also written to ``cfg.out``)."""
    import sys

    from ml.fsutil import atomic_write_json
    from ml.registry import Registry
    from services.common.procs import ManagedProcess, start_mlflow_server, start_predictor
    from services.retrain.modelstore import export_version

    feedback_pairs = check_folder(cfg.feedback, "--feedback")
    check_folder(cfg.eval, "--eval")
    if cfg.base_eval is not None:
        check_folder(cfg.base_eval, "--base-eval")
    if cfg.base_train is not None:
        check_folder(cfg.base_train, "--base-train")
    champion_dir = cfg.champion or default_champion()
    if not (champion_dir / "config.json").is_file():
        raise BenchInputError(f"--champion {champion_dir}: no config.json (a model folder is expected)")
    if not cfg.params.is_file():
        raise BenchInputError(f"--params {cfg.params}: not a file")

    work = cfg.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    base_train = cfg.base_train or _synthetic(work / "synthetic-base-train", 48, seed=101)
    base_eval = cfg.base_eval or _synthetic(work / "synthetic-base-eval", 16, seed=102)
    bin_dir = Path(sys.executable).parent
    procs: list[ManagedProcess] = []
    try:
        tracking, mlflow_proc = start_mlflow_server(work / "mlflow", work / "logs" / "mlflow.log")
        procs.append(mlflow_proc)
        say(f"MLflow at {tracking}")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "OMP_WAIT_POLICY": "PASSIVE",
            "MLFLOW_TRACKING_URI": tracking,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "CRACKSEG_FEEDBACK_DIR": str(work / "feedback"),
            "CRACKSEG_MODELS_DIR": str(work / "models"),
            "CRACKSEG_MODEL_CACHE_DIR": str(work / "model-cache"),
            "CRACKSEG_BASE_DATA": str(Path(base_train).resolve()),
            "CRACKSEG_EVAL_DATA": str(Path(base_eval).resolve()),
            "CRACKSEG_EVAL_SPLIT": "",
            "CRACKSEG_DVC_REMOTE": str(work / "dvc-storage"),
            "CRACKSEG_RETRAIN_WORK_DIR": str(work / "retrain"),
            "CRACKSEG_RETRAIN_PARAMS": str(_params_file(cfg, work).resolve()),
            "CRACKSEG_RETRAIN_LOG_DIR": str(work / "logs"),
            "CRACKSEG_RETRAIN_THRESHOLD": str(len(feedback_pairs)),
            "CRACKSEG_EXECUTOR": "local",
            "CRACKSEG_ROLLOUT": "http",
            "CRACKSEG_THREADS": "1",
        }
        os.environ["MLFLOW_TRACKING_URI"] = tracking
        version_before = _register_champion(tracking, champion_dir)
        registry = Registry(tracking)
        served = export_version(registry, version_before, work / "models")
        url, predictor_proc = start_predictor(served, work / "logs" / "predictor.log", env, timeout=300)
        procs.append(predictor_proc)
        env["CRACKSEG_PREDICTOR_URL"] = url
        say(f"predictor at {url} serving version {version_before} ({champion_dir})")

        say("evaluating the champion (before)")
        before = {"eval": _evaluate(served, cfg.eval), "base_eval": _evaluate(served, Path(base_eval))}
        say(f"sending {len(feedback_pairs)} corrected photos through POST /save-for-retrain")
        _send_feedback(url, feedback_pairs)
        run_name = _trigger(env, bin_dir)
        say(f"retraining run {run_name} launched (log: {work / 'logs' / run_name}.log)")
        journal = _wait_run(work / "feedback" / "state" / "retrain" / f"{run_name}.json", cfg.timeout_s)
        if journal["status"] == "failed":
            raise RuntimeError(f"the retraining run failed: {journal.get('last_error')}")
        version_after = str(httpx.get(f"{url}/ping", timeout=30).json()["model_version"])
        served_after = export_version(registry, version_after, work / "models")
        say(f"run {journal['status']}; evaluating the served version {version_after} (after)")
        after = {
            "eval": _evaluate(served_after, cfg.eval),
            "base_eval": _evaluate(served_after, Path(base_eval)),
        }
    finally:
        for proc in reversed(procs):
            proc.stop()

    started = _parse_ts(journal["started_at"])
    finished = _parse_ts(journal["finished_at"])
    report = {
        "promoted": journal["status"] == "promoted",
        "version_before": version_before,
        "version_after": version_after,
        "n_feedback": len(feedback_pairs),
        "retrain_seconds": round(finished - started, 1),
        "gate": gate_summary(journal),
        "before": before,
        "after": after,
    }
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg.out, report)
    return report


def _parse_ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def gate_summary(journal: dict[str, Any]) -> dict[str, Any]:
    """The gate's decision and numbers from the run journal: promote, reason, and both models' metrics."""
    return {
        "promote": journal.get("promote"),
        "reason": journal.get("reason"),
        "run": journal.get("run_name"),
        "challenger": journal.get("challenger_metrics", {}),
        "champion": journal.get("champion_metrics", {}),
    }


def table(report: dict[str, Any]) -> str:
    """The before/after table printed at the end."""
    rows = [
        f"loop bench: {report['n_feedback']} feedback photos, retrain {report['retrain_seconds']:.0f}s, "
        f"version {report['version_before']} -> {report['version_after']} "
        f"({'promoted' if report['promoted'] else 'not promoted'}: {report['gate']['reason']})",
        f"  {'set':<10} {'metric':<18} {'before':>8} {'after':>8} {'delta':>8}",
    ]
    for split in ("eval", "base_eval"):
        b, a = report["before"][split], report["after"][split]
        for name, key in (("P1 (F1 ODS)", "f1_ods"), ("F1 @ served thr", None), ("OIS", "ois")):
            vb = b["model_threshold"]["f1"] if key is None else b[key]
            va = a["model_threshold"]["f1"] if key is None else a[key]
            rows.append(f"  {split:<10} {name:<18} {vb:>8.4f} {va:>8.4f} {va - vb:>+8.4f}")
    return "\n".join(rows)
