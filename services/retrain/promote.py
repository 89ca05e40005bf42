"""The promotion gate. Registry operations (aliases, lineage tags, downloads) live in :mod:`ml.registry`.

The gate compares challenger and champion on the same fixed evaluation set: the challenger is promoted unless its
metric is lower than the champion's by more than the tolerance. With no champion at all, it is promoted.
"""

from __future__ import annotations

from pydantic import BaseModel


class GateDecision(BaseModel):
    """Whether to promote, and the reason in words (it becomes the ``rejection_reason`` tag when rejected)."""

    promote: bool
    reason: str
    metric: str
    challenger: float
    champion: float | None
    tolerance: float


def gate(metric: str, challenger: float, champion: float | None, tolerance: float) -> GateDecision:
    """Promote unless ``challenger < champion - tolerance`` (a negative tolerance demands an improvement)."""
    if not -1.0 <= tolerance <= 1.0:
        raise ValueError(f"tolerance must lie in [-1, 1], got {tolerance}")
    common = {"metric": metric, "challenger": challenger, "champion": champion, "tolerance": tolerance}
    if champion is None:
        return GateDecision(promote=True, reason="no champion yet", **common)
    if challenger < champion - tolerance:
        return GateDecision(
            promote=False,
            reason=(
                f"{metric} {challenger:.4f} is worse than the champion's {champion:.4f} "
                f"minus the tolerance {tolerance:g}"
            ),
            **common,
        )
    return GateDecision(
        promote=True,
        reason=f"{metric} {challenger:.4f} vs champion {champion:.4f} (tolerance {tolerance:g})",
        **common,
    )
