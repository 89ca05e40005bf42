"""Image helpers for the UI, pure numpy + Pillow: decoding, overlays, and canvas strokes → corrected mask.

Decoding is the predictor's own (``ml.data.imageio``, torch-free), so the UI shows exactly the pixels and the
mask the model saw.

The canvas shows the photo with the predicted mask on it and records only the person's strokes on a transparent
layer: white strokes add crack pixels, dark strokes erase them. :func:`apply_canvas_edits` turns that RGBA layer,
drawn at display size, into a binary mask at the size of the original image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ml.data import imageio

PAINT_COLOR = "#ffffff"
# Translucent so the photo stays visible under an erased stroke; still dark enough to tell apart from paint.
ERASE_COLOR = "rgba(0, 0, 0, 0.6)"
MASK_COLOR = (255, 40, 40)
# Below this alpha a canvas pixel is anti-aliasing at a stroke's edge, not an intended edit.
MIN_STROKE_ALPHA = 96
UNTOUCHED, PAINTED, ERASED = 0, 1, 2


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes into ``(H, W, 3) uint8`` RGB exactly as the predictor does (``ml.data.imageio``)."""
    try:
        return imageio.read_image(data)
    except imageio.ImageDecodeError as e:
        raise ValueError(f"not a readable image: {e}") from e


def decode_mask(data: bytes, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a mask PNG (0/255 or 0/1, gray, RGB, RGBA or palette) into ``(H, W) bool``, as the predictor does.

    Args:
        data: The encoded mask.
        shape: ``(H, W)`` it must have; a mismatch raises ``ValueError`` saying both sizes.
    """
    try:
        mask = imageio.read_mask(data)
    except imageio.ImageDecodeError as e:
        raise ValueError(f"not a readable mask image: {e}") from e
    if shape is not None and mask.shape != tuple(shape):
        raise ValueError(
            f"the mask is {mask.shape[1]}×{mask.shape[0]} px but the image is {shape[1]}×{shape[0]} px; "
            "upload a mask of the same size"
        )
    return mask


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an RGB/gray ``uint8`` array; a ``bool`` mask is written as 0/255."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def overlay(
    rgb: np.ndarray, mask: np.ndarray, opacity: float = 0.5, color: tuple[int, int, int] = MASK_COLOR
) -> np.ndarray:
    """Blend ``color`` over the crack pixels of ``rgb`` with ``opacity`` in [0, 1]; other pixels unchanged."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"image {rgb.shape[:2]} and mask {mask.shape} differ in size")
    # Only the crack pixels are converted to float: a 40-megapixel photo must not cost gigabytes here.
    out = rgb.copy()
    blended = (1.0 - opacity) * rgb[mask].astype(np.float32) + opacity * np.asarray(color, dtype=np.float32)
    out[mask] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out


def display_size(width: int, height: int, max_width: int = 720, max_height: int = 720) -> tuple[int, int]:
    """The size to show an image at: scaled down (never up) to fit, aspect ratio kept, at least 1×1."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    scale = min(1.0, max_width / width, max_height / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a photo for display (``size`` is ``(width, height)``)."""
    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask resized for display as 0/255 ``uint8`` (``size`` is ``(width, height)``).

    A pixel is a crack when any pixel it covers is (box average > 0), so hairline cracks stay visible on a
    shrunk 40-megapixel photo instead of vanishing between sampled pixels.
    """
    gray = Image.fromarray(mask.astype(np.uint8) * 255)
    if gray.size != size:
        gray = gray.resize(size, Image.Resampling.BOX)
    return (np.asarray(gray) > 0).astype(np.uint8) * 255


def overlay_jpeg(rgb: np.ndarray, mask: np.ndarray, opacity: float) -> bytes:
    """The full-resolution overlay as JPEG (for the download button, built only when clicked)."""
    return encode_jpeg(overlay(rgb, mask, opacity))


def canvas_edits(rgba: np.ndarray) -> np.ndarray:
    """Classify each pixel of the canvas stroke layer: ``UNTOUCHED``, ``PAINTED`` (bright) or ``ERASED`` (dark)."""
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected an RGBA canvas (H, W, 4), got shape {rgba.shape}")
    alpha = rgba[..., 3]
    bright = rgba[..., :3].astype(np.uint16).sum(axis=-1) >= 3 * 128
    labels = np.full(alpha.shape, UNTOUCHED, dtype=np.uint8)
    stroked = alpha >= MIN_STROKE_ALPHA
    labels[stroked & bright] = PAINTED
    labels[stroked & ~bright] = ERASED
    return labels


def apply_canvas_edits(predicted: np.ndarray, rgba: np.ndarray | None) -> np.ndarray:
    """The corrected mask: ``predicted`` with the canvas strokes applied, at ``predicted``'s size.

    The canvas may be smaller than the image (it is scaled for display): its labels are resized with NEAREST so
    edits stay hard-edged and a stroke covers the same part of the photo it covered on screen.

    Args:
        predicted: ``(H, W) bool``, the model's mask.
        rgba: ``(h, w, 4) uint8`` stroke layer from the canvas, or ``None`` when nothing was drawn.
    """
    if predicted.ndim != 2:
        raise ValueError(f"expected a (H, W) mask, got shape {predicted.shape}")
    corrected = predicted.astype(bool).copy()
    if rgba is None:
        return corrected
    labels = canvas_edits(np.asarray(rgba, dtype=np.uint8))
    height, width = predicted.shape
    if labels.shape != predicted.shape:
        labels = np.asarray(Image.fromarray(labels).resize((width, height), Image.Resampling.NEAREST))
    corrected[labels == PAINTED] = True
    corrected[labels == ERASED] = False
    return corrected


def has_edits(rgba: np.ndarray | None) -> bool:
    return rgba is not None and bool((np.asarray(rgba)[..., 3] >= MIN_STROKE_ALPHA).any())
