"""The statistics the predictor returns, the batch command writes and the UI shows: one builder for all three.

Pixel numbers always; millimetre numbers too when a pixel size (mm per pixel) is given. Severity follows the
surface's rule in mm when calibrated, else the uncalibrated pixel rule, and ``severity_rule`` says which
(:mod:`services.common.severity`). Geometry is defined in :mod:`services.common.measure`.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from services.common.measure import Measurement, Orientation, measure
from services.common.severity import Severity, SeverityTable, Surface, load_table, worst


class CrackRow(BaseModel):
    """One crack; ``bbox`` is ``[x0, y0, x1, y1]`` in image pixels (``x1``, ``y1`` exclusive)."""

    id: int
    length_px: float
    mean_width_px: float
    max_width_px: float
    length_mm: float | None = None
    mean_width_mm: float | None = None
    max_width_mm: float | None = None
    orientation: Orientation
    angle_deg: float
    n_branch_points: int
    bbox: list[int]
    severity: Severity


class CrackStatistics(BaseModel):
    crack_ratio: float
    skeleton_length_px: float = Field(description="total crack length along the skeletons")
    max_width_px: float
    mean_width_px: float
    n_segments: int = Field(description="number of cracks (noise specks excluded)")
    severity: Severity
    severity_rule: str = Field(description="which rule graded the photo (surface and unit)")
    surface: Surface = "asphalt"
    mm_per_px: float | None = None
    skeleton_length_mm: float | None = None
    max_width_mm: float | None = None
    mean_width_mm: float | None = None
    n_branch_points: int = 0
    cracks: list[CrackRow] = Field(default_factory=list)


def _mm(value: float, mm_per_px: float | None) -> float | None:
    return None if mm_per_px is None else round(value * mm_per_px, 3)


def statistics_from(
    m: Measurement,
    mm_per_px: float | None = None,
    surface: Surface = "asphalt",
    table: SeverityTable | None = None,
) -> CrackStatistics:
    """Statistics of a measurement (see :func:`crack_statistics`)."""
    if mm_per_px is not None and not mm_per_px > 0:
        raise ValueError(f"the pixel size must be a positive number of mm per pixel, got {mm_per_px}")
    rule = (table or load_table()).rule(surface, calibrated=mm_per_px is not None)
    scale = mm_per_px if rule.unit == "mm" and mm_per_px is not None else 1.0
    rows = [
        CrackRow(
            id=c.id,
            length_px=round(c.length_px, 2),
            mean_width_px=round(c.mean_width_px, 2),
            max_width_px=round(c.max_width_px, 2),
            length_mm=_mm(c.length_px, mm_per_px),
            mean_width_mm=_mm(c.mean_width_px, mm_per_px),
            max_width_mm=_mm(c.max_width_px, mm_per_px),
            orientation=c.orientation,
            angle_deg=c.angle_deg,
            n_branch_points=c.n_branch_points,
            bbox=list(c.bbox),
            severity=rule.classify(c.mean_width_px * scale, c.max_width_px * scale),
        )
        for c in m.cracks
    ]
    return CrackStatistics(
        crack_ratio=round(m.crack_ratio, 6),
        skeleton_length_px=round(m.total_length_px, 2),
        max_width_px=round(m.max_width_px, 2),
        mean_width_px=round(m.mean_width_px, 2),
        n_segments=len(rows),
        severity=worst([r.severity for r in rows]),
        severity_rule=rule.reference,
        surface=surface,
        mm_per_px=mm_per_px,
        skeleton_length_mm=_mm(m.total_length_px, mm_per_px),
        max_width_mm=_mm(m.max_width_px, mm_per_px),
        mean_width_mm=_mm(m.mean_width_px, mm_per_px),
        n_branch_points=m.n_branch_points,
        cracks=rows,
    )


def crack_statistics(
    mask: np.ndarray,
    mm_per_px: float | None = None,
    surface: Surface = "asphalt",
    table: SeverityTable | None = None,
) -> CrackStatistics:
    """Measure an ``(H, W)`` crack mask and grade it.

    Args:
        mask: ``(H, W)`` bool (or non-zero = crack).
        mm_per_px: the pixel size; ``None`` when the photo is not calibrated (pixel rule, no mm numbers).
        surface: ``asphalt`` or ``concrete``: which rule grades the cracks when calibrated.
        table: the severity rules; ``None`` loads the configured table (:func:`load_table`).
    """
    return statistics_from(measure(mask), mm_per_px, surface, table)
