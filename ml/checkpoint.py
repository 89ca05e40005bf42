"""Model checkpoints as ``model.safetensors`` + ``config.json`` + ``model.onnx`` (never pickles).

A checkpoint directory holds everything needed to rebuild and run the network: the architecture and its options,
input normalisation, the decision threshold, and lineage (dataset hash, git commit, parent version, metrics).
Every save also exports the ONNX graph, so training, retraining and registration all carry what the torch-free
predictor runs. The config itself lives in ``ml.config`` (readable without torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ml.config import (
    CONFIG_FILE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ONNX_FILE,
    WEIGHTS_FILE,
    ModelConfig,
    read_config,
)
from ml.fsutil import atomic_dir, atomic_write_json, sha256_file
from ml.models import create_model

__all__ = [
    "CONFIG_FILE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ONNX_FILE",
    "WEIGHTS_FILE",
    "LoadedModel",
    "ModelConfig",
    "build_model",
    "load_model",
    "read_config",
    "save_model",
    "sha256_file",
]


@dataclass
class LoadedModel:
    module: nn.Module
    config: ModelConfig
    path: Path


def build_model(config: ModelConfig) -> nn.Module:
    return create_model(config.arch, **config.arch_kwargs())


def save_model(model: nn.Module, config: ModelConfig, out_dir: str | os.PathLike[str]) -> Path:
    """Write weights, ONNX graph and config into ``out_dir`` atomically (a reader sees the old or the new one).

    The directory is first built beside ``out_dir`` and renamed over it, so a crash never leaves half a model.
    """
    from ml.export import write_onnx

    out = Path(out_dir)
    with atomic_dir(out) as staging:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE))
        config = config.model_copy(update={"weights_sha256": sha256_file(staging / WEIGHTS_FILE)})
        config = write_onnx(model, config, staging)
        atomic_write_json(staging / CONFIG_FILE, config.model_dump(mode="json"))
    return out


def load_model(
    model_dir: str | os.PathLike[str], device: str | torch.device = "cpu", verify: bool = True
) -> LoadedModel:
    """Rebuild the network from ``config.json`` and load ``model.safetensors`` into it (eval mode).

    Raises:
        FileNotFoundError: the directory lacks one of the two files.
        ValueError: the config is invalid, the checksum does not match or the weights do not fit the architecture.
    """
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found")
    if verify and config.weights_sha256 and sha256_file(weights) != config.weights_sha256:
        raise ValueError(
            f"{weights} does not match the sha256 recorded in {CONFIG_FILE}: the file is corrupt"
        )
    module = build_model(config)
    try:
        module.load_state_dict(load_file(str(weights), device="cpu"))
    except (RuntimeError, SafetensorError) as e:
        raise ValueError(
            f"weights in {weights} cannot be loaded into {config.arch} {config.arch_kwargs()}: {e}"
        ) from e
    module.to(device).eval()
    return LoadedModel(module=module, config=config, path=model_dir)
