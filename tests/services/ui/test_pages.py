"""AppTest runs of every page with the predictor and registry clients swapped at their boundary."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from services.common.crackstats import CrackStatistics
from services.ui.client import RetrainOutcome
from services.ui.registry import ModelVersion
from tests.helpers.procs import REPO
from tests.services.ui.fakes import FakePredictor, FakeRegistry

MakeApp = Callable[[str | None], AppTest]
SAMPLE = "concrete_single_crack.jpg"


def texts(at: AppTest | Block, kind: str) -> str:
    return "\n".join(str(e.value) for e in getattr(at, kind))


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


# -- app shell ---------------------------------------------------------------------------------------------------
def test_sidebar_says_the_predictor_is_down_then_recovers(
    make_app: MakeApp, predictor: FakePredictor
) -> None:
    predictor.down = True
    at = make_app(None)
    no_exception(at)
    assert "not reachable" in texts(at.sidebar, "error")
    assert not at.sidebar.success

    # Failures are never cached: the next rerun asks again and shows the served model.
    predictor.down = False
    at.run()
    no_exception(at)
    assert "model v7" in texts(at.sidebar, "success")
    assert not at.sidebar.error


# -- inspect -----------------------------------------------------------------------------------------------------
def expected_statistics(data: bytes) -> CrackStatistics:
    """What the pages must show: the fake's real measurement of the photo (a fresh fake, so no call is counted)."""
    return FakePredictor().predict(data).statistics


def sample_bytes(name: str = SAMPLE) -> bytes:
    return (REPO / "services" / "ui" / "samples" / name).read_bytes()


def test_inspect_sample_shows_statistics_and_downloads(make_app: MakeApp, predictor: FakePredictor) -> None:
    at = make_app(None)
    assert at.info, "the empty page says what to do"
    at.multiselect[0].set_value([SAMPLE])
    at.button[0].click().run()
    no_exception(at)
    labels = {m.label: m.value for m in at.metric}
    assert set(labels) == {"Severity", "Crack area", "Length", "Max width", "Mean width", "Cracks"}
    expected = expected_statistics(sample_bytes())
    assert labels["Severity"] == expected.severity and labels["Cracks"] == str(expected.n_segments)
    assert labels["Length"] == f"{expected.skeleton_length_px:.0f} px"
    caption = texts(at, "caption")
    assert "Model v7" in caption and "12 ms" in caption and "uncalibrated" in caption
    assert "not a registered version" in caption
    assert predictor.calls.count("predict") == 1
    table = at.dataframe[0].value
    assert list(table["id"]) == list(range(1, expected.n_segments + 1))
    assert len(at.get("vega_lite_chart")) == 1, "the width histogram"

    # Changing the opacity re-renders from the cached prediction: no second inference.
    at.slider[1].set_value(0.8).run()
    no_exception(at)
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert captions == ["Original · 480×320 px", "Mask · threshold 0.50", "Overlay · opacity 0.80"]
    assert predictor.calls.count("predict") == 1


def test_threshold_slider_rethresholds_without_inference(make_app: MakeApp, predictor: FakePredictor) -> None:
    at = make_app(None)
    at.multiselect[0].set_value([SAMPLE])
    at.button[0].click().run()
    area = {m.label: m.value for m in at.metric}["Crack area"]
    at.slider[0].set_value(0.2).run()  # p ≥ 0.2: the fake's gray ≤ 204, far more pixels
    no_exception(at)
    lower = {m.label: m.value for m in at.metric}["Crack area"]
    assert float(lower.split()[0]) > float(area.split()[0])
    assert "Mask · threshold 0.20" in [img.proto.imgs[0].caption for img in at.get("image")]
    assert predictor.calls.count("predict") == 1, "no new inference"


def test_pixel_size_adds_millimetres_and_the_surface_rule(make_app: MakeApp) -> None:
    at = make_app(None)
    at.multiselect[0].set_value([SAMPLE])
    at.button[0].click().run()
    at.number_input[0].set_value(0.5).run()
    at.selectbox[0].set_value("concrete").run()
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    expected = expected_statistics(sample_bytes())
    assert (
        metrics["Length"]
        == f"{expected.skeleton_length_px:.0f} px · {expected.skeleton_length_px * 0.5:.2f} mm"
    )
    assert "concrete, ACI 224R style" in texts(at, "caption")
    assert "length_mm" in at.dataframe[0].value.columns


