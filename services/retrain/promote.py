"""The promotion gate. Registry operations (aliases, lineage tags, downloads) live in :mod:`ml.registry`.

The gate judges what users care about, with two conditions, both at each model's **served threshold** (the one in
its config.json, picked on data that does not judge it: no set that judges tunes a threshold):

* **feedback**: on the seeded slice of the feedback held back from training, the challenger must beat the champion
  by more than ``min_gain`` (default 0: strictly better). A challenger that learned nothing fails here.
* **base**: on the fixed base evaluation set, it must not lose more than ``tolerance`` (default 0.01). A challenger
  that learned the users' surface but forgot the base fails here.

With no champion at all the challenger is promoted; with no held-back feedback (a single labelled photo) only the
base condition can be judged, and the reason says so.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class GateCheck(BaseModel):
    """One condition of the gate and its numbers."""

    name: str  # "feedback" or "base"
    metric: str
    challenger: float
    champion: float | None
    passed: bool
    reason: str


class GateDecision(BaseModel):
    """Whether to promote, the reason in words (the ``rejection_reason`` tag when rejected) and every check."""

    promote: bool
    reason: str
    metric: str
    tolerance: float
    min_gain: float
    checks: list[GateCheck]

    def tags(self) -> dict[str, str]:
        """The decision and its numbers as registry version tags (``gate_*``), for the Models page."""
        tags = {"gate_decision": "promote" if self.promote else "reject", "gate_reason": self.reason}
        for check in self.checks:
            tags[f"gate_{check.name}_challenger"] = f"{check.challenger:.4f}"
            if check.champion is not None:
                tags[f"gate_{check.name}_champion"] = f"{check.champion:.4f}"
        return tags


def _check_range(name: str, value: float) -> None:
    if not -1.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [-1, 1], got {value}")


def gate(
    metric: str,
    *,
    base: tuple[float, float | None],
    feedback: tuple[float, float] | None,
    tolerance: float = 0.01,
    min_gain: float = 0.0,
) -> GateDecision:
    """Decide on a challenger from its and the champion's ``metric`` on the base set and the held-back feedback.

    Args:
        metric: the metric's name (for the reason).
        base: (challenger, champion) on the fixed base evaluation set; champion ``None`` = no champion yet.
        feedback: (challenger, champion) on the held-back feedback, or ``None`` when nothing was held back.
        tolerance: the largest allowed drop on the base set (negative: demand an improvement there).
        min_gain: the challenger must beat the champion on the feedback by more than this.
    """
    _check_range("tolerance", tolerance)
    _check_range("min_gain", min_gain)
    common: dict[str, Any] = {"metric": metric, "tolerance": tolerance, "min_gain": min_gain}
    base_challenger, base_champion = base
    if base_champion is None:
        check = GateCheck(
            name="base",
            metric=metric,
            challenger=base_challenger,
            champion=None,
            passed=True,
            reason="no champion",
        )
        return GateDecision(promote=True, reason="no champion yet", checks=[check], **common)
    checks = []
    if feedback is not None:
        fb_challenger, fb_champion = feedback
        passed = fb_challenger - fb_champion > min_gain
        verb = "beats" if passed else "does not beat"
        checks.append(
            GateCheck(
                name="feedback",
                metric=metric,
                challenger=fb_challenger,
                champion=fb_champion,
                passed=passed,
                reason=(
                    f"held-back feedback {metric} {fb_challenger:.4f} {verb} the champion's {fb_champion:.4f}"
                    + (f" by more than {min_gain:g}" if min_gain else "")
                ),
            )
        )
    passed = base_challenger >= base_champion - tolerance
    checks.append(
        GateCheck(
            name="base",
            metric=metric,
            challenger=base_challenger,
            champion=base_champion,
            passed=passed,
            reason=(
                f"base {metric} {base_challenger:.4f} vs the champion's {base_champion:.4f} "
                f"(tolerance {tolerance:g})"
                if passed
                else f"base {metric} {base_challenger:.4f} is worse than the champion's {base_champion:.4f} "
                f"minus the tolerance {tolerance:g}"
            ),
        )
    )
    promote = all(c.passed for c in checks)
    failed = [c.reason for c in checks if not c.passed]
    reason = "; ".join(failed) if failed else "; ".join(c.reason for c in checks)
    if feedback is None:
        reason += " (no feedback held back: only the base set was judged)"
    return GateDecision(promote=promote, reason=reason, checks=checks, **common)
