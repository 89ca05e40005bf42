"""Overlay, decoding and canvas strokes → mask conversion (pure numpy/PIL)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.ui.overlay import (
    ERASED,
    PAINTED,
    UNTOUCHED,
    apply_canvas_edits,
    canvas_edits,
    decode_image,
    decode_mask,
    display_size,
    encode_png,
    has_edits,
    overlay,
    overlay_jpeg,
    resize_mask,
)


def encode(img: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_overlay_blends_only_mask_pixels() -> None:
    rgb = np.full((4, 5, 3), 100, np.uint8)
    mask = np.zeros((4, 5), bool)
    mask[1, 2] = True
    out = overlay(rgb, mask, opacity=0.5, color=(255, 0, 0))
    assert out[1, 2].tolist() == [178, 50, 50]
    assert (out[~mask] == 100).all()
    assert np.array_equal(overlay(rgb, mask, 0.0), rgb)
    assert overlay(rgb, mask, 1.0, (1, 2, 3))[1, 2].tolist() == [1, 2, 3]


@pytest.mark.parametrize("opacity", [-0.1, 1.5])
def test_overlay_rejects_bad_opacity(opacity: float) -> None:
    with pytest.raises(ValueError, match="opacity"):
        overlay(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), bool), opacity)


def test_overlay_rejects_size_mismatch() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        overlay(np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2), bool))


def test_decode_image_applies_exif_orientation_and_flattens_alpha() -> None:
    img = Image.new("RGB", (6, 4), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    rotated = decode_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert rotated.shape == (6, 4, 3)
    rgba = Image.new("RGBA", (3, 2), (0, 0, 0, 0))
    assert decode_image(encode(rgba)).tolist() == np.full((2, 3, 3), 255).tolist()
    gray16 = Image.fromarray(np.array([[0, 1000], [2000, 4000]], np.uint16))
    # 16-bit samples scale by 257, as the predictor decodes them (one decoder: ml.data.imageio)
    assert decode_image(encode(gray16))[..., 0].tolist() == [[0, 4], [8, 16]]


def test_decode_image_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a readable image"):
        decode_image(b"not an image")


def test_decode_mask_accepts_0_1_and_0_255_and_checks_size() -> None:
    ones = np.array([[0, 1], [1, 0]], np.uint8)
    assert decode_mask(encode(Image.fromarray(ones))).tolist() == [[False, True], [True, False]]
    assert (
        decode_mask(encode(Image.fromarray(ones * 255)), shape=(2, 2)).tolist() == ones.astype(bool).tolist()
    )
    with pytest.raises(ValueError, match=r"the mask is 2×2 px but the image is 3×2 px"):
        decode_mask(encode(Image.fromarray(ones)), shape=(2, 3))
    with pytest.raises(ValueError, match="not a readable mask"):
        decode_mask(b"\x89PNG broken")


def test_encode_png_round_trips_a_bool_mask_as_0_255() -> None:
    mask = np.eye(3, dtype=bool)
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(mask))))
    assert decoded.dtype == np.uint8 and set(np.unique(decoded)) == {0, 255}
    assert np.array_equal(decoded > 0, mask)


@pytest.mark.parametrize(
    ("size", "limit", "expected"),
    [((480, 320), 720, (480, 320)), ((2000, 1000), 720, (720, 360)), ((100, 4000), 720, (18, 720))],
)
def test_display_size_scales_down_keeping_aspect(
    size: tuple[int, int], limit: int, expected: tuple[int, int]
) -> None:
    assert display_size(*size, limit, limit) == expected


def test_canvas_edits_classifies_paint_erase_and_antialiasing() -> None:
    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[0, 0] = (255, 255, 255, 255)  # paint
    rgba[0, 1] = (0, 0, 0, 153)  # erase stroke, rgba(0,0,0,0.6)
    rgba[0, 2] = (255, 255, 255, 40)  # faint anti-aliased edge: ignored
    rgba[0, 3] = (102, 102, 102, 255)  # erase drawn over paint (composited): erase wins
    assert canvas_edits(rgba).tolist() == [[PAINTED, ERASED, UNTOUCHED, ERASED]]
    with pytest.raises(ValueError, match="RGBA"):
        canvas_edits(np.zeros((2, 2, 3), np.uint8))


def test_apply_canvas_edits_rescales_display_strokes_to_the_image_with_nearest() -> None:
    predicted = np.zeros((100, 200), bool)
    predicted[80:, :] = True  # a band the person erases
    canvas = np.zeros((50, 100, 4), np.uint8)  # shown at half size
    canvas[10:12, 20:30] = (255, 255, 255, 255)  # painted crack
    canvas[40:, :] = (0, 0, 0, 153)  # erase the bottom fifth
    corrected = apply_canvas_edits(predicted, canvas)
    assert corrected.shape == (100, 200) and corrected.dtype == bool
    expected = np.zeros((100, 200), bool)
    expected[20:24, 40:60] = True
    assert np.array_equal(corrected, expected)
    assert set(np.unique(corrected)) <= {False, True}


def test_apply_canvas_edits_without_strokes_keeps_the_prediction() -> None:
    predicted = np.random.default_rng(0).random((7, 9)) > 0.5
    assert np.array_equal(apply_canvas_edits(predicted, None), predicted)
    assert np.array_equal(apply_canvas_edits(predicted, np.zeros((3, 4, 4), np.uint8)), predicted)
    assert not has_edits(None) and not has_edits(np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W\) mask"):
        apply_canvas_edits(np.zeros((2, 2, 1), bool), None)


def test_resize_mask_keeps_a_hairline_crack_visible_when_shrunk() -> None:
    mask = np.zeros((1000, 1500), bool)
    mask[500, :] = True  # one pixel thick
    small = resize_mask(mask, (300, 200))
    assert small.shape == (200, 300) and small.dtype == np.uint8
    assert (small[100] == 255).all() and small.sum() == 255 * 300
    assert np.array_equal(resize_mask(mask[:4, :4], (4, 4)), mask[:4, :4].astype(np.uint8) * 255)


def test_overlay_jpeg_is_full_resolution() -> None:
    rgb = np.full((40, 60, 3), 128, np.uint8)
    mask = np.zeros((40, 60), bool)
    decoded = Image.open(io.BytesIO(overlay_jpeg(rgb, mask, 0.5)))
    assert decoded.format == "JPEG" and decoded.size == (60, 40)
