"""Crack statistics on masks whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.predictor.stats import crack_statistics, severity_of


def test_empty_mask_is_none() -> None:
    s = crack_statistics(np.zeros((50, 80), dtype=bool))
    assert (s.crack_ratio, s.skeleton_length_px, s.n_segments, s.severity) == (0.0, 0.0, 0, "none")


def test_horizontal_line_three_pixels_wide() -> None:
    mask = np.zeros((200, 400), dtype=bool)
    mask[99:102, 20:180] = True  # 3 px wide, 160 px long
    s = crack_statistics(mask)
    assert s.crack_ratio == pytest.approx(3 * 160 / (200 * 400), abs=1e-6)
    assert s.skeleton_length_px == pytest.approx(159, abs=4)
    assert s.max_width_px == pytest.approx(3.0)
    assert s.mean_width_px == pytest.approx(3.0, abs=0.2)
    assert s.n_segments == 1
    assert s.severity == "low"


def test_diagonal_line_length_counts_root_two() -> None:
    mask = np.eye(100, dtype=bool)
    s = crack_statistics(mask)
    assert s.skeleton_length_px == pytest.approx(99 * math.sqrt(2), rel=1e-3)
    assert s.max_width_px == pytest.approx(1.0)


def test_segments_ignore_specks() -> None:
    mask = np.zeros((100, 100), dtype=bool)
    mask[10, 5:60] = True
    mask[50:53, 10:90] = True
    mask[90, 90] = True  # a speck, not a crack
    assert crack_statistics(mask).n_segments == 2


def test_wide_crack_is_high() -> None:
    mask = np.zeros((200, 300), dtype=bool)
    mask[90:104, 10:290] = True  # 14 px wide
    s = crack_statistics(mask)
    assert s.max_width_px >= 12 and s.severity == "high"


@pytest.mark.parametrize(
    ("max_width", "ratio", "length", "expected"),
    [
        (0, 0, 5, "none"),
        (2, 0.001, 50, "low"),
        (6, 0.001, 50, "medium"),
        (2, 0.02, 50, "medium"),
        (2, 0.001, 2000, "medium"),
        (13, 0.001, 50, "high"),
        (2, 0.06, 50, "high"),
    ],
)
def test_severity_rules(max_width: float, ratio: float, length: float, expected: str) -> None:
    assert severity_of(max_width, ratio, length, 480, 640) == expected


def test_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="expected an"):
        crack_statistics(np.zeros((2, 2, 2), dtype=bool))


def test_isolated_pixel_counts_one_and_is_noise() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[5, 5] = True
    s = crack_statistics(mask)
    assert (s.skeleton_length_px, s.max_width_px, s.n_segments, s.severity) == (1.0, 1.0, 0, "none")
