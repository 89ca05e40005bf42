"""Segmenter: single pass vs tiles, blending weights, input validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ml.checkpoint import LoadedModel, ModelConfig, load_model, save_model
from ml.inference import Segmenter, _ramp, _starts
from ml.models import create_model

torch.set_num_threads(1)


class PixelwiseNet(nn.Module):
    """A 1×1 convolution: each output pixel depends on its input pixel only, so tiling must not change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[[1.0]], [[-2.0]], [[0.5]]]]))
            self.conv.bias.fill_(0.1)  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("m") / "tiny"
    save_model(create_model("attention_unet", base_width=4, depth=2), ModelConfig(base_width=4, depth=2), out)
    return load_model(Path(out))


def pixelwise() -> LoadedModel:
    return LoadedModel(module=PixelwiseNet().eval(), config=ModelConfig(threshold=0.4), path=Path("."))


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_tiling_equals_single_pass_for_a_pixelwise_network() -> None:
    image = rgb(300, 430)
    whole = Segmenter(pixelwise(), tile_size=1024).probabilities(image)
    tiled = Segmenter(pixelwise(), tile_size=128, overlap=32).probabilities(image)
    assert tiled.shape == (300, 430) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_real_network_tiles_agree_with_single_pass_away_from_seams(tiny: LoadedModel) -> None:
    image = rgb(200, 300, seed=1)
    whole = Segmenter(tiny, tile_size=512).probabilities(image)
    tiled = Segmenter(tiny, tile_size=128, overlap=48).probabilities(image)
    assert tiled.shape == whole.shape
    assert np.all((tiled >= 0) & (tiled <= 1))
    # Blending keeps tiled and single-pass close: the mean gap is tiny even though borders see less context.
    assert float(np.abs(tiled - whole).mean()) < 0.02


def test_predict_mask_uses_the_config_threshold() -> None:
    seg = Segmenter(pixelwise())
    image = rgb(40, 50)
    probs = seg.probabilities(image)
    np.testing.assert_array_equal(seg.predict_mask(image), probs >= 0.4)


def test_large_photo_runs_in_tiles() -> None:
    # 4000×3000 with a pixelwise net: the tiled path covers every pixel exactly once in weight terms.
    image = np.full((3000, 4000, 3), 128, dtype=np.uint8)
    probs = Segmenter(pixelwise(), tile_size=1024, overlap=128).probabilities(image)
    assert probs.shape == (3000, 4000)
    assert np.ptp(probs) < 1e-5  # a uniform image stays uniform across seams


def test_1080p_photo_with_the_real_network(tiny: LoadedModel) -> None:
    mask = Segmenter(tiny, tile_size=512, overlap=64).predict_mask(rgb(1080, 1920))
    assert mask.shape == (1080, 1920) and mask.dtype == bool


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "expected"),
    [(100, 128, 16, [0]), (256, 128, 32, [0, 96, 128]), (300, 128, 32, [0, 96, 172])],
)
def test_tile_starts_cover_the_axis(length: int, tile: int, overlap: int, expected: list[int]) -> None:
    starts = _starts(length, tile, overlap)
    assert starts == expected
    assert starts[-1] + min(tile, length) == length


def test_ramp_is_smooth_and_positive() -> None:
    w = _ramp(128, 32)
    assert w.min() > 0 and w.max() == 1.0
    assert np.all(np.diff(w[:32]) > 0) and np.all(w[32:96] == 1.0)
    np.testing.assert_allclose(w[:32] + w[:32][::-1], 1.0, atol=1e-3)  # neighbours' ramps sum to 1


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
        Segmenter(pixelwise()).probabilities(array)


@pytest.mark.parametrize(("tile", "overlap"), [(16, 0), (128, 64), (128, -1)])
def test_bad_tiling_options(tile: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        Segmenter(pixelwise(), tile_size=tile, overlap=overlap)
