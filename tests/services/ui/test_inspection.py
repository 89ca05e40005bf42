"""The Inspect page's logic: re-thresholding, measurements in px and mm, tables, histogram, reference line."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.common.crackstats import crack_statistics
from services.ui.client import Prediction
from services.ui.inspection import (
    crack_table,
    line_length,
    mask_at,
    pixel_size,
    statistics_rows,
    view_at,
    width_histogram,
)


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def prediction() -> Prediction:
    """Two horizontal cracks: a 4-px band of p = 0.9 and a 2-px band of p = 0.4 (below the 0.5 threshold)."""
    levels = np.zeros((60, 200), np.uint8)
    levels[10:14, 20:180] = round(0.9 * 255)
    levels[40:42, 20:120] = round(0.4 * 255)
    mask = levels >= 0.5 * 255
    return Prediction(
        mask_png=png(mask.astype(np.uint8) * 255),
        probability_png=png(levels),
        width=200,
        height=60,
        threshold=0.5,
        statistics=crack_statistics(mask),
        inference_ms=5.0,
        model_version="3",
    )


def test_threshold_follows_the_probability_map(prediction: Prediction) -> None:
    assert mask_at(prediction, (60, 200), 0.5).sum() == 4 * 160, "the server's mask at its own threshold"
    assert mask_at(prediction, (60, 200), 0.3).sum() == 4 * 160 + 2 * 100, "the faint crack appears"
    assert mask_at(prediction, (60, 200), 0.95).sum() == 0
    low = view_at(prediction, (60, 200), 0.3, None, "asphalt")
    assert low.statistics.n_segments == 2 and low.statistics.skeleton_length_px == pytest.approx(260, abs=2)
    assert low.widths_px.size > 0
    high = view_at(prediction, (60, 200), 0.6, None, "asphalt")
    assert high.statistics.n_segments == 1


def test_without_a_probability_map_the_mask_is_the_servers(prediction: Prediction) -> None:
    plain = prediction.model_copy(update={"probability_png": None})
    assert mask_at(plain, (60, 200), 0.3).sum() == 4 * 160


def test_probability_map_of_the_wrong_size_is_an_error(prediction: Prediction) -> None:
    with pytest.raises(ValueError, match="probability map"):
        mask_at(prediction, (61, 200), 0.3)


def test_rows_and_table_in_px_then_mm(prediction: Prediction) -> None:
    px = view_at(prediction, (60, 200), 0.5, None, "asphalt").statistics
    assert dict(statistics_rows(px)) == {
        "Severity": "low",
        "Crack area": f"{4 * 160 / (60 * 200) * 100:.2f} %",
        "Length": "160 px",
        "Max width": "4.0 px",
        "Mean width": "4.0 px",
        "Cracks": "1",
    }
    assert set(crack_table(px)[0]) == {
        "id", "severity", "orientation", "length_px", "mean_width_px", "max_width_px", "branch_points", "angle_deg",
    }  # fmt: skip
    mm = view_at(prediction, (60, 200), 0.5, 2.5, "asphalt").statistics
    rows = dict(statistics_rows(mm))
    assert rows["Length"] == "160 px · 400.00 mm" and rows["Max width"] == "4.0 px · 10.00 mm"
    assert rows["Severity"] == "medium", "10 mm mean width on asphalt"
    table = crack_table(mm)
    assert table[0]["id"] == 1 and table[0]["max_width_mm"] == pytest.approx(10.0)


def test_width_histogram_counts_skeleton_pixels(prediction: Prediction) -> None:
    view = view_at(prediction, (60, 200), 0.3, None, "asphalt")
    bins = width_histogram(view.widths_px, None, bins=4)
    assert len(bins) == 4 and sum(b["skeleton_px"] for b in bins) == view.widths_px.size
    assert bins[0]["width"].endswith("px") and width_histogram(view.widths_px, 0.5)[0]["width"].endswith("mm")
    assert width_histogram(np.zeros(0, np.float32), None) == []


def test_reference_line_gives_the_pixel_size() -> None:
    canvas = {
        "objects": [{"type": "path"}, {"type": "line", "width": 30, "height": 40, "scaleX": 1, "scaleY": 1}]
    }
    # Drawn on a canvas shown at half the photo's size: 50 screen px are 100 photo px.
    assert line_length(canvas, scale=0.5) == pytest.approx(100)
    assert pixel_size(100, 250) == pytest.approx(2.5)
    assert line_length({"objects": []}, 1.0) is None and line_length(None, 1.0) is None
    with pytest.raises(ValueError, match="draw a reference line"):
        pixel_size(0, 10)
    with pytest.raises(ValueError, match="positive"):
        pixel_size(10, 0)
