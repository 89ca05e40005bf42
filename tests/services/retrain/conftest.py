"""Fixtures of the retraining suite: tiny synthetic data, a registered champion, a real predictor process.

Everything is tiny (64×64 images, base width 4, depth 2, a few optimizer steps, one torch thread) so the whole
loop runs in seconds per retrain on this CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers.procs import ManagedProcess, start_predictor

TINY_TRAIN = {
    "base_width": 4,
    "depth": 2,
    "epochs": 1,
    "steps_per_epoch": 2,
    "batch_size": 2,
    "crop_size": 32,
    "train_split": None,
    "val_fraction": 0.25,
    "threads": 1,
    "n_overlays": 0,
    "patience": 5,
    "device": "cpu",
}
# The retraining recipe (ml.finetune) at the same toy scale: two steps of 2×32×32 crops.
TINY_FINETUNE = {
    "batch_size": 2,
    "crop_size": 32,
    "min_steps": 2,
    "max_steps": 2,
    "threads": 1,
    "device": "cpu",
}


@dataclass(frozen=True)
class LoopData:
    base: Path
    eval: Path
    feedback_samples: Path
    params: Path


@dataclass(frozen=True)
class Champion:
    tracking_uri: str
    version: str
    model_dir: Path


@dataclass(frozen=True)
class Predictor:
    url: str
    feedback_dir: Path
    models_dir: Path
    proc: ManagedProcess


@pytest.fixture(scope="session")
def loop_data(tmp_path_factory: pytest.TempPathFactory) -> LoopData:
    """Base (training) set, a fixed evaluation set and feedback samples: three disjoint synthetic sets."""
    from ml.data import synthetic

    root = tmp_path_factory.mktemp("retrain-data")
    synthetic.generate(8, root / "base", size=(64, 64), seed=11)
    synthetic.generate(4, root / "eval", size=(64, 64), seed=12)
    synthetic.generate(8, root / "feedback-samples", size=(64, 64), seed=13)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"train": TINY_TRAIN, "finetune": TINY_FINETUNE}))
    return LoopData(root / "base", root / "eval", root / "feedback-samples", params)


@pytest.fixture(scope="session")
def champion(mlflow_server: str, loop_data: LoopData, tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """A tiny model trained on the base set, registered, aliased ``champion`` (version 1 in a fresh server)."""
    import torch

    from ml.registry import Registry
    from ml.train import TrainParams, train
    from services.retrain.modelstore import export_version

    torch.set_num_threads(1)
    result = train(
        TrainParams(**TINY_TRAIN),
        data_root=loop_data.base,
        out_dir=tmp_path_factory.mktemp("champion-train"),
        tracking_uri=mlflow_server,
        register=True,
        tags={"run_name": "retrain-suite-champion"},
    )
    assert result.registered_version is not None
    registry = Registry(mlflow_server)
    registry.set_champion(result.registered_version)
    registry.set_tags(result.registered_version, {"status": "promoted"})
    exported = export_version(registry, result.registered_version, tmp_path_factory.mktemp("champion-export"))
    return Champion(mlflow_server, result.registered_version, exported)


@pytest.fixture(scope="module")
def predictor(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Predictor]:
    """A real predictor process serving the registry's current champion, with its own feedback and models folders.

    Earlier modules may have promoted other versions, so the current alias is exported and served, not version 1.
    """
    from ml.registry import Registry
    from services.retrain.modelstore import export_version

    state = tmp_path_factory.mktemp("predictor")
    registry = Registry(champion.tracking_uri)
    current = registry.champion()
    assert current is not None
    served_dir = export_version(registry, current.version, state / "models")
    url, proc = start_predictor(
        served_dir,
        state / "predictor.log",
        {
            "CRACKSEG_FEEDBACK_DIR": str(state / "feedback"),
            "CRACKSEG_MODELS_DIR": str(state / "models"),
            "CRACKSEG_MODEL_CACHE_DIR": str(state / "cache"),
            "MLFLOW_TRACKING_URI": champion.tracking_uri,
            "CRACKSEG_RETRAIN_THRESHOLD": "3",
            "CRACKSEG_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        },
    )
    try:
        yield Predictor(url, state / "feedback", state / "models", proc)
    finally:
        proc.stop()


def served_version(url: str) -> str:
    return str(httpx.get(f"{url}/ping", timeout=10).json()["model_version"])


def run_env(
    loop_data: LoopData, champion: Champion, predictor: Predictor, work: Path, **extra: str
) -> dict[str, str]:
    """The environment of ``crackseg retrain run`` for the local loop."""
    return {
        **os.environ,
        "CRACKSEG_FEEDBACK_DIR": str(predictor.feedback_dir),
        "CRACKSEG_MODELS_DIR": str(predictor.models_dir),
        "CRACKSEG_BASE_DATA": str(loop_data.base),
        "CRACKSEG_EVAL_DATA": str(loop_data.eval),
        "CRACKSEG_EVAL_SPLIT": "",
        "CRACKSEG_DVC_REMOTE": str(work / "dvc-storage"),
        "CRACKSEG_RETRAIN_WORK_DIR": str(work / "retrain"),
        "CRACKSEG_RETRAIN_PARAMS": str(loop_data.params),
        "CRACKSEG_RETRAIN_LOG_DIR": str(work / "logs"),
        "CRACKSEG_ROLLOUT": "http",
        "CRACKSEG_PREDICTOR_URL": predictor.url,
        "MLFLOW_TRACKING_URI": champion.tracking_uri,
        "CRACKSEG_RETRAIN_THRESHOLD": "3",
        "OMP_NUM_THREADS": "1",
        **extra,
    }
