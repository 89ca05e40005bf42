"""Crack geometry on drawn shapes of known length and width (lines at many angles and widths, an L, a Y, a ring)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.common.measure import measure
from tests.helpers.shapes import line_at, ring, segment

ANGLES = [0, 10, 22.5, 30, 45, 60, 77, 90, 135, 160]


@pytest.mark.parametrize("width", [3, 5, 8])
@pytest.mark.parametrize("angle", ANGLES)
def test_straight_line_length_and_width(angle: float, width: int) -> None:
    mask = line_at(angle, 300, width)
    (crack,) = measure(mask).cracks
    assert crack.length_px == pytest.approx(300, rel=0.02)
    # A rasterised band is as wide as its pixels say: at 45° pixel centres sit on lines 0.71 px apart, so a
    # nominal 3-px band holds 3.54 px of area per unit length. Widths are checked against the raster's width
    # (the axis-aligned test below checks them against exact nominal widths).
    raster_width = mask.sum() / 300
    assert abs(raster_width - width) < 0.6
    assert crack.max_width_px == pytest.approx(raster_width, abs=0.5)  # distance transform on the skeleton
    assert crack.mean_width_px == pytest.approx(raster_width, abs=0.5)
    assert crack.n_branch_points == 0


@pytest.mark.parametrize("angle", ANGLES)
def test_one_pixel_line_length(angle: float) -> None:
    (crack,) = measure(line_at(angle, 300, 1)).cracks
    assert crack.length_px == pytest.approx(300, rel=0.02)
    assert crack.mean_width_px == pytest.approx(1, abs=0.5)


def test_the_issue_diagonal_is_no_longer_over_measured() -> None:
    # The old 8-chain count gave 463.6 px for a straight 438-px diagonal (5.8 % over).
    (crack,) = measure(line_at(22.5, 438, 2)).cracks
    assert crack.length_px == pytest.approx(438, rel=0.02)


@pytest.mark.parametrize("width", range(1, 9))
def test_axis_aligned_width_follows_the_half_pixel_convention(width: int) -> None:
    # Odd widths have one centre row, even widths two: both must read as the drawn width, not 2·d or 2·d − 1.
    mask = np.zeros((60, 400), dtype=bool)
    mask[20 : 20 + width, 50:350] = True
    (crack,) = measure(mask).cracks
    assert crack.length_px == pytest.approx(300, abs=1)
    assert crack.max_width_px == pytest.approx(width, abs=0.01)
    assert crack.mean_width_px == pytest.approx(width, abs=0.05)
    assert measure(mask.T).cracks[0].max_width_px == pytest.approx(width, abs=0.01)


def test_l_shape_counts_its_corner_once() -> None:
    mask = np.zeros((400, 400), dtype=bool)
    mask[50:53, 50:300] = True  # 250 px across
    mask[50:350, 297:300] = True  # 300 px down, sharing a 3×3 corner
    (crack,) = measure(mask).cracks
    assert crack.length_px == pytest.approx(250 + 300 - 3, rel=0.02)
    assert crack.mean_width_px == pytest.approx(3, abs=0.5)
    assert crack.n_branch_points == 0


def test_y_has_one_branch_point_and_its_arms_length() -> None:
    shape = (400, 400)
    arms = [(50, 200), (300, 300), (300, 100)]
    mask = np.zeros(shape, dtype=bool)
    for end in arms:
        mask |= segment(shape, (200, 200), end, 4)
    (crack,) = measure(mask).cracks
    truth = sum(math.dist((200, 200), end) for end in arms)
    assert crack.length_px == pytest.approx(truth, rel=0.02)
    assert crack.n_branch_points == 1
    assert crack.mean_width_px == pytest.approx(4, abs=0.5)


@pytest.mark.parametrize(("radius", "width"), [(60, 3), (100, 5)])
def test_ring_circumference_and_closed_cell(radius: float, width: float) -> None:
    (crack,) = measure(ring(300, radius, width)).cracks
    assert crack.length_px == pytest.approx(2 * math.pi * radius, rel=0.02)
    assert crack.mean_width_px == pytest.approx(width, abs=0.5)
    assert crack.orientation == "network", "a closed cell is a network crack"


@pytest.mark.parametrize(
    ("angle", "expected"),
    [
        (0, "transverse"),
        (20, "transverse"),
        (45, "diagonal"),
        (135, "diagonal"),
        (70, "longitudinal"),
        (90, "longitudinal"),
    ],
)
def test_orientation_classes(angle: float, expected: str) -> None:
    (crack,) = measure(line_at(angle, 200, 3)).cracks
    assert crack.orientation == expected
    assert crack.angle_deg == pytest.approx(angle, abs=2)


def test_grid_is_a_network_with_branch_points() -> None:
    mask = np.zeros((300, 300), dtype=bool)
    for k in (50, 150, 250):
        mask[k : k + 3, 20:280] = True
        mask[20:280, k : k + 3] = True
    (crack,) = measure(mask).cracks
    assert crack.orientation == "network"
    assert crack.n_branch_points == 9


def test_ids_longest_first_labels_bbox_and_noise() -> None:
    mask = np.zeros((100, 200), dtype=bool)
    mask[10:12, 20:60] = True  # 40 px
    mask[50:53, 30:180] = True  # 150 px
    mask[90, 190] = True  # a speck: not a crack
    m = measure(mask)
    assert [round(c.length_px) for c in m.cracks] == [150, 40]
    assert m.cracks[0].bbox == (30, 50, 180, 53)
    assert m.cracks[1].bbox == (20, 10, 60, 12)
    assert m.labels[51, 100] == 1 and m.labels[11, 30] == 2 and m.labels[90, 190] == 0
    assert m.crack_pixels == 2 * 40 + 3 * 150 + 1
    assert m.total_length_px == pytest.approx(190, abs=1)
    assert m.widths_px.size == pytest.approx(190, abs=4), "one width per skeleton pixel of the kept cracks"


def test_empty_and_bad_input() -> None:
    m = measure(np.zeros((30, 40), dtype=bool))
    assert (m.cracks, m.crack_ratio, m.total_length_px, m.max_width_px) == ((), 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="expected an"):
        measure(np.zeros((2, 2, 2), dtype=bool))
    with pytest.raises(ValueError, match="min_length_px"):
        measure(np.zeros((4, 4), dtype=bool), min_length_px=-1)


def test_crack_touching_the_image_border_is_measured_to_the_border() -> None:
    mask = np.zeros((50, 100), dtype=bool)
    mask[0:4, :] = True
    (crack,) = measure(mask).cracks
    assert crack.length_px == pytest.approx(100, abs=1)
    assert crack.max_width_px == pytest.approx(4, abs=0.01)
