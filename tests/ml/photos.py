"""Real photos for the tests: a DeepCrack training image resized or tiled to a size (skips without datasets)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def datasets_root() -> Path:
    return Path(os.environ.get("CRACKSEG_DATASETS", REPO.parent / "shared" / "datasets"))


def real_photos(count: int) -> list[Path]:
    folder = datasets_root() / "deepcrack" / "train" / "images"
    photos = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if len(photos) < count:
        pytest.skip(f"needs {count} DeepCrack training photos under {folder} ($CRACKSEG_DATASETS)")
    return photos[:count]


def real_photo(width: int, height: int, index: int = 0) -> np.ndarray:
    """``(height, width, 3) uint8``: a real crack photo resized to the size (Lanczos)."""
    from ml.data.imageio import open_image

    img = open_image(real_photos(index + 1)[index]).convert("RGB")
    return np.asarray(img.resize((width, height), Image.Resampling.LANCZOS))
