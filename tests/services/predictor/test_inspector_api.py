"""``/predict``'s inspector options (probability map, pixel size, surface) and feedback attributed to the
version that made the mask the person saw. In-process with a tiny real model."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from services.common.feedback import FeedbackStore
from services.common.measure import measure
from tests.services.predictor.samples import png_bytes


def _png(data: str | bytes) -> np.ndarray:
    raw = base64.b64decode(data) if isinstance(data, str) else data
    return np.asarray(Image.open(io.BytesIO(raw)))


def test_probability_map_rethresholds_to_the_mask(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    plain = client.post("/predict", files={"file": ("a.jpg", jpeg)}).json()
    assert plain["probability_png"] is None, "only on request: it costs a second PNG"
    body = client.post("/predict?probabilities=true", files={"file": ("a.jpg", jpeg)}).json()
    probs = _png(body["probability_png"])
    mask = _png(body["mask_png"]) > 0
    assert probs.dtype == np.uint8 and probs.shape == mask.shape == (64, 96)
    # The mask is p >= threshold; 8-bit rounding may move pixels within half a level of the threshold only.
    level = body["threshold"] * 255
    rethresholded = probs >= level
    disagree = rethresholded != mask
    assert np.all(np.abs(probs[disagree].astype(float) - level) <= 0.5)
    assert body["model_version"] == "1"


def test_pixel_size_and_surface_calibrate_the_statistics(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    body = client.post("/predict?pixel_size_mm=0.5&surface=concrete", files={"file": ("a.jpg", jpeg)}).json()
    stats = body["statistics"]
    assert stats["mm_per_px"] == 0.5 and stats["surface"] == "concrete"
    assert abs(stats["skeleton_length_mm"] - stats["skeleton_length_px"] * 0.5) < 0.01
    assert "concrete" in stats["severity_rule"]
    # The statistics are the shared measurement of the returned mask.
    m = measure(_png(body["mask_png"]) > 0)
    assert stats["n_segments"] == len(m.cracks) == len(stats["cracks"])
    uncalibrated = client.post("/predict", files={"file": ("a.jpg", jpeg)}).json()["statistics"]
    assert uncalibrated["mm_per_px"] is None and uncalibrated["severity_rule"].startswith("uncalibrated")


def test_bad_pixel_size_or_surface_is_422(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/predict?pixel_size_mm=0", files={"file": ("a", jpeg)}).status_code == 422
    assert client.post("/predict?surface=gravel", files={"file": ("a", jpeg)}).status_code == 422


def test_feedback_stores_the_shown_mask_and_its_version(client, settings, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    shown = np.zeros((64, 96), np.uint8)
    shown[30:33, 10:80] = 255
    r = client.post(
        "/save-for-retrain",
        files={"file": ("a.jpg", jpeg), "predicted": ("p.png", png_bytes(shown), "image/png")},
        data={"verdict": "missed_cracks", "model_version": "41"},
    )
    assert r.status_code == 200, r.text
    store = FeedbackStore(settings.feedback_dir)
    record = store.get(r.json()["id"])
    assert record is not None and record.model_version == "41", "the version that made the shown mask"
    assert record.predicted_mask_file is not None  # content-addressed: predicted/<id>-<sha256[:16]>.png
    stored = _png(store.path(record.predicted_mask_file).read_bytes())
    assert np.array_equal(stored > 0, shown > 0)


def test_feedback_needs_mask_and_version_together(client, jpeg: bytes) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/save-for-retrain", files={"file": ("a", jpeg)}, data={"model_version": "3"})
    assert r.status_code == 400 and "together" in r.json()["error"]
    wrong_size = png_bytes(np.zeros((10, 10), np.uint8))
    r = client.post(
        "/save-for-retrain",
        files={"file": ("a", jpeg), "predicted": ("p.png", wrong_size, "image/png")},
        data={"model_version": "3"},
    )
    assert r.status_code == 400 and "must match" in r.json()["error"]
