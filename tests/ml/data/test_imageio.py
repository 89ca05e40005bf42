import io

import numpy as np
import pytest
from PIL import Image

from ml.data.imageio import ImageDecodeError, encode_png, is_binary_mask, read_image, read_mask

CRACK = np.zeros((4, 6), bool)
CRACK[1, 1:5] = True
CRACK[2, 3] = True


def save(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def with_exif_orientation(img: Image.Image, orientation: int, fmt: str = "PNG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(img, fmt, exif=exif.tobytes())


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda m: Image.fromarray(m.astype(np.uint8) * 255), id="L 0/255"),
        pytest.param(lambda m: Image.fromarray(m.astype(np.uint8)), id="L 0/1"),
        pytest.param(lambda m: Image.fromarray(m), id="mode 1"),
        pytest.param(lambda m: Image.fromarray(m.astype(np.uint16) * 65535), id="16-bit 0/65535"),
        pytest.param(lambda m: Image.fromarray(m.astype(np.uint16)), id="16-bit 0/1"),
        pytest.param(
            lambda m: Image.fromarray(np.stack([m * 255, m * 0, m * 0], -1).astype(np.uint8)), id="RGB red"
        ),
        pytest.param(
            lambda m: Image.fromarray(
                np.stack([m * 255, np.full(m.shape, 255)], -1).astype(np.uint8), mode="LA"
            ),
            id="LA",
        ),
        pytest.param(
            lambda m: Image.fromarray(np.stack([m * 255] * 3 + [np.full(m.shape, 255)], -1).astype(np.uint8)),
            id="RGBA",
        ),
    ],
)
def test_mask_encodings(make):
    img = make(CRACK)
    assert np.array_equal(read_mask(save(img)), CRACK)
    assert is_binary_mask(save(img))


def test_palette_masks_use_colours_not_indices():
    # Index 1 is black (background), index 2 is a dark red crack colour: thresholding the raw indices at
    # max/2 = 1 would call the background crack.
    indices = np.where(CRACK, 2, 1).astype(np.uint8)
    img = Image.fromarray(indices, mode="P")
    img.putpalette([255, 255, 255, 0, 0, 0, 128, 0, 0] + [0] * (256 * 3 - 9))
    assert np.array_equal(read_mask(save(img)), CRACK)
    # A two-colour palette with index 0 = black background and index 1 = white crack.
    img = Image.fromarray(CRACK.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * (256 * 3 - 6))
    assert np.array_equal(read_mask(save(img)), CRACK)


def test_empty_and_grey_masks():
    assert not read_mask(save(Image.fromarray(np.zeros((3, 3), np.uint8)))).any()
    grey = np.array([[0, 10, 200], [255, 127, 128]], np.uint8)
    assert read_mask(save(Image.fromarray(grey))).tolist() == [[False, False, True], [True, False, True]]
    assert not is_binary_mask(save(Image.fromarray(grey)))


def test_images_of_every_mode_become_rgb_uint8():
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3
    gray = rgb[..., 0]
    cases = {
        "RGB": (Image.fromarray(rgb), rgb),
        "L": (Image.fromarray(gray), np.repeat(gray[..., None], 3, 2)),
        "I;16": (Image.fromarray(gray.astype(np.uint16) * 257), np.repeat(gray[..., None], 3, 2)),
    }
    for name, (img, expected) in cases.items():
        out = read_image(save(img))
        assert out.dtype == np.uint8 and out.shape == (4, 6, 3), name
        assert np.array_equal(out, expected), name
    # Transparent pixels are composited on white.
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    assert read_image(save(Image.fromarray(rgba))).tolist() == [
        [[10, 20, 30], [255, 255, 255]],
        [[255] * 3, [255] * 3],
    ]
    cmyk = Image.new("CMYK", (3, 2), (0, 255, 255, 0))
    assert read_image(save(cmyk, "JPEG", quality=100))[0, 0].tolist() == pytest.approx([255, 0, 0], abs=3)
    pal = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    pal.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    assert read_image(save(pal)).tolist() == [[[0, 0, 255], [0, 255, 0]]]


def test_exif_orientation_is_applied_to_images_and_masks():
    mask = np.zeros((2, 3), np.uint8)
    mask[0, 2] = 255  # top-right
    # Orientation 6: the stored picture must be rotated 90° clockwise to display upright.
    rotated_mask = read_mask(with_exif_orientation(Image.fromarray(mask), 6))
    assert rotated_mask.shape == (3, 2)
    assert rotated_mask.tolist() == [[False, False], [False, False], [False, True]]
    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 2] = 255
    assert read_image(with_exif_orientation(Image.fromarray(img), 6)).shape == (3, 2, 3)


def test_sources_path_bytes_and_pil(tmp_path):
    path = tmp_path / "m.png"
    path.write_bytes(encode_png(CRACK))
    assert np.array_equal(read_mask(path), CRACK)
    assert np.array_equal(read_mask(str(path)), CRACK)
    assert np.array_equal(read_mask(Image.open(path)), CRACK)


def test_undecodable_input_raises_a_clear_error(tmp_path):
    with pytest.raises(ImageDecodeError, match="cannot decode image <bytes>"):
        read_image(b"definitely not an image")
    with pytest.raises(ImageDecodeError, match=r"missing\.png"):
        read_mask(tmp_path / "missing.png")
    truncated = save(Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7), "JPEG")[:200]
    with pytest.raises(ImageDecodeError):
        read_image(truncated)


def test_encode_png_round_trips():
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(CRACK)))), CRACK.astype(np.uint8) * 255)
    rgb = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(read_image(encode_png(rgb)), rgb)


def test_compression_noise_is_not_crack():
    # An empty mask that went through lossy compression: levels 0–6, no crack anywhere.
    noise = np.random.default_rng(0).choice(np.array([0, 0, 0, 1, 3, 6], np.uint8), size=(16, 16))
    assert not read_mask(save(Image.fromarray(noise))).any()
    # A real JPEG of a diagonal crack: many grey levels around the line, the line itself survives.
    line = np.eye(32, dtype=bool) | np.eye(32, k=1, dtype=bool)
    lossy = save(Image.fromarray(line.astype(np.uint8) * 255), "JPEG", quality=60)
    assert len(np.unique(np.asarray(Image.open(io.BytesIO(lossy))))) > 2
    decoded = read_mask(lossy)
    assert (decoded == line).mean() > 0.97
    assert not decoded[20:, :8].any()


def test_anti_aliased_palette_mask():
    # Three palette colours: black background, a grey anti-aliasing edge, white crack.
    indices = np.zeros((4, 6), np.uint8)
    indices[CRACK] = 2
    indices[3, 0] = 1
    img = Image.fromarray(indices, mode="P")
    img.putpalette([0, 0, 0, 90, 90, 90, 255, 255, 255] + [0] * (256 * 3 - 9))
    assert np.array_equal(read_mask(save(img)), CRACK)
