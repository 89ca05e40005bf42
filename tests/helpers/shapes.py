"""Masks of known geometry for measurement tests: thick straight segments drawn as rasterised rectangles."""

from __future__ import annotations

import math

import numpy as np
from skimage.draw import disk, polygon


def segment(
    shape: tuple[int, int], start: tuple[float, float], end: tuple[float, float], width: float
) -> np.ndarray:
    """Pixels whose centres lie within ``width / 2`` of the segment ``start``→``end`` (``(y, x)``, flat ends)."""
    (y0, x0), (y1, x1) = start, end
    length = math.hypot(y1 - y0, x1 - x0)
    ny, nx = -(x1 - x0) / length * width / 2, (y1 - y0) / length * width / 2
    rr, cc = polygon([y0 + ny, y1 + ny, y1 - ny, y0 - ny], [x0 + nx, x1 + nx, x1 - nx, x0 - nx], shape)
    mask = np.zeros(shape, dtype=bool)
    mask[rr, cc] = True
    return mask


def line_at(angle_deg: float, length: float, width: float, size: int = 460) -> np.ndarray:
    """A segment of ``length`` at ``angle_deg`` from the x axis (counter-clockwise, as on a map), centred
    off the pixel grid so no angle lines up with pixel centres by accident."""
    a = math.radians(angle_deg)
    cy, cx = size / 2 + 0.3, size / 2 + 0.7
    dy, dx = -length / 2 * math.sin(a), length / 2 * math.cos(a)
    return segment((size, size), (cy - dy, cx - dx), (cy + dy, cx + dx), width)


def ring(size: int, radius: float, width: float) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    centre = (size / 2, size / 2)
    mask[disk(centre, radius + width / 2, shape=mask.shape)] = True
    mask[disk(centre, radius - width / 2, shape=mask.shape)] = False
    return mask
