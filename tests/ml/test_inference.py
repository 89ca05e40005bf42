"""Tiling: exact against a single pass on a real photo, sized from the receptive field, streamed in batches."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.checkpoint import LoadedModel, ModelConfig, load_model, save_model
from ml.config import attention_unet_window
from ml.inference import Segmenter
from ml.models import create_model
from ml.segmenter import TiledSegmenter
from ml.tiling import axis_tiles, pad_to_multiple
from tests.ml.photos import REPO, real_photo

STARTER = REPO / "models" / "starter"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("m") / "tiny"
    save_model(create_model("attention_unet", base_width=4, depth=2), ModelConfig(base_width=4, depth=2), out)
    return load_model(Path(out))


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class Recorder(TiledSegmenter):
    """A pixelwise stand-in runtime that records the batches it is given."""

    runtime = "recorder"

    def __init__(self, **options: object) -> None:
        super().__init__(ModelConfig(depth=2, threshold=0.4), **options)  # type: ignore[arg-type]
        self.batches: list[tuple[int, ...]] = []

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        self.batches.append(pixels.shape)
        return 1.0 / (1.0 + np.exp(-pixels.mean(axis=1)))


@pytest.mark.parametrize("depth", [2, 3])
def test_receptive_field_bounds_what_an_output_pixel_sees(depth: int) -> None:
    """Pixels farther than ``reach`` never change an output pixel, and some pixel near the reach does."""
    torch.manual_seed(depth)
    net = create_model("attention_unet", base_width=4, depth=depth).eval()
    size, reach = attention_unet_window(depth)
    grid, n = 2**depth, 2 * reach + 8 * 2**depth
    x = torch.rand(1, 3, n, n)
    farthest = 0
    with torch.inference_mode():
        base = net(x)[0, 0]
        for p in range(n // 2, n // 2 + grid):  # every position on the pooling grid
            far = x.clone()
            far[..., :, : p - reach] = torch.rand_like(far[..., :, : p - reach])
            far[..., :, p + reach + 1 :] = torch.rand_like(far[..., :, p + reach + 1 :])
            assert torch.equal(net(far)[0, 0, :, p], base[:, p]), f"pixel {p} sees beyond {reach}"
            for side in (-1, 1):  # the farthest single column that still changes pixel p
                for d in range(reach, farthest, -1):
                    near = x.clone()
                    near[..., :, p + side * d] = torch.rand_like(near[..., :, p + side * d]) * 20 - 10
                    if not torch.equal(net(near)[0, 0, :, p], base[:, p]):
                        farthest = d
                        break
    assert reach - grid < farthest <= reach, f"farthest influence {farthest} px, computed reach {reach}"
    assert size <= 2 * reach + 1


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_tiles_equal_a_single_pass_on_a_real_1500x1000_photo(runtime: str) -> None:
    from ml.segmenter import open_segmenter

    image = real_photo(1500, 1000)
    whole = open_segmenter(STARTER, runtime, tile_size=2048).probabilities(image)
    tiled_seg = open_segmenter(STARTER, runtime, tile_size=512, batch_size=2)
    tiled = tiled_seg.probabilities(image)
    assert tiled.shape == whole.shape == (1000, 1500) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, atol=1e-4)
    # The check can fail: an overlap under the receptive field changes probabilities near the seams.
    tiled_seg.overlap = 64
    assert float(np.abs(tiled_seg.probabilities(image) - whole).max()) > 1e-3


def test_whole_image_path_matches_the_network_forward(tiny: LoadedModel) -> None:
    # Padding in numpy (shared with ONNX) must be the padding the network does itself.
    image = rgb(70, 90, seed=3)
    probs = Segmenter(tiny).probabilities(image)
    x = (
        torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        - torch.tensor(tiny.config.mean).view(1, 3, 1, 1)
    ) / torch.tensor(tiny.config.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = torch.sigmoid(tiny.module(x))[0, 0].numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_tiny_network_tiles_exactly_on_random_pixels(tiny: LoadedModel) -> None:
    image = rgb(300, 430, seed=1)
    whole = Segmenter(tiny, tile_size=512).probabilities(image)
    tiled = Segmenter(tiny, tile_size=128, batch_size=3).probabilities(image)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_large_photo_streams_equal_shaped_batches() -> None:
    seg = Recorder(tile_size=1024, batch_size=3)
    image = rgb(3000, 4000, seed=2)
    probs = seg.probabilities(image)
    assert probs.shape == (3000, 4000)
    assert all(shape[0] <= 3 and shape[1:] == seg.batches[0][1:] for shape in seg.batches)
    assert max(seg.batches[0][2:]) <= 1024 and len(seg.batches) > 1
    # A pixelwise runtime is unchanged by tiling: each pixel was taken from exactly one tile, unaltered.
    np.testing.assert_allclose(probs, Recorder(tile_size=4096).probabilities(image), atol=1e-6)


def test_predict_mask_uses_the_config_threshold() -> None:
    seg = Recorder()
    image = rgb(40, 50)
    np.testing.assert_array_equal(seg.predict_mask(image), seg.probabilities(image) >= 0.4)


@pytest.mark.parametrize("length", [1008, 1088, 1504, 3008, 4016])
@pytest.mark.parametrize(("tile", "overlap"), [(1024, 288), (512, 288), (2048, 288)])
def test_axis_tiles_partition_the_axis_far_from_every_cut(length: int, tile: int, overlap: int) -> None:
    side, tiles = axis_tiles(length, tile, overlap, 16)
    assert side <= tile and side % 16 == 0
    assert tiles[0].core_lo == 0 and tiles[-1].core_hi == length
    for t in tiles:
        assert t.start % 16 == 0 and t.start + side <= length
    for a, b in itertools.pairwise(tiles):
        assert a.core_hi == b.core_lo  # cores partition the axis
        assert a.start + side - b.start >= overlap  # neighbours overlap enough
        # every stitched pixel is ≥ overlap/2 from the cut edges of the tile it comes from
        assert a.start + side - a.core_hi >= overlap // 2 and b.core_lo - b.start >= overlap // 2


def test_tiles_are_spread_evenly() -> None:
    # 1080p pads to 1088 rows: two 688-row tiles rather than two of 1024.
    side, tiles = axis_tiles(1088, 1024, 288, 16)
    assert (side, len(tiles)) == (688, 2)


def test_padding_reflects_like_the_network() -> None:
    image = rgb(5, 7)
    padded = pad_to_multiple(image, 4)
    assert padded.shape == (8, 8, 3)
    np.testing.assert_array_equal(padded[5, :7], image[3])  # reflection, edge row not repeated


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((10, 10), dtype=np.uint8), "uint8 RGB"),
        (np.zeros((10, 10, 3), dtype=np.float32), "uint8 RGB"),
        (np.zeros((1, 10, 3), dtype=np.uint8), "at least 2×2"),
    ],
)
def test_bad_inputs_raise_value_error(array: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recorder().probabilities(array)


@pytest.mark.parametrize(
    ("tile", "overlap", "message"),
    [(102, None, "multiple of 4"), (4, None, "at least 8"), (256, 32, "too small"), (64, 62, "no stride")],
)
def test_bad_tiling_options(tile: int, overlap: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recorder(tile_size=tile, overlap=overlap)
