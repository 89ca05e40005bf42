"""What a model directory holds, readable without torch: file names, ``config.json`` and the receptive field.

The lean predictor (ONNX Runtime, no torch) reads the config through this module; ``ml.checkpoint`` adds the
torch side (building the network, loading the weights).
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ml.fsutil import sha256_file

__all__ = ["ModelConfig", "read_config", "sha256_file"]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ONNX_FILE = "model.onnx"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHITECTURES = ("attention_unet",)


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
    onnx_sha256: str | None = None

    def arch_kwargs(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "base_width": self.base_width, "depth": self.depth}

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (one cell of the deepest pooling level)."""
        return int(2**self.depth)

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the largest input window one output pixel depends on (over grid alignments)."""
        return _window(self)[0]

    @property
    def reach(self) -> int:
        """How far (pixels, either side) an output pixel's input window may extend from it."""
        return _window(self)[1]

    @property
    def min_tile_overlap(self) -> int:
        """The least tile overlap that leaves every stitched pixel at least ``reach`` away from a cut edge."""
        return 2 * self.reach


def _window(config: ModelConfig) -> tuple[int, int]:
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.arch!r}; valid: {', '.join(ARCHITECTURES)}")
    return attention_unet_window(config.depth)


def attention_unet_window(depth: int) -> tuple[int, int]:
    """``(receptive field, reach)`` of ``ml.models.AttentionUNet`` with ``depth`` poolings.

    Walks back from one output pixel through the deepest path (every shallower skip path sees a sub-window of
    it), turning an interval of positions at one level into the interval the layer below reads: a 3×3 conv
    widens it by 1 each side, a 2×2 pool maps cell ``c`` to pixels ``2c, 2c + 1``, bilinear 2× upsampling
    (``align_corners=False``) reads coarse cells ``floor(x / 2 - 1/4)`` and the next. Attention gates and the head
    are 1×1. Pooling makes the window depend on the pixel's position on the ``2**depth`` grid, so every position
    is walked and the widest window and the longest one-sided reach are returned.
    """
    grid = 2**depth
    size = reach = 0
    for p in range(4 * grid, 5 * grid):
        lo = hi = p
        for _ in range(depth):  # decoder levels, finest first
            lo, hi = lo - 3, hi + 3  # DoubleConv + the 3×3 conv after the upsampling
            lo, hi = math.floor(lo / 2 - 0.25), math.floor(hi / 2 - 0.25) + 1  # bilinear upsampling
        for _ in range(depth):  # encoder levels, deepest first
            lo, hi = lo - 2, hi + 2  # DoubleConv
            lo, hi = 2 * lo, 2 * hi + 1  # 2×2 max-pool
        lo, hi = lo - 2, hi + 2  # first DoubleConv
        size, reach = max(size, hi - lo + 1), max(reach, p - lo, hi - p)
    return size, reach


def read_config(model_dir: str | os.PathLike[str]) -> ModelConfig:
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a model directory holds {WEIGHTS_FILE} and {CONFIG_FILE}")
    try:
        return ModelConfig.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path} is not a valid crackseg model config: {e}") from e
