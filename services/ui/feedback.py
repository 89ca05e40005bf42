"""What the Correct page sends, and how the feedback backlog is shown; plain functions, no Streamlit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from services.ui.client import FeedbackStats
from services.ui.overlay import apply_canvas_edits, decode_mask, has_edits

VERDICT_LABELS: dict[str, str] = {
    "correct": "Correct: the mask is right",
    "missed_cracks": "Missed cracks",
    "false_cracks": "False cracks",
    "other": "Other",
}


@dataclass(frozen=True)
class MaskChoice:
    """The mask to send with the feedback (``None``: verdict only) and where it came from."""

    mask: np.ndarray | None
    source: Literal["upload", "canvas", "prediction"] | None
    note: str


def choose_mask(
    verdict: str,
    predicted: np.ndarray,
    canvas_rgba: np.ndarray | None = None,
    uploaded_mask: bytes | None = None,
) -> MaskChoice:
    """Pick the label to send: an uploaded mask, else the canvas edits, else the prediction when it is correct.

    Raises:
        ValueError: The uploaded mask is unreadable or not the size of the image.
    """
    if verdict not in VERDICT_LABELS:
        raise ValueError(f"unknown verdict {verdict!r}; valid: {', '.join(VERDICT_LABELS)}")
    if uploaded_mask:
        mask = decode_mask(uploaded_mask, shape=predicted.shape)
        return MaskChoice(mask, "upload", f"Sending the uploaded mask ({int(mask.sum())} crack pixels).")
    if has_edits(canvas_rgba):
        mask = apply_canvas_edits(predicted, canvas_rgba)
        changed = int((mask != predicted).sum())
        return MaskChoice(mask, "canvas", f"Sending the corrected mask ({changed} pixels changed).")
    if verdict == "correct":
        return MaskChoice(predicted.astype(bool), "prediction", "Sending the predicted mask as the label.")
    return MaskChoice(
        None,
        None,
        "No correction drawn: only the verdict is sent, and it will not be used for training. "
        "Paint or upload a corrected mask to make it a training label.",
    )


@dataclass(frozen=True)
class Backlog:
    """Labelled feedback collected since the last retraining, against the threshold that triggers the next."""

    count: int
    threshold: int

    @property
    def fraction(self) -> float:
        return min(1.0, self.count / self.threshold)

    @property
    def text(self) -> str:
        if self.count >= self.threshold:
            return f"{self.count} / {self.threshold} labelled images: a retraining is due."
        return f"{self.count} / {self.threshold} labelled images until the next retraining."


def backlog(stats: FeedbackStats, default_threshold: int) -> Backlog:
    """The backlog from ``/v1/feedback/stats`` (its ``threshold`` wins over the UI's configured default)."""
    threshold = stats.threshold if stats.threshold and stats.threshold > 0 else default_threshold
    return Backlog(count=stats.labelled_since_watermark, threshold=threshold)
