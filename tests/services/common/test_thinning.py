"""Our thinning (no scikit-image in the serving image) against its reference and against topology."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from services.common.thinning import SIMPLE, thin
from tests.helpers.shapes import line_at, segment

EIGHT = np.ones((3, 3), dtype=bool)


def _lee(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    return skeletonize(mask, method="lee").astype(bool)


def _topology(mask: np.ndarray) -> tuple[int, int]:
    """(8-connected foreground components, 4-connected background components) with the border as background."""
    padded = np.pad(mask, 1)
    return ndimage.label(padded, structure=EIGHT)[1], ndimage.label(~padded)[1]


def _blobs(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.5)
    return noise > 0.05


def test_the_simple_point_table() -> None:
    assert SIMPLE.shape == (256,)
    assert not SIMPLE[0]  # an isolated pixel: deleting it removes a component
    assert not SIMPLE[0xFF]  # an interior pixel: deleting it makes a hole
    assert SIMPLE[0b00000001]  # the end of a line (one neighbour, to the north)
    assert not SIMPLE[0b00010001]  # a pixel joining north and south: deleting it splits the line


def test_shapes() -> None:
    bar = np.zeros((9, 20), dtype=bool)
    bar[3:6, 2:18] = True
    skeleton = thin(bar)
    assert skeleton.sum() == 16 and skeleton[4, 2:18].all()  # centred, ends kept

    diagonal = np.zeros((12, 12), dtype=bool)  # two pixels thick: Zhang–Suen erases it
    for i in range(10):
        diagonal[i + 1, i + 1] = diagonal[i + 1, i + 2] = True
    assert thin(diagonal).sum() >= 9
    assert _topology(thin(diagonal)) == _topology(diagonal)

    assert thin(np.zeros((5, 5), dtype=bool)).sum() == 0
    dot = np.zeros((5, 5), dtype=bool)
    dot[2, 2] = True
    assert (thin(dot) == dot).all()
    with pytest.raises(ValueError, match=r"\(H, W\) mask"):
        thin(np.zeros((2, 3, 4), dtype=bool))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_topology_is_kept_and_the_skeleton_is_thin(seed: int) -> None:
    mask = _blobs(seed)
    skeleton = thin(mask)
    assert not (skeleton & ~mask).any()
    assert _topology(skeleton) == _topology(mask)
    # One pixel wide: no 2x2 block survives.
    s = skeleton.astype(np.uint8)
    assert not ((s[:-1, :-1] + s[1:, :-1] + s[:-1, 1:] + s[1:, 1:]) == 4).any()
    assert (thin(skeleton) == skeleton).all()  # thinning a skeleton changes nothing


@pytest.mark.parametrize("seed", range(12))
def test_same_skeleton_as_lee_on_random_shapes(seed: int) -> None:
    pytest.importorskip("skimage")
    mask = _blobs(seed, 96)
    assert (thin(mask) == _lee(mask)).all()


@pytest.mark.parametrize("angle", [0, 17, 45, 63, 90, 131])
@pytest.mark.parametrize("width", [1, 2, 5, 9])
def test_same_skeleton_as_lee_on_lines(angle: float, width: float) -> None:
    pytest.importorskip("skimage")
    mask = line_at(angle, 200, width, size=260) | segment((260, 260), (20, 20), (60, 240), 3)
    assert (thin(mask) == _lee(mask)).all()


def test_same_skeleton_as_lee_on_real_crack_masks() -> None:
    """Every DeepCrack training mask (when the datasets are here): bit for bit the reference skeleton."""
    pytest.importorskip("skimage")
    root = Path(os.environ.get("CRACKSEG_DATASETS", "../shared/datasets")) / "deepcrack" / "train" / "masks"
    masks = sorted(root.glob("*.png"))[:80]
    if not masks:
        pytest.skip(f"no masks under {root} (set CRACKSEG_DATASETS)")
    for path in masks:
        mask = np.asarray(Image.open(path).convert("L")) > 127
        assert (thin(mask) == _lee(mask)).all(), path.name
