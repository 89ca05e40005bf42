"""Tiled inference shared by every runtime (numpy only): pad, cut into tiles, run in batches, stitch exactly.

A fully convolutional network's output pixel depends only on a window of input pixels (its receptive field,
``ModelConfig.receptive_field``) — provided the pooling grid is the same. So:

- the image is padded once to a multiple of ``2**depth`` (reflection, exactly as ``AttentionUNet.forward`` pads),
  and every tile starts on that grid: each tile sees the pooling cells the whole image would;
- neighbouring tiles overlap by at least the receptive field, and each pixel is taken from the one tile whose
  *core* holds it (cores meet in the middle of each overlap, ≥ half the receptive field from any cut edge):
  no pixel is ever computed from a cut border, so the stitched result equals a single whole-image pass up to
  floating-point noise, and no blending weights or accumulators are needed;
- tiles are streamed in batches of equal shape: peak memory is one batch, plus the padded input and the output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# (N, 3, h, w) float32 normalised → (N, h, w) float32 probabilities
Forward = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class AxisTile:
    start: int  # first pixel of the tile (a multiple of the grid)
    core_lo: int  # the pixels this tile answers for: [core_lo, core_hi)
    core_hi: int


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def pad_to_multiple(rgb: np.ndarray, multiple: int) -> np.ndarray:
    """``(H, W, 3)`` → ``(Hp, Wp, 3)`` with Hp, Wp multiples of ``multiple``, reflected at the bottom/right.

    Same rule as the network's own padding: reflection when the pad is smaller than the side, else edge copy.
    """
    h, w = rgb.shape[:2]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not (pad_h or pad_w):
        return rgb
    pad = ((0, pad_h), (0, pad_w), (0, 0))
    if pad_h < h and pad_w < w:
        return np.pad(rgb, pad, mode="reflect")
    return np.pad(rgb, pad, mode="edge")


def axis_tiles(length: int, tile: int, overlap: int, multiple: int) -> tuple[int, list[AxisTile]]:
    """Tile side and tiles along one axis of a padded image (``length`` and ``tile`` multiples of ``multiple``).

    As few tiles as ``tile`` allows, spread evenly (so a 1088-pixel side becomes two 688-pixel tiles, not two of
    1024): neighbours overlap by ≥ ``overlap``, starts lie on the grid, cores split each overlap in the middle.
    """
    if length <= tile:
        return length, [AxisTile(0, 0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    side = min(tile, round_up(math.ceil((length + (count - 1) * overlap) / count), multiple))
    while (side - overlap) // multiple * multiple < multiple and side < tile:
        side += multiple
    stride = (side - overlap) // multiple * multiple
    starts = [0]
    while starts[-1] + side < length:
        starts.append(min(starts[-1] + stride, length - side))
    tiles = []
    for i, start in enumerate(starts):
        lo = 0 if i == 0 else (start + starts[i - 1] + side) // 2
        hi = length if i == len(starts) - 1 else (starts[i + 1] + start + side) // 2
        tiles.append(AxisTile(start, lo, hi))
    return side, tiles


def normalise(batch: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(N, h, w, 3) uint8`` → ``(N, 3, h, w) float32``: ``(x / 255 - mean) / std`` per channel."""
    std_ = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    scale = np.float32(1.0 / 255.0) / std_
    shift = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1) / std_
    x = batch.transpose(0, 3, 1, 2).astype(np.float32)
    x *= scale
    x -= shift
    return np.ascontiguousarray(x)


def tiled_probabilities(
    rgb: np.ndarray,
    forward: Forward,
    *,
    multiple: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    tile_size: int,
    overlap: int,
    batch_size: int = 1,
) -> np.ndarray:
    """Crack probability ``(H, W) float32`` of ``rgb`` ``(H, W, 3) uint8``, through tiles when it is large."""
    h, w = rgb.shape[:2]
    padded = pad_to_multiple(rgb, multiple)
    hp, wp = padded.shape[:2]
    side_y, rows = axis_tiles(hp, tile_size, overlap, multiple)
    side_x, cols = axis_tiles(wp, tile_size, overlap, multiple)
    out = np.empty((h, w), dtype=np.float32)
    tiles = [(r, c) for r in rows for c in cols]
    for batch in _chunks(tiles, batch_size):
        pixels = np.stack([padded[r.start : r.start + side_y, c.start : c.start + side_x] for r, c in batch])
        probs = forward(normalise(pixels, mean, std))  # (N, side_y, side_x)
        for (r, c), p in zip(batch, probs, strict=True):
            y0, y1 = r.core_lo, min(r.core_hi, h)
            x0, x1 = c.core_lo, min(c.core_hi, w)
            if y0 < y1 and x0 < x1:
                out[y0:y1, x0:x1] = p[y0 - r.start : y1 - r.start, x0 - c.start : x1 - c.start]
    return out


def _chunks(items: list[tuple[AxisTile, AxisTile]], size: int) -> Iterator[list[tuple[AxisTile, AxisTile]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
