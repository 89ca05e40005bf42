"""The one real-browser test: Chromium (Debian's, driven by Playwright) against a running UI and predictor.

Upload a CrackForest photo, see the mask, move the threshold slider (re-thresholded in the UI, no new inference),
paint a missed crack on the canvas with the mouse, send it, and find the feedback record with the corrected mask,
the shown mask and its model version on disk; then run two photos on the Batch page and download the report.
A screenshot of each page goes to tests/artifacts/.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.procs import BIN, REPO, ManagedProcess, free_port, start_predictor

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ARTIFACTS = REPO / "tests" / "artifacts"
STARTER = REPO / "models" / "starter"
PHOTO = "004"  # a CrackForest test image with one long crack


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter model when it has been built, else a tiny random one (the test checks plumbing, not quality)."""
    if (STARTER / "config.json").is_file():
        return STARTER
    torch = pytest.importorskip("torch")
    from ml.checkpoint import ModelConfig, save_model
    from ml.models import create_model

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("model") / "tiny"
    save_model(create_model("attention_unet", base_width=4, depth=2), ModelConfig(base_width=4, depth=2), out)
    return out


@pytest.fixture(scope="module")
def registered(private_mlflow_server: str) -> str:
    """Two registered versions of ``crackseg`` in a real MLflow, v2 the champion, so the Models page has data."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    # registry_uri explicitly: another test may have set a global tracking URI that the registry would follow.
    ml = MlflowClient(tracking_uri=private_mlflow_server, registry_uri=private_mlflow_server)
    experiment = ml.create_experiment("ui-browser")
    ml.create_registered_model("crackseg")
    for n, (f1, status) in enumerate(
        [(0.58, "promoted"), (0.64, "promoted"), (0.61, "challenger-rejected")], 1
    ):
        run = ml.create_run(experiment)
        for key, value in {"f1_ods": f1, "f1_at_0_5": f1 - 0.05, "precision": 0.6, "recall": 0.7}.items():
            ml.log_metric(run.info.run_id, key, value)
        ml.set_terminated(run.info.run_id)
        tags = {
            "f1_ods": str(f1),
            "status": status,
            "dataset_hash": f"{n:02d}" * 32,
            "feedback_count": str(20 * n),
        }
        ml.create_model_version(
            "crackseg", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags
        )
    ml.set_registered_model_alias("crackseg", "champion", "2")
    return private_mlflow_server


@pytest.fixture(scope="module")
def feedback_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feedback")


@pytest.fixture(scope="module")
def predictor_url(
    model_dir: Path, feedback_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    url, proc = start_predictor(
        model_dir,
        tmp_path_factory.mktemp("logs") / "predictor.log",
        {
            "CRACKSEG_FEEDBACK_DIR": str(feedback_dir),
            "CRACKSEG_RETRAIN_THRESHOLD": "5",
            "CRACKSEG_MODEL_VERSION": "2",
            "CRACKSEG_THREADS": "1",
            "OMP_WAIT_POLICY": "PASSIVE",
        },
    )
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def ui_url(predictor_url: str, registered: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = ManagedProcess(
        [str(BIN / "crackseg"), "ui", "--port", str(port), "--address", "127.0.0.1"],
        log_path=tmp_path_factory.mktemp("logs") / "ui.log",
        env={"PREDICTOR_URL": predictor_url, "MLFLOW_TRACKING_URI": registered, "CRACKSEG_RETRIES": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{url}/_stcore/health", timeout=60)
        yield url
    finally:
        proc.stop()


@pytest.fixture
def page(ui_url: str) -> Iterator[object]:
    if not CHROMIUM.is_file():
        pytest.skip("Chromium missing: apt-get update && apt-get install -y chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # Tall enough that one screenshot holds a whole page (Streamlit scrolls inside its own container).
            yield browser.new_page(viewport={"width": 1400, "height": 1900})
        finally:
            browser.close()


def test_inspect_correct_send_and_follow_the_models(
    page: object, ui_url: str, feedback_dir: Path, datasets_root: Path
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    photo = datasets_root / "crackforest" / "images" / f"{PHOTO}.jpg"
    width, height = Image.open(photo).size

    # Inspect: upload, analyse, see the mask and the statistics from the real predictor.
    page.goto(ui_url)
    expect(page.get_by_text("Ready · model v2")).to_be_visible(timeout=30_000)
    page.locator("input[type=file]").first.set_input_files(str(photo))
    page.get_by_role("button", name="Analyse").click()
    expect(page.get_by_text("Download mask (PNG)")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(f"Original · {width}×{height} px")).to_be_visible()
    expect(
        page.get_by_text(
            re.compile(r"^Model v2 \(f1_ods 0\.640 · precision 0\.600 · recall 0\.700\) · \d+ ms")
        )
    ).to_be_visible()
    start = page.get_by_text(re.compile(r"^Mask · threshold 0\.\d\d$")).inner_text()
    model_threshold = float(start.rsplit(" ", 1)[1])
    expect(page.get_by_text(re.compile(rf"model threshold {model_threshold:.2f}"))).to_be_visible()
    area_before = page.locator("[data-testid=stMetric]", has_text="Crack area").inner_text()
    page.screenshot(path=ARTIFACTS / "ui-inspect.png")

    # The threshold slider: ten steps down with the keyboard; the mask and the numbers follow, no new inference.
    slider = page.get_by_role("slider").first
    slider.focus()
    for _ in range(10):
        slider.press("ArrowLeft")
    lowered = f"{model_threshold - 0.10:.2f}"
    expect(page.get_by_text(f"Mask · threshold {lowered}")).to_be_visible(timeout=30_000)
    expect(page.locator("[data-testid=stMetric]", has_text="Crack area")).not_to_have_text(area_before)
    page.screenshot(path=ARTIFACTS / "ui-inspect-threshold.png")

    # Correct: a horizontal stroke across the middle of the photo with the paint brush.
    page.get_by_role("button", name="Correct this one").click()
    # Wait for the Correct page itself: the Inspect page has a canvas too (the reference-line tool).
    expect(page.get_by_text(re.compile(r"· 0 pixels changed"))).to_be_visible(timeout=30_000)
    expect(page.get_by_text(f"at threshold {lowered}", exact=False)).to_be_visible()
    canvas = page.locator("canvas.upper-canvas")
    expect(canvas).to_be_visible(timeout=30_000)
    box = canvas.bounding_box()
    assert box is not None and round(box["width"]) == width, "a CrackForest photo fits the canvas unscaled"
    y = box["y"] + box["height"] / 2
    painted = page.get_by_text(re.compile(r"· [1-9]\d* pixels changed"))
    # The canvas component may still be starting when it first shows (a loaded CPU): a stroke it missed is drawn
    # again; the same stroke twice paints the same pixels.
    for attempt in range(3):
        page.mouse.move(box["x"] + box["width"] * 0.2, y)
        page.mouse.down()
        for step in range(1, 25):
            page.mouse.move(box["x"] + box["width"] * (0.2 + 0.6 * step / 24), y, steps=2)
        page.mouse.up()
        try:
            expect(painted).to_be_visible(timeout=15_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    painted_text = painted.inner_text()

    # Erase the middle of that stroke again: the label must have a gap there.
    page.get_by_text("Erase", exact=True).click()
    page.wait_for_timeout(500)
    page.mouse.move(box["x"] + box["width"] * 0.45, y)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(box["x"] + box["width"] * (0.45 + 0.1 * step / 8), y, steps=2)
    page.mouse.up()
    changed = page.get_by_text(re.compile(r"· [1-9]\d* pixels changed"))
    expect(changed).not_to_have_text(painted_text, timeout=30_000)
    page.get_by_text("Missed cracks").click()
    page.get_by_label("Comment (optional)").fill("crack across the middle")
    page.get_by_role("button", name="Send feedback").click()
    stored = page.get_by_text(re.compile(rf"Stored {PHOTO}.jpg as"))
    expect(stored).to_be_visible(timeout=30_000)
    expect(page.get_by_text("1 / 5 labelled images until the next retraining.")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "ui-correct.png")

    # The predictor stored the photo with the corrected mask at the photo's size.
    record_id = re.search(r"[0-9a-f]{64}", stored.inner_text())
    assert record_id is not None
    record = json.loads((feedback_dir / "records" / f"{record_id.group(0)}.json").read_text())
    assert record["has_mask"] is True and record["verdict"] == "missed_cracks"
    assert record["comment"] == "crack across the middle"
    assert record["model_version"] == "2", "attributed to the version that made the shown mask"
    shown = np.asarray(Image.open(feedback_dir / record["predicted_mask_file"]).convert("L"))
    assert shown.shape == (height, width)
    mask = np.asarray(Image.open(io.BytesIO((feedback_dir / record["mask_file"]).read_bytes())).convert("L"))
    assert mask.shape == (height, width)
    row = height // 2
    assert (mask[row, int(width * 0.25) : int(width * 0.42)] == 255).all(), (
        "the painted stroke is in the label"
    )
    assert (mask[row, int(width * 0.58) : int(width * 0.75)] == 255).all()
    assert (mask[row - 3 : row + 4, int(width * 0.47) : int(width * 0.53)] == 0).all(), (
        "the erased part is not"
    )
    assert (feedback_dir / record["image_file"]).read_bytes() == photo.read_bytes()

    # Models: the backlog from the predictor and the registry from MLflow.
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_text("Champion: version 2")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("1 / 5 labelled images until the next retraining.")).to_be_visible()
    expect(page.get_by_text("Quality by version (F1 at the best threshold, ODS)")).to_be_visible()
    expect(page.get_by_text("By verdict: missed cracks 1")).to_be_visible()
    expect(page.locator("[data-testid=stDataFrame] canvas").first).to_be_visible(timeout=15_000)
    page.wait_for_timeout(1500)  # the chart and the grid draw on canvases after they appear
    page.screenshot(path=ARTIFACTS / "ui-models.png")

    # Batch: two photos through the predictor, then the HTML report as a download.
    page.get_by_role("link", name="Batch").click()
    second = datasets_root / "crackforest" / "images" / "005.jpg"
    expect(page.get_by_text("Upload photos or a ZIP, then press")).to_be_visible(timeout=30_000)
    page.locator("input[type=file]").first.set_input_files([str(photo), str(second)])
    # Streamlit uploads in the background: the form is sent once both files are listed as uploaded.
    expect(page.get_by_text("005.jpg", exact=True)).to_be_visible(timeout=30_000)
    expect(page.get_by_text(f"{PHOTO}.jpg", exact=True)).to_be_visible()
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_text("2 photos: 2 measured, 0 failed.")).to_be_visible(timeout=120_000)
    with page.expect_download() as download:
        page.get_by_role("button", name="report.html").click()
    report = Path(download.value.path()).read_text()
    assert "Totals by severity" in report and f"{PHOTO}.jpg" in report and "005.jpg" in report
    page.screenshot(path=ARTIFACTS / "ui-batch.png")
