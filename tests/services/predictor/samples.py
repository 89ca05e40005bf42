"""Sample inputs for the predictor tests: a tiny real model and encoded images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_tiny_model(out: Path, version: str | None = None, seed: int = 0) -> Path:
    from ml.checkpoint import ModelConfig, save_model
    from ml.models import create_model

    torch.manual_seed(seed)
    return save_model(
        create_model("attention_unet", base_width=4, depth=2),
        ModelConfig(base_width=4, depth=2, version=version),
        out,
    )


def jpeg_bytes(width: int = 96, height: int = 64, seed: int = 0, **save: object) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, format="JPEG", **save)
    return buf.getvalue()


def png_bytes(array: np.ndarray, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **save)
    return buf.getvalue()