def test_reference_tool_asks_for_a_line_first(make_app: MakeApp) -> None:
    at = make_app(None)
    at.multiselect[0].set_value([SAMPLE])
    at.button[0].click().run()
    assert not any(n.label == "Its real length (mm)" for n in at.number_input), "no canvas until asked"
    at.toggle(key="reference-on").set_value(True).run()
    no_exception(at)
    assert "No line drawn yet." in texts(at, "caption")
    at.number_input(key="reference-mm").set_value(100.0).run()
    at.button(key="reference-apply").click().run()
    assert "draw a reference line on the photo first" in texts(at, "error")
    assert at.number_input[0].value == 0.0, "the pixel size is unchanged"


def test_inspect_shows_the_versions_headline_metrics(
    make_app: MakeApp, registry: FakeRegistry, predictor: FakePredictor
) -> None:
    registry.versions = [version(7, "promoted", 0.66, champion=True)]
    at = make_app(None)
    at.multiselect[0].set_value([SAMPLE])
    at.button[0].click().run()
    no_exception(at)
    assert "Model v7 (f1_ods 0.660 · precision 0.770)" in texts(at, "caption")


def test_inspect_without_the_registry_still_inspects(make_app: MakeApp, registry: FakeRegistry) -> None:
    registry.down = True
    at = make_app(None)
    at.multiselect[0].set_value([SAMPLE])
    at.button[0].click().run()
    no_exception(at)
    assert "metrics unavailable" in texts(at, "caption") and len(at.metric) == 6


def test_inspect_upload_several_images(make_app: MakeApp, predictor: FakePredictor) -> None:
    at = make_app(None)
    dark = np.zeros((40, 60, 3), np.uint8)
    light = np.full((30, 50, 3), 200, np.uint8)
    at.file_uploader[0].set_value(
        [("dark.png", png(dark), "image/png"), ("light.png", png(light), "image/png")]
    )
    at.button[0].click().run()
    no_exception(at)
    assert [h.value for h in at.subheader] == ["dark.png", "light.png"]
    severities = [m.value for m in at.metric if m.label == "Severity"]
    assert severities == [expected_statistics(png(dark)).severity, "none"] == ["high", "none"]
    assert predictor.calls.count("predict") == 2


def test_inspect_large_photo_is_shown_scaled_with_its_real_size(
    make_app: MakeApp, predictor: FakePredictor
) -> None:
    big = np.full((2400, 3600, 3), 190, np.uint8)
    big[1200:1203, :] = 10  # a 3-px crack across a 3600-px photo
    at = make_app(None)
    at.file_uploader[0].set_value(("big.png", png(big), "image/png"))
    at.button[0].click().run(timeout=60)
    no_exception(at)
    captions = [img.proto.imgs[0].caption for img in at.get("image")]
    assert captions[0] == "Original · 3600×2400 px"
    assert next(m.value for m in at.metric if m.label == "Crack area") == "0.12 %"


def test_inspect_rejects_a_file_that_is_not_an_image(make_app: MakeApp, predictor: FakePredictor) -> None:
    at = make_app(None)
    at.file_uploader[0].set_value(("notes.png", b"this is text", "image/png"))
    at.button[0].click().run()
    no_exception(at)
    assert "not an image" in texts(at, "error")
    assert "predict" not in predictor.calls


def test_inspect_says_when_the_predictor_is_down_and_recovers(
    make_app: MakeApp, predictor: FakePredictor
) -> None:
    predictor.down = True
    at = make_app(None)
    at.multiselect[0].set_value([SAMPLE])
    at.button[0].click().run()
    no_exception(at)
    assert "not reachable" in texts(at, "error")
    assert not at.metric

    predictor.down = False
    at.button(key="retry-0").click().run()
    no_exception(at)
    assert not at.main.error
    assert len(at.metric) == 6


# -- correct & send ----------------------------------------------------------------------------------------------
def open_correct_with_sample(make_app: MakeApp) -> AppTest:
    at = make_app("views/correct.py")
    no_exception(at)
    at.selectbox[0].set_value(SAMPLE)
    at.button[0].click().run()  # "Use this photo"
    no_exception(at)
    return at


