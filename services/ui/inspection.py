"""What the Inspect page computes, as plain functions (no Streamlit): re-thresholding from the probability map,
the measurements at that threshold, the per-crack table, the width histogram and the reference-line calibration.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from services.common.crackstats import CrackStatistics, statistics_from
from services.common.measure import measure
from services.common.severity import Surface
from services.ui.client import Prediction
from services.ui.overlay import decode_mask


@dataclass(frozen=True)
class View:
    """The mask at the chosen threshold and what it measures."""

    mask: np.ndarray  # (H, W) bool
    statistics: CrackStatistics
    widths_px: np.ndarray  # width at every skeleton pixel of the kept cracks
    threshold: float


def decode_levels(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """The probability map PNG as ``(H, W) uint8`` levels, ``round(p · 255)``."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            levels = np.asarray(img.convert("L"))
    except OSError as e:
        raise ValueError(f"the probability map is not a readable PNG: {e}") from e
    if levels.shape != shape:
        raise ValueError(f"the probability map is {levels.shape[::-1]} but the photo {shape[::-1]}")
    return levels


def mask_at(prediction: Prediction, shape: tuple[int, int], threshold: float) -> np.ndarray:
    """The crack mask at ``threshold``: the predictor's own mask at its threshold, else ``p ≥ threshold`` from the
    probability map (8-bit, so pixels within half a level of the threshold may differ from the server's)."""
    if prediction.probability_png is None or math.isclose(threshold, prediction.threshold, abs_tol=1e-9):
        return decode_mask(prediction.mask_png, shape=shape)
    return decode_levels(prediction.probability_png, shape) >= threshold * 255.0


def view_at(
    prediction: Prediction,
    shape: tuple[int, int],
    threshold: float,
    mm_per_px: float | None,
    surface: Surface,
) -> View:
    mask = mask_at(prediction, shape, threshold)
    m = measure(mask)
    return View(mask, statistics_from(m, mm_per_px, surface), m.widths_px, threshold)


def statistics_rows(stats: CrackStatistics) -> list[tuple[str, str]]:
    """The headline numbers as (label, value) pairs; mm beside px when calibrated."""

    def both(px: float, mm: float | None, digits: int) -> str:
        return f"{px:.{digits}f} px" + (f" · {mm:.2f} mm" if mm is not None else "")

    return [
        ("Severity", stats.severity),
        ("Crack area", f"{stats.crack_ratio * 100:.2f} %"),
        ("Length", both(stats.skeleton_length_px, stats.skeleton_length_mm, 0)),
        ("Max width", both(stats.max_width_px, stats.max_width_mm, 1)),
        ("Mean width", both(stats.mean_width_px, stats.mean_width_mm, 1)),
        ("Cracks", str(stats.n_segments)),
    ]


def crack_table(stats: CrackStatistics) -> list[dict[str, Any]]:
    """One row per crack, ids as drawn on the overlay; mm columns only when calibrated."""
    calibrated = stats.mm_per_px is not None
    rows = []
    for c in stats.cracks:
        row: dict[str, Any] = {
            "id": c.id,
            "severity": c.severity,
            "orientation": c.orientation,
            "length_px": c.length_px,
            "mean_width_px": c.mean_width_px,
            "max_width_px": c.max_width_px,
        }
        if calibrated:
            row |= {
                "length_mm": c.length_mm,
                "mean_width_mm": c.mean_width_mm,
                "max_width_mm": c.max_width_mm,
            }
        row |= {"branch_points": c.n_branch_points, "angle_deg": c.angle_deg}
        rows.append(row)
    return rows


def width_histogram(widths_px: np.ndarray, mm_per_px: float | None, bins: int = 20) -> list[dict[str, Any]]:
    """Skeleton length per width bin (each skeleton pixel ≈ one pixel of crack), in mm when calibrated."""
    if widths_px.size == 0:
        return []
    scale, unit = (mm_per_px, "mm") if mm_per_px is not None else (1.0, "px")
    values = widths_px.astype(np.float64) * scale
    counts, edges = np.histogram(values, bins=bins)
    return [
        {"width": f"{lo:.2f}–{hi:.2f} {unit}", "from": float(lo), "skeleton_px": int(n)}
        for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


def line_length(canvas_json: dict[str, Any] | None, scale: float) -> float | None:
    """Length in photo pixels of the last straight line drawn on a canvas shown at ``scale`` × photo size."""
    if not canvas_json:
        return None
    lines = [o for o in canvas_json.get("objects", []) if o.get("type") == "line"]
    if not lines:
        return None
    line = lines[-1]
    # fabric.js keeps a line's extent in width/height, stretched by scaleX/scaleY when resized.
    dx = float(line.get("width", 0.0)) * float(line.get("scaleX", 1.0))
    dy = float(line.get("height", 0.0)) * float(line.get("scaleY", 1.0))
    length = math.hypot(dx, dy) / scale
    return length if length > 0 else None


def pixel_size(reference_px: float, reference_mm: float) -> float:
    """mm per pixel from a reference of known length."""
    if not reference_px > 0:
        raise ValueError("draw a reference line on the photo first")
    if not reference_mm > 0:
        raise ValueError(f"the reference length must be a positive number of mm, got {reference_mm}")
    return reference_mm / reference_px
