"""Model checkpoints as ``model.safetensors`` + ``config.json`` (never pickles).

A checkpoint directory holds everything needed to rebuild and run the network: the architecture and its options,
input normalisation, the decision threshold, and lineage (dataset hash, git commit, parent version, metrics).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import nn

from ml.fsutil import atomic_dir, atomic_write_json, sha256_file
from ml.models import create_model

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelConfig(BaseModel):
    """What ``config.json`` holds next to the weights."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    arch: str = "attention_unet"
    in_channels: int = 3
    base_width: int = 16
    depth: int = 4
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    dataset_hash: str | None = None
    git_commit: str | None = None
    parent_version: str | None = None
    version: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    metrics: dict[str, float] = Field(default_factory=dict)
    weights_sha256: str | None = None

    def arch_kwargs(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "base_width": self.base_width, "depth": self.depth}


@dataclass
class LoadedModel:
    module: nn.Module
    config: ModelConfig
    path: Path


def build_model(config: ModelConfig) -> nn.Module:
    return create_model(config.arch, **config.arch_kwargs())


def save_model(model: nn.Module, config: ModelConfig, out_dir: str | os.PathLike[str]) -> Path:
    """Write weights and config into ``out_dir`` atomically (a reader sees the old or the new checkpoint).

    The directory is first built beside ``out_dir`` and renamed over it, so a crash never leaves half a model.
    """
    out = Path(out_dir)
    with atomic_dir(out) as staging:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE))
        config = config.model_copy(update={"weights_sha256": sha256_file(staging / WEIGHTS_FILE)})
        atomic_write_json(staging / CONFIG_FILE, config.model_dump(mode="json"))
    return out


def read_config(model_dir: str | os.PathLike[str]) -> ModelConfig:
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a model directory holds {WEIGHTS_FILE} and {CONFIG_FILE}")
    try:
        return ModelConfig.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError) as e:
        raise ValueError(f"{path} is not a valid crackseg model config: {e}") from e


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
    except RuntimeError as e:
        raise ValueError(f"weights in {weights} do not fit {config.arch} {config.arch_kwargs()}: {e}") from e
    module.to(device).eval()
    return LoadedModel(module=module, config=config, path=model_dir)
