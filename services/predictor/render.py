"""Response images: the mask as PNG and a JPEG overlay of the mask on the photo."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

OVERLAY_COLOUR = np.array([255, 40, 40], dtype=np.float32)
OVERLAY_ALPHA = 0.55


def mask_png(mask: np.ndarray) -> bytes:
    """``(H, W) bool`` → 8-bit grey PNG with 0 (background) and 255 (crack).

    zlib level 1: a two-level mask compresses almost as well as at the default level, several times faster.
    """
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def probability_png(probabilities: np.ndarray) -> bytes:
    """``(H, W) float`` in [0, 1] → 8-bit grey PNG, ``round(p · 255)``: clients re-threshold it themselves."""
    levels = np.clip(np.rint(probabilities * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(levels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def overlay_jpeg(rgb: np.ndarray, mask: np.ndarray, quality: int = 85) -> bytes:
    """Cracks tinted red over the photo."""
    out = rgb.astype(np.float32)
    out[mask] = (1.0 - OVERLAY_ALPHA) * out[mask] + OVERLAY_ALPHA * OVERLAY_COLOUR
    buf = io.BytesIO()
    Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
