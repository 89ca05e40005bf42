"""Segmenters: one interface, two runtimes (ONNX Runtime by default, PyTorch when asked or on a GPU).

Both share validation, tiling and thresholding (``TiledSegmenter`` with ``ml.tiling``); a runtime only supplies
the forward pass on a normalised, aligned batch. This module imports neither torch nor onnxruntime: each runtime
is imported when it is chosen, so the lean predictor (``crackseg[serve]``) runs without torch.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ml.config import ONNX_FILE, ModelConfig, read_config
from ml.tiling import round_up, tiled_probabilities

Runtime = Literal["auto", "onnx", "torch"]
RUNTIMES: tuple[str, ...] = ("auto", "onnx", "torch")
DEFAULT_TILE_SIZE = 1024


class RuntimeUnavailable(RuntimeError):
    """The requested runtime's package is not installed (the message names the extra that brings it)."""


class TiledSegmenter(ABC):
    """Runs a crack-segmentation network on RGB images of any size.

    Args:
        config: the model's ``config.json`` (normalisation, threshold, depth → grid and receptive field).
        tile_size: largest tile side; images whose padded sides fit run in one pass. A multiple of ``2**depth``.
        overlap: pixels shared by neighbouring tiles; at least ``config.min_tile_overlap`` (twice the receptive
            field's reach; the default rounds it up to the grid), so tiling never changes a probability.
        batch_size: tiles per forward pass.

    Shapes: ``probabilities((H, W, 3) uint8) → (H, W) float32`` in [0, 1]; ``predict_mask`` → ``(H, W) bool``.
    """

    runtime: str = ""
    device: str = "cpu"

    def __init__(
        self,
        config: ModelConfig,
        *,
        tile_size: int = DEFAULT_TILE_SIZE,
        overlap: int | None = None,
        batch_size: int = 1,
        threads: int = 1,
    ) -> None:
        grid, field, least = config.multiple, config.receptive_field, config.min_tile_overlap
        if overlap is None:
            overlap = round_up(least, grid)
        if tile_size < 2 * grid or tile_size % grid:
            raise ValueError(
                f"tile_size must be a multiple of {grid} (2**depth) and at least {2 * grid}, got {tile_size}"
            )
        if overlap < least:
            raise ValueError(
                f"tile overlap {overlap} is too small for this model (receptive field {field} px, reaching "
                f"{config.reach} px either side): tiles would change the result near their seams; use at least "
                f"{least} or leave it unset"
            )
        if tile_size - overlap < grid:
            raise ValueError(
                f"tile overlap {overlap} leaves no stride in {tile_size}-pixel tiles; use tile_size ≥ "
                f"{overlap + grid} (or a smaller overlap, ≥ {field})"
            )
        if batch_size < 1 or threads < 1:
            raise ValueError(f"batch_size and threads must be ≥ 1, got {batch_size} and {threads}")
        self.config = config
        self.tile_size = tile_size
        self.overlap = overlap
        self.batch_size = batch_size
        self.threads = threads

    @property
    def threshold(self) -> float:
        return float(self.config.threshold)

    @abstractmethod
    def forward(self, pixels: np.ndarray) -> np.ndarray:
        """``(N, 3, h, w) float32`` normalised, h and w multiples of ``2**depth`` → ``(N, h, w) float32``."""

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """Crack probability per pixel for an ``(H, W, 3) uint8`` RGB image."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}; "
                "decode images with ml.data.imageio.read_image"
            )
        h, w = rgb.shape[:2]
        if h < 2 or w < 2:
            raise ValueError(f"image must be at least 2×2 pixels, got {w}×{h}")
        return tiled_probabilities(
            rgb,
            self.forward,
            multiple=self.config.multiple,
            mean=self.config.mean,
            std=self.config.std,
            tile_size=self.tile_size,
            overlap=self.overlap,
            batch_size=self.batch_size,
        )

    def predict_mask(self, rgb: np.ndarray) -> np.ndarray:
        """Binary crack mask at the model's threshold."""
        return self.probabilities(rgb) >= self.threshold

    def describe(self) -> dict[str, Any]:
        """What serves: runtime, device, threads and tiling (for metadata endpoints and benchmarks)."""
        return {
            "runtime": self.runtime,
            "device": self.device,
            "threads": self.threads,
            "tile_size": self.tile_size,
            "tile_overlap": self.overlap,
            "tile_batch": self.batch_size,
            "receptive_field": self.config.receptive_field,
        }


def open_segmenter(
    model_dir: str | os.PathLike[str],
    runtime: Runtime | str = "auto",
    *,
    threads: int = 1,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int | None = None,
    batch_size: int = 1,
) -> TiledSegmenter:
    """Load ``model_dir`` on a runtime.

    ``auto``: PyTorch on CUDA when torch is installed and a GPU is present; otherwise ONNX Runtime when the
    directory has ``model.onnx``; otherwise PyTorch on the CPU when it is installed.

    Raises:
        FileNotFoundError / ValueError: the directory lacks a file or holds a bad one (the message names it).
        RuntimeUnavailable: the runtime's package is missing (the message names the extra to install).
    """
    model_dir = Path(model_dir)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    config = read_config(model_dir)
    options: dict[str, Any] = {
        "threads": threads,
        "tile_size": tile_size,
        "overlap": overlap,
        "batch_size": batch_size,
    }
    if runtime == "auto":
        runtime = _auto_runtime(model_dir)
    if runtime == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            raise RuntimeUnavailable("the ONNX runtime needs onnxruntime: pip install 'crackseg[serve]'")
        from ml.onnx_runtime import OnnxSegmenter

        return OnnxSegmenter(config, model_dir / ONNX_FILE, **options)
    if importlib.util.find_spec("torch") is None:
        raise RuntimeUnavailable(
            f"the torch runtime needs PyTorch, which is not installed: pip install 'crackseg[train]' "
            f"(or serve {model_dir / ONNX_FILE} with the onnx runtime)"
        )
    from ml.checkpoint import load_model
    from ml.inference import Segmenter, best_device

    device = best_device()
    return Segmenter(load_model(model_dir, device=device), device=device, **options)


def _auto_runtime(model_dir: Path) -> str:
    has_torch = importlib.util.find_spec("torch") is not None
    # Checked without importing torch (seconds, hundreds of MB): only a machine with an NVIDIA device asks it.
    if has_torch and os.path.exists("/dev/nvidiactl"):
        from ml.inference import best_device

        if best_device() == "cuda":
            return "torch"
    if (model_dir / ONNX_FILE).is_file() and importlib.util.find_spec("onnxruntime") is not None:
        return "onnx"
    if has_torch:
        return "torch"
    raise FileNotFoundError(
        f"{model_dir / ONNX_FILE} not found and PyTorch is not installed: export the model with "
        f"`crackseg export-onnx {model_dir}` (needs crackseg[train]), or install crackseg[train]"
    )
