"""Decoding images and masks into one canonical form, whatever mode the file was saved in.

Images become ``(H, W, 3) uint8`` RGB with EXIF orientation applied; masks become ``(H, W) bool``.
Grayscale, RGBA/LA (composited on white), palette, CMYK, 16-bit and 32-bit integer and float images are handled.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ImageSource = str | os.PathLike[str] | bytes | Image.Image


class ImageDecodeError(ValueError):
    """The input is not a decodable image."""


def open_image(src: ImageSource) -> Image.Image:
    """Open and fully decode ``src`` (path, bytes or PIL image), with EXIF orientation applied."""
    if isinstance(src, Image.Image):
        img = src
    else:
        try:
            img = Image.open(io.BytesIO(src) if isinstance(src, bytes) else Path(src))
            img.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            name = "<bytes>" if isinstance(src, bytes) else str(src)
            raise ImageDecodeError(f"cannot decode image {name}: {e}") from e
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    transposed = ImageOps.exif_transpose(img)
    return transposed if transposed is not None else img


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode → ``(H, W, 3) uint8`` RGB."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        else:  # 32-bit int or float: stretch the actual range
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA") or (mode in ("RGB", "L") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_image(src: ImageSource) -> np.ndarray:
    """Decode an image file/bytes into ``(H, W, 3) uint8`` RGB."""
    return to_rgb_array(open_image(src))


def read_mask(src: ImageSource) -> np.ndarray:
    """Decode a mask into ``(H, W) bool``; masks may be 0/255, 0/1, RGB, palette or 16-bit.

    A clean mask (at most two levels) is crack wherever it has its brighter level, whatever that level is
    (1, 255, a palette colour). A mask with more levels (JPEG noise, anti-aliased edges) is thresholded at the
    middle of its value range, so compression noise in an empty mask never becomes crack.
    """
    img = open_image(src)
    if img.mode in ("P", "PA"):
        # Palette indices are arbitrary: threshold the colours they stand for.
        img = img.convert("RGBA")
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if img.mode != "LA" else arr[..., 0]
    if arr.dtype == bool:
        return arr.copy()
    levels = np.unique(arr)
    if len(levels) == 2:
        return arr == levels[1]
    if arr.dtype.kind == "f":
        middle = 0.5
    elif arr.dtype.itemsize == 1 or levels[-1] <= 255:
        middle = 127.5
    else:
        middle = 32767.5
    return arr > middle


def is_binary_mask(src: ImageSource) -> bool:
    """True when the mask has at most two distinct grey levels, one of them 0."""
    img = open_image(src)
    arr = np.asarray(img.convert("L") if img.mode not in ("L", "1", "I;16", "I") else img)
    values = np.unique(arr)
    return len(values) <= 2 and values[0] == 0 if len(values) else False


def encode_png(array: np.ndarray) -> bytes:
    """Encode a bool mask (as 0/255), a uint8 grey or an RGB array as PNG bytes."""
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False)
    return buf.getvalue()
