"""The UI and the predictor decode the same bytes into the same pixels and the same mask (one decoder).

Each case is an edge case on which the UI's former decoder disagreed with the predictor's, or could have.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from ml.data import imageio
from services.predictor.decode import Limits, decode_image
from services.ui import overlay

LIMITS = Limits(max_bytes=10_000_000, max_pixels=10_000_000, max_side=10_000)


def _png(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _jpeg(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(Image.new("RGB", (6, 4), (10, 20, 30)), exif=exif.tobytes())


def _palette_transparent() -> bytes:
    img = Image.new("P", (2, 2))
    img.putpalette([0, 0, 0, 200, 10, 10])
    img.putdata([0, 1, 1, 0])
    return _png(img, transparency=0)


IMAGES: dict[str, Callable[[], bytes]] = {
    "gray16": lambda: _png(Image.fromarray(np.array([[0, 1000], [2000, 4000]], np.uint16))),
    "rgb-with-trns": lambda: _png(Image.new("RGB", (2, 2), (5, 5, 5)), transparency=(5, 5, 5)),
    "palette-transparent": _palette_transparent,
    "rgba-half-transparent": lambda: _png(Image.new("RGBA", (3, 2), (0, 0, 0, 128))),
    "la": lambda: _png(Image.new("LA", (2, 2), (90, 40))),
    "cmyk-jpeg": lambda: _jpeg(Image.new("CMYK", (4, 4), (10, 200, 30, 5))),
    "exif-rotated": _exif_rotated,
}


@pytest.mark.parametrize("case", sorted(IMAGES))
def test_the_ui_shows_the_pixels_the_predictor_segments(case: str) -> None:
    data = IMAGES[case]()
    assert np.array_equal(overlay.decode_image(data), decode_image(data, LIMITS).rgb)


MASKS: dict[str, np.ndarray] = {
    "0-1": np.array([[0, 1], [1, 0]], np.uint8),
    "0-255": np.array([[0, 255], [255, 0]], np.uint8),
    "noisy-gray": np.array([[0, 3], [200, 0]], np.uint8),  # JPEG-like noise is not crack
    "rgba-painted": np.array(
        [[[0, 0, 0, 0], [255, 255, 255, 255]], [[255, 255, 255, 255], [0, 0, 0, 0]]], np.uint8
    ),
}


@pytest.mark.parametrize("case", sorted(MASKS))
def test_the_ui_reads_a_mask_as_the_predictor_does(case: str) -> None:
    data = _png(Image.fromarray(MASKS[case]))
    assert np.array_equal(overlay.decode_mask(data), imageio.read_mask(data))