def test_correct_verdict_correct_sends_the_prediction_as_label(
    make_app: MakeApp, predictor: FakePredictor
) -> None:
    at = open_correct_with_sample(make_app)
    assert "0 / 3" in texts(at, "caption") or any("0 / 3" in str(p.proto.text) for p in at.get("progress"))
    at.radio[0].set_value("correct")
    at.text_input[0].set_value("looks right")
    at.button(key="FormSubmitter:send-feedback-Send feedback").click().run()
    no_exception(at)
    assert len(predictor.saved) == 1
    sent = predictor.saved[0]
    assert sent.filename == SAMPLE and sent.verdict == "correct" and sent.comment == "looks right"
    assert sent.mask_png is not None
    mask = np.asarray(Image.open(io.BytesIO(sent.mask_png)))
    expected = np.asarray(Image.open(io.BytesIO(predictor.predict(sent.image).mask_png)))
    assert mask.shape == (320, 480) and np.array_equal(mask, expected)
    assert sent.image[:2] == b"\xff\xd8", "the original bytes are sent, not a re-encoding"
    assert sent.model_version == "7" and sent.predicted_png is not None, (
        "attributed to the shown mask's version"
    )
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(sent.predicted_png))), expected)
    assert "Stored concrete_single_crack.jpg as" in texts(at, "success")
    progress = [p.proto.text for p in at.get("progress")]
    assert any("1 / 3" in t for t in progress), progress


def test_correct_starts_from_the_mask_seen_at_the_inspect_threshold(
    make_app: MakeApp, predictor: FakePredictor
) -> None:
    at = make_app(None)
    at.multiselect[0].set_value([SAMPLE])
    at.button[0].click().run()
    at.slider[0].set_value(0.3).run()
    at.button(key="correct-0").click().run()
    no_exception(at)
    predictor.model_version = "8"  # the predictor moved on; the shown mask is still version 7's
    at.radio[0].set_value("correct")
    at.button(key="FormSubmitter:send-feedback-Send feedback").click().run()
    no_exception(at)
    sent = predictor.saved[0]
    gray = np.asarray(Image.open(io.BytesIO(sample_bytes())).convert("L"))
    seen = (255 - gray) >= 0.3 * 255
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(sent.mask_png or b""))) > 0, seen)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(sent.predicted_png or b""))) > 0, seen)
    assert sent.model_version == "7"
    assert predictor.calls.count("predict") == 1, "saving never re-runs inference"


def test_correct_requires_a_verdict(make_app: MakeApp, predictor: FakePredictor) -> None:
    at = open_correct_with_sample(make_app)
    at.button(key="FormSubmitter:send-feedback-Send feedback").click().run()
    assert "Choose a verdict" in texts(at, "error")
    assert predictor.saved == []


def test_correct_uploaded_mask_is_sent(make_app: MakeApp, predictor: FakePredictor) -> None:
    at = open_correct_with_sample(make_app)
    corrected = np.zeros((320, 480), np.uint8)
    corrected[100:110, :] = 255
    at.radio[0].set_value("missed_cracks")
    at.file_uploader[1].set_value(("fixed.png", png(corrected), "image/png"))
    at.button(key="FormSubmitter:send-feedback-Send feedback").click().run()
    no_exception(at)
    assert len(predictor.saved) == 1
    sent_mask = np.asarray(Image.open(io.BytesIO(predictor.saved[0].mask_png or b"")))
    assert np.array_equal(sent_mask > 0, corrected > 0)
    assert "uploaded mask" in texts(at, "caption")


def test_correct_rejects_a_mask_of_the_wrong_size(make_app: MakeApp, predictor: FakePredictor) -> None:
    at = open_correct_with_sample(make_app)
    at.radio[0].set_value("missed_cracks")
    at.file_uploader[1].set_value(("small.png", png(np.zeros((10, 10), np.uint8)), "image/png"))
    at.button(key="FormSubmitter:send-feedback-Send feedback").click().run()
    no_exception(at)
    assert "10×10 px but the image is 480×320 px" in texts(at, "error")
    assert predictor.saved == []


def test_correct_verdict_without_correction_sends_no_mask(
    make_app: MakeApp, predictor: FakePredictor
) -> None:
    at = open_correct_with_sample(make_app)
    at.radio[0].set_value("false_cracks")
    at.button(key="FormSubmitter:send-feedback-Send feedback").click().run()
    no_exception(at)
    assert predictor.saved[0].mask_png is None and predictor.saved[0].verdict == "false_cracks"
    assert "not be used for training" in texts(at, "caption")


def test_correct_predictor_down_then_back(make_app: MakeApp, predictor: FakePredictor) -> None:
    at = open_correct_with_sample(make_app)
    at.radio[0].set_value("correct")
    predictor.down = True
    at.button(key="FormSubmitter:send-feedback-Send feedback").click().run()
    no_exception(at)
    assert "not reachable" in texts(at, "error")
    assert predictor.saved == []

    predictor.down = False
    at.button(key="FormSubmitter:send-feedback-Send feedback").click().run()
    no_exception(at)
    assert len(predictor.saved) == 1
    assert not at.main.error


