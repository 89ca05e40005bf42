"""Choosing the label to send, and the backlog shown against the retrain threshold."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.ui.client import FeedbackStats
from services.ui.feedback import backlog, choose_mask


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


PREDICTED = np.zeros((20, 30), bool)
PREDICTED[5, :] = True


def test_uploaded_mask_wins_over_canvas() -> None:
    uploaded = np.zeros((20, 30), np.uint8)
    uploaded[:, 3] = 255
    canvas = np.full((10, 15, 4), 255, np.uint8)
    choice = choose_mask("missed_cracks", PREDICTED, canvas, png(uploaded))
    assert choice.source == "upload" and choice.mask is not None
    assert np.array_equal(choice.mask, uploaded > 0)


def test_canvas_edits_are_applied_to_the_prediction() -> None:
    canvas = np.zeros((10, 15, 4), np.uint8)
    canvas[5, 0] = (255, 255, 255, 255)  # → image rows 10-11, cols 0-1
    choice = choose_mask("missed_cracks", PREDICTED, canvas)
    assert choice.source == "canvas" and choice.mask is not None
    assert int((choice.mask != PREDICTED).sum()) == 4 and "4 pixels changed" in choice.note


def test_correct_without_edits_sends_the_prediction_and_others_send_nothing() -> None:
    choice = choose_mask("correct", PREDICTED)
    assert choice.source == "prediction" and choice.mask is not None
    assert np.array_equal(choice.mask, PREDICTED)
    for verdict in ("missed_cracks", "false_cracks", "other"):
        nothing = choose_mask(verdict, PREDICTED, np.zeros((10, 15, 4), np.uint8))
        assert nothing.mask is None and "not be used for training" in nothing.note


def test_choose_mask_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown verdict 'great'"):
        choose_mask("great", PREDICTED)
    with pytest.raises(ValueError, match="same size"):
        choose_mask("other", PREDICTED, None, png(np.zeros((5, 5), np.uint8)))


def stats(labelled_since: int, threshold: int | None) -> FeedbackStats:
    return FeedbackStats(
        total=30,
        labelled=25,
        unlabelled=5,
        since_watermark=12,
        labelled_since_watermark=labelled_since,
        threshold=threshold,
    )


def test_backlog_uses_the_predictor_threshold_then_the_default() -> None:
    due = backlog(stats(25, 20), default_threshold=50)
    assert (due.count, due.threshold, due.fraction) == (25, 20, 1.0) and "retraining is due" in due.text
    waiting = backlog(stats(5, None), default_threshold=20)
    assert waiting.fraction == 0.25 and waiting.text == "5 / 20 labelled images until the next retraining."
