"""The overlay an inspector reads: cracks tinted over the photo, each crack's id beside its box.

Pure numpy + Pillow; shared by the batch command (``overlays/*.jpg``) and the UI (Inspect page).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CRACK_COLOUR = (255, 40, 40)
LABEL_COLOUR = (255, 230, 0)


def tint(rgb: np.ndarray, mask: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """``rgb`` with the crack pixels blended towards red by ``opacity`` in [0, 1]."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"image {rgb.shape[:2]} and mask {mask.shape} differ in size")
    out = rgb.copy()
    blended = (1.0 - opacity) * rgb[mask].astype(np.float32) + opacity * np.asarray(CRACK_COLOUR, np.float32)
    out[mask] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out


def draw_ids(rgb: np.ndarray, boxes: Sequence[tuple[int, Sequence[int]]], scale: float = 1.0) -> np.ndarray:
    """Write each crack's id at its box's top-left corner, outlined so it reads on any background.

    Args:
        rgb: ``(H, W, 3) uint8``, possibly a scaled-down view of the photo.
        boxes: ``(id, [x0, y0, x1, y1])`` in photo pixels.
        scale: view size / photo size, applied to the boxes.
    """
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    size = max(12, min(image.size) // 30)
    font = ImageFont.load_default(size=size)
    for crack_id, (x0, y0, x1, y1) in boxes:
        bx0, by0, bx1, by1 = (round(v * scale) for v in (x0, y0, x1, y1))
        draw.rectangle((bx0, by0, max(bx0, bx1 - 1), max(by0, by1 - 1)), outline=LABEL_COLOUR, width=1)
        draw.text(
            (bx0 + 2, max(0, by0 - size - 2)),
            str(crack_id),
            fill=LABEL_COLOUR,
            font=font,
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    return np.asarray(image)


def annotated(
    rgb: np.ndarray,
    mask: np.ndarray,
    boxes: Sequence[tuple[int, Sequence[int]]],
    opacity: float = 0.5,
    scale: float = 1.0,
) -> np.ndarray:
    """Tint, then label: the overlay with crack ids."""
    return draw_ids(tint(rgb, mask, opacity), boxes, scale)


def jpeg(rgb: np.ndarray, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png(array: np.ndarray) -> bytes:
    """PNG of a ``uint8`` image; a ``bool`` mask is written as 0/255."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
