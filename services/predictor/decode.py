"""Untrusted bytes → a decoded image, or a clear 4xx. Content is sniffed; names and content types are ignored.

Order of checks, cheapest first, so nothing large is decoded before it is known to fit: byte count → magic bytes
→ header dimensions (pixel and side limits, before any pixel is decoded) → full decode (truncation shows here)
→ normalisation to RGB by ``ml.data.imageio`` (EXIF orientation, 16-bit, CMYK, palette, alpha, grayscale).
Animated images (GIF, APNG, WebP) are accepted; their first frame is used.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ml.data import imageio
from services.predictor.errors import InvalidInput, PayloadTooLarge, PredictorError

# (magic prefix, format name, file extension)
_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "JPEG", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "PNG", "png"),
    (b"GIF87a", "GIF", "gif"),
    (b"GIF89a", "GIF", "gif"),
    (b"BM", "BMP", "bmp"),
    (b"II*\x00", "TIFF", "tif"),
    (b"MM\x00*", "TIFF", "tif"),
)


class UnsupportedMedia(PredictorError):
    status = 415
    reason = "not_an_image"


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int
    max_side: int


@dataclass
class DecodedImage:
    """An uploaded image after validation: ``rgb`` is ``(H, W, 3) uint8`` with EXIF orientation applied."""

    rgb: np.ndarray
    format: str
    ext: str
    frames: int

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def sniff(data: bytes) -> tuple[str, str]:
    """``(format, extension)`` from the magic bytes; raises ``UnsupportedMedia`` for anything else."""
    for magic, fmt, ext in _SIGNATURES:
        if data.startswith(magic):
            return fmt, ext
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", "webp"
    raise UnsupportedMedia("not an image: expected JPEG, PNG, GIF, BMP, TIFF or WebP content")


def check_size(data: bytes, limits: Limits, what: str = "image") -> None:
    if not data:
        raise InvalidInput(f"the {what} is empty (0 bytes)", reason="empty")
    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(f"the {what} is {len(data)} bytes; the limit is {limits.max_bytes} bytes")


def _open_checked(data: bytes, limits: Limits, what: str) -> tuple[Image.Image, str, str]:
    check_size(data, limits, what)
    fmt, ext = sniff(data)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is checked below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise PayloadTooLarge(f"the {what} is a decompression bomb: {e}") from e
    except Exception as e:  # any decoder failure on hostile bytes is the client's 4xx
        raise InvalidInput(f"the {what} is corrupt ({fmt} header unreadable): {e}", reason="corrupt") from e
    width, height = img.size
    if width < 2 or height < 2:
        raise InvalidInput(
            f"the {what} is {width}×{height} pixels; at least 2×2 is needed", reason="too_small"
        )
    if width > limits.max_side or height > limits.max_side:
        raise PayloadTooLarge(
            f"the {what} is {width}×{height} pixels; the longest side allowed is {limits.max_side}"
        )
    if width * height > limits.max_pixels:
        raise PayloadTooLarge(
            f"the {what} has {width * height} pixels ({width}×{height}); the limit is {limits.max_pixels}"
        )
    try:
        img.load()
        normalised = imageio.open_image(img)
        normalised.load()
    except Image.DecompressionBombError as e:
        raise PayloadTooLarge(f"the {what} is a decompression bomb: {e}") from e
    except Exception as e:  # truncated/corrupt data raises many types inside Pillow
        raise InvalidInput(f"the {what} is truncated or corrupt ({fmt}): {e}", reason="corrupt") from e
    return normalised, fmt, ext


def decode_image(data: bytes, limits: Limits) -> DecodedImage:
    """Validate and decode an uploaded image."""
    img, fmt, ext = _open_checked(data, limits, "image")
    frames = int(getattr(img, "n_frames", 1) or 1)
    try:
        rgb = imageio.to_rgb_array(img)
    except Exception as e:  # exotic modes Pillow cannot convert
        raise InvalidInput(f"the image's pixel format ({img.mode}) cannot be converted to RGB: {e}") from e
    return DecodedImage(rgb=rgb, format=fmt, ext=ext, frames=frames)


def decode_mask(data: bytes, width: int, height: int, limits: Limits) -> np.ndarray:
    """Validate a corrected mask: a PNG of exactly ``width``×``height`` with two levels (0/255 or 0/1)."""
    fmt, _ = sniff(data) if data else ("", "")
    if data and fmt != "PNG":
        raise InvalidInput(f"the mask must be a PNG, got {fmt} content", reason="bad_mask")
    img, _, _ = _open_checked(data, limits, "mask")
    if img.size != (width, height):
        raise InvalidInput(
            f"the mask is {img.size[0]}×{img.size[1]} but the image is {width}×{height}; they must match",
            reason="bad_mask",
        )
    if not imageio.is_binary_mask(img):
        levels = np.unique(np.asarray(img.convert("L")))
        shown = ", ".join(str(v) for v in levels[:6]) + (" …" if len(levels) > 6 else "")
        raise InvalidInput(
            f"the mask is not binary: grey levels {shown}; use 0 for background and 255 (or 1) for crack",
            reason="bad_mask",
        )
    return imageio.read_mask(img)