def test_correct_page_predictor_down_on_open_then_back(make_app: MakeApp, predictor: FakePredictor) -> None:
    predictor.down = True
    at = open_correct_with_sample(make_app)
    assert "not reachable" in texts(at.main, "error")
    assert not at.radio, "no verdict form without a prediction to correct"

    predictor.down = False
    next(b for b in at.button if b.label == "Try again").click().run()
    no_exception(at)
    assert not at.main.error
    assert at.radio[0].label == "Verdict"


def test_confirmation_belongs_to_the_photo_it_was_sent_for(
    make_app: MakeApp, predictor: FakePredictor
) -> None:
    at = open_correct_with_sample(make_app)
    at.radio[0].set_value("correct")
    at.button(key="FormSubmitter:send-feedback-Send feedback").click().run()
    assert at.success
    at.selectbox[0].set_value("asphalt_branching.jpg")
    at.button[0].click().run()
    no_exception(at)
    assert not at.main.success
    assert any("1 / 3" in p.proto.text for p in at.get("progress")), "the backlog still counts the sent photo"


def test_correct_from_inspect_opens_the_same_photo(make_app: MakeApp) -> None:
    at = make_app(None)
    at.multiselect[0].set_value(["asphalt_branching.jpg", SAMPLE])
    at.button[0].click().run()
    at.button(key="correct-1").click().run()
    no_exception(at)
    photo = next(s for s in at.selectbox if s.label == "Photo to correct")
    assert photo.value is not None and photo.value.name == SAMPLE


# -- models ------------------------------------------------------------------------------------------------------
def version(
    n: int, status: str, f1: float | None, *, champion: bool = False, feedback: int = 0
) -> ModelVersion:
    tags = {"status": status, "dataset_hash": f"{n:064x}", "feedback_count": str(feedback)}
    if f1 is not None:
        tags["f1_ods"] = str(f1)
    return ModelVersion(
        version=n,
        created_at=datetime(2026, 11, n, tzinfo=UTC),
        run_id=f"run{n}",
        tags=tags,
        aliases=("champion",) if champion else (),
        run_metrics={"precision": 0.7 + n / 100, "f1_at_0_5": 0.5},
    )


@pytest.fixture
def filled(registry: FakeRegistry, predictor: FakePredictor) -> None:
    registry.versions = [
        version(3, "challenger-rejected", 0.61, feedback=25),
        version(2, "promoted", 0.66, champion=True, feedback=20),
        version(1, "promoted", 0.64),
    ]
    predictor.last_retrain = RetrainOutcome(
        run="retrain-20261127", outcome="rejected", model_version="3", reason="f1_ods 0.61 < champion 0.66"
    )


@pytest.mark.usefixtures("filled")
def test_models_shows_champion_history_and_backlog(make_app: MakeApp) -> None:
    at = make_app("views/models.py")
    no_exception(at)
    assert "Champion: version 2" in texts(at, "subheader")
    metrics = {m.label: m.value for m in at.metric}
    assert (
        metrics["f1_ods"] == "0.660" and metrics["precision"] == "0.720" and metrics["f1_at_0_5"] == "0.500"
    )
    assert metrics["ois"] == "–"
    table = at.dataframe[0].value
    assert list(table["version"]) == [3, 2, 1]
    assert list(table["status"]) == ["challenger-rejected", "promoted", "promoted"]
    assert list(table["champion"]) == [False, True, False]
    assert list(table["feedback_count"]) == [25, 20, 0]
    assert "retrain-20261127" in texts(at, "warning") and "0.61 < champion" in texts(at, "warning")
    assert any("0 / 3" in p.proto.text for p in at.get("progress"))
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1, "quality by version chart"
    spec = charts[0].proto.spec
    assert "f1_ods" in spec and "status" in spec


def test_models_empty_registry(make_app: MakeApp) -> None:
    at = make_app("views/models.py")
    no_exception(at)
    assert "No version of the model 'crackseg'" in texts(at, "info")
    assert "No retraining has run yet" in texts(at, "info")


@pytest.mark.usefixtures("filled")
def test_models_mlflow_and_predictor_down_then_back(
    make_app: MakeApp, registry: FakeRegistry, predictor: FakePredictor
) -> None:
    registry.down = True
    predictor.down = True
    at = make_app("views/models.py")
    no_exception(at)
    errors = texts(at.main, "error")
    assert "Model registry unavailable" in errors and "mlflow.invalid" in errors
    assert "Feedback numbers unavailable" in errors

    registry.down = False
    predictor.down = False
    at.button[0].click().run()  # Refresh
    no_exception(at)
    assert not at.main.error
    assert "Champion: version 2" in texts(at, "subheader")
