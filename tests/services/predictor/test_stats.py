"""Crack statistics: pixel and millimetre numbers, and severity by surface rule, on masks of known geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from services.common.severity import RULES_ENV, SeverityRule, load_table, worst
from services.predictor.stats import crack_statistics


def bar(width: int, length: int = 300) -> np.ndarray:
    mask = np.zeros((60, length + 40), dtype=bool)
    mask[20 : 20 + width, 20 : 20 + length] = True
    return mask


def test_empty_mask_is_none() -> None:
    s = crack_statistics(np.zeros((50, 80), dtype=bool), mm_per_px=0.5)
    assert (s.crack_ratio, s.skeleton_length_px, s.n_segments, s.severity) == (0.0, 0.0, 0, "none")
    assert s.cracks == [] and s.skeleton_length_mm == 0.0


def test_pixel_numbers_without_calibration() -> None:
    s = crack_statistics(bar(3))
    assert s.crack_ratio == pytest.approx(3 * 300 / (60 * 340), abs=1e-6)
    assert s.skeleton_length_px == pytest.approx(300, abs=1)
    assert (s.max_width_px, s.mean_width_px, s.n_segments) == (3.0, 3.0, 1)
    assert s.mm_per_px is None and s.skeleton_length_mm is None and s.max_width_mm is None
    assert s.cracks[0].length_mm is None
    assert s.severity == "low" and "uncalibrated" in s.severity_rule


def test_millimetres_scale_every_number() -> None:
    s = crack_statistics(bar(4), mm_per_px=0.25)
    assert s.skeleton_length_mm == pytest.approx(75.0, abs=0.3)
    assert s.max_width_mm == pytest.approx(1.0) and s.mean_width_mm == pytest.approx(1.0, abs=0.01)
    crack = s.cracks[0]
    assert crack.length_mm == pytest.approx(crack.length_px * 0.25, abs=1e-3)
    assert crack.max_width_mm == pytest.approx(1.0)
    assert crack.bbox == [20, 20, 320, 24] and crack.orientation == "transverse"


@pytest.mark.parametrize(
    ("width_px", "mm_per_px", "surface", "expected"),
    [
        # asphalt, ASTM D6433 style, mean width: < 10 mm low, 10-76 mm medium, > 76 mm high
        (4, 2.0, "asphalt", "low"),  # 8 mm
        (5, 2.0, "asphalt", "medium"),  # 10 mm: the boundary is medium
        (8, 9.5, "asphalt", "medium"),  # 76 mm
        (8, 10.0, "asphalt", "high"),  # 80 mm
        # concrete, ACI 224R style, max width: < 0.3 mm low, 0.3-1.0 mm medium, > 1.0 mm high
        (2, 0.1, "concrete", "low"),  # 0.2 mm
        (3, 0.1, "concrete", "medium"),  # 0.3 mm
        (6, 0.2, "concrete", "high"),  # 1.2 mm
    ],
)
def test_severity_by_surface_in_mm(width_px: int, mm_per_px: float, surface: str, expected: str) -> None:
    s = crack_statistics(bar(width_px), mm_per_px=mm_per_px, surface=surface)  # type: ignore[arg-type]
    assert s.severity == expected
    assert surface in s.severity_rule and "mm" in s.severity_rule


@pytest.mark.parametrize(("width_px", "expected"), [(3, "low"), (5, "medium"), (12, "medium"), (14, "high")])
def test_uncalibrated_pixel_rule(width_px: int, expected: str) -> None:
    s = crack_statistics(bar(width_px), surface="concrete")
    assert s.severity == expected and s.severity_rule.startswith("uncalibrated")


def test_photo_severity_is_the_worst_crack() -> None:
    mask = bar(2)
    mask[40:52, 20:320] = True  # a second, 12-px-wide crack
    s = crack_statistics(mask, mm_per_px=0.1, surface="concrete")
    assert sorted(c.severity for c in s.cracks) == ["high", "low"]
    assert s.severity == "high"
    assert worst([]) == "none" and worst(["low", "medium", "low"]) == "medium"


def test_bad_pixel_size_and_surface() -> None:
    with pytest.raises(ValueError, match="pixel size"):
        crack_statistics(bar(2), mm_per_px=0.0)
    with pytest.raises(ValueError, match="unknown surface"):
        crack_statistics(bar(2), mm_per_px=1.0, surface="gravel")  # type: ignore[arg-type]


def test_rules_table_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = load_table()
    custom = shipped.model_copy(
        update={
            "asphalt": SeverityRule(
                unit="mm", width="mean", medium_from=1, high_above=2, reference="strict asphalt"
            )
        }
    )
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(custom.model_dump()))
    monkeypatch.setenv(RULES_ENV, str(path))
    s = crack_statistics(bar(3), mm_per_px=1.0)  # 3 mm: low by the shipped rule, high by this one
    assert (s.severity, s.severity_rule) == ("high", "strict asphalt")
    monkeypatch.delenv(RULES_ENV)
    assert crack_statistics(bar(3), mm_per_px=1.0).severity == "low"


def test_invalid_rules_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("asphalt: {unit: mm}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        load_table(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_table(tmp_path / "missing.yaml")
    swapped = load_table().model_dump()
    swapped["concrete"]["medium_from"], swapped["concrete"]["high_above"] = 2.0, 1.0
    (tmp_path / "swapped.yaml").write_text(yaml.safe_dump(swapped))
    with pytest.raises(ValueError, match="high_above"):
        load_table(tmp_path / "swapped.yaml")
