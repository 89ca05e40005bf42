"""Whole-image inference with overlapping tiles, so any photo size runs in bounded memory.

Images no larger than ``tile_size`` on both sides go through the network in one forward pass (the network pads
to its multiple internally). Larger images are cut into ``tile_size`` squares that overlap by ``overlap`` pixels;
each tile's probabilities are weighted by a smooth window (a raised-cosine ramp over the overlap, flat inside)
and blended, which hides the seams a plain stitch leaves where the network sees a tile border. Peak memory is one
tile's activations plus two ``float32`` H×W accumulators (≈ 96 MB for a 4000×3000 photo).
"""

from __future__ import annotations

import numpy as np
import torch

from ml.checkpoint import LoadedModel

# Pixels at the outer rim of a tile still get a little weight so image borders covered by one tile stay defined.
_MIN_WEIGHT = 1e-3


class Segmenter:
    """Runs a loaded crack-segmentation network on RGB images of any size.

    Args:
        loaded: a model from ``ml.checkpoint.load_model`` (its config supplies normalisation and threshold).
        tile_size: side of the square tiles for large images; images within it run in one pass.
        overlap: pixels shared by neighbouring tiles, blended with a smooth window.
        device: torch device for the forward pass.

    Shapes: ``probabilities((H, W, 3) uint8) → (H, W) float32`` in [0, 1]; ``predict_mask`` → ``(H, W) bool``.
    """

    def __init__(
        self, loaded: LoadedModel, tile_size: int = 1024, overlap: int = 128, device: str = "cpu"
    ) -> None:
        if tile_size < 32:
            raise ValueError(f"tile_size must be at least 32 pixels, got {tile_size}")
        if not 0 <= overlap < tile_size // 2:
            raise ValueError(f"overlap must be in [0, tile_size/2) = [0, {tile_size // 2}), got {overlap}")
        self.loaded = loaded
        self.config = loaded.config
        self.tile_size = tile_size
        self.overlap = overlap
        self.device = torch.device(device)
        self.module = loaded.module.to(self.device).eval().to(memory_format=torch.channels_last)
        self._mean = torch.tensor(self.config.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.config.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    @property
    def threshold(self) -> float:
        return float(self.config.threshold)

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
        with torch.inference_mode():
            if h <= self.tile_size and w <= self.tile_size:
                return self._forward(rgb)
            return self._tiled(rgb)

    def predict_mask(self, rgb: np.ndarray) -> np.ndarray:
        """Binary crack mask at the model's threshold."""
        return self.probabilities(rgb) >= self.threshold

    def _forward(self, rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)  # (H, W, 3) uint8
        x = x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)  # (1, 3, H, W)
        x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        logits = self.module(x)  # (1, 1, H, W)
        return torch.sigmoid(logits)[0, 0].float().cpu().numpy()

    def _tiled(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        th, tw = min(self.tile_size, h), min(self.tile_size, w)
        acc = np.zeros((h, w), dtype=np.float32)
        weight_sum = np.zeros((h, w), dtype=np.float32)
        # An axis that fits in one tile has no neighbour to blend with: no ramp there.
        ramp_h = _ramp(th, self.overlap if h > th else 0)
        ramp_w = _ramp(tw, self.overlap if w > tw else 0)
        window = np.outer(ramp_h, ramp_w)  # (th, tw)
        for y in _starts(h, th, self.overlap):
            for x in _starts(w, tw, self.overlap):
                probs = self._forward(rgb[y : y + th, x : x + tw])
                acc[y : y + th, x : x + tw] += probs * window
                weight_sum[y : y + th, x : x + tw] += window
        return acc / weight_sum


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets along one axis: a regular stride, the last tile flush with the far edge."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(n: int, overlap: int) -> np.ndarray:
    """1-D blending weights: raised-cosine rise over ``overlap`` pixels at each end, 1 in the middle."""
    weights = np.ones(n, dtype=np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        rise = 0.5 - 0.5 * np.cos(np.pi * t)
        weights[:overlap] = rise
        weights[n - overlap :] = rise[::-1]
    return np.maximum(weights, _MIN_WEIGHT)
