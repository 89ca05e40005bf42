"""Crack statistics and severity for the predictor's responses.

The builder is shared with the batch command and the UI (which re-measures after re-thresholding), so it lives
in :mod:`services.common.crackstats` (geometry: :mod:`services.common.measure`; rules:
:mod:`services.common.severity`). This module is the predictor's one import point for it.
"""

from __future__ import annotations

from services.common.crackstats import CrackRow, CrackStatistics, crack_statistics
from services.common.severity import SURFACES, Surface

__all__ = ["SURFACES", "CrackRow", "CrackStatistics", "Surface", "crack_statistics"]
