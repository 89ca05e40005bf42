"""The Batch page (AppTest) and its logic: uploads and ZIPs in, masks/overlays/CSVs/report out."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from services.ui.batchjob import BatchOutput, expand, run_one
from tests.helpers.procs import REPO
from tests.services.ui.fakes import FakePredictor

MakeApp = Callable[[str | None], AppTest]
SAMPLES = REPO / "services" / "ui" / "samples"
OUTPUT_KEY = "crackseg.batch"


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_expand_zips_names_and_bad_uploads() -> None:
    archive = zipped(
        {"site/a.jpg": sample("asphalt_branching.jpg"), "site/readme.txt": b"x", "__MACOSX/._a.jpg": b""}
    )
    photos, failed = expand(
        [("a.jpg", b"1"), ("survey.zip", archive), ("bad.zip", b"not a zip"), ("a.png", b"2")]
    )
    assert [name for name, _ in photos] == ["a.jpg", "site/a.jpg", "a-2.png"]
    assert len(failed) == 1 and failed[0].path == "bad.zip" and "not a usable ZIP" in failed[0].status


def test_run_one_measures_at_the_calibration_and_packages() -> None:
    output = BatchOutput()
    client = FakePredictor()
    ok = run_one(client, "site/a.jpg", sample("concrete_single_crack.jpg"), 0.5, "concrete", output)
    bad = run_one(client, "b.jpg", b"not an image", None, "asphalt", output)
    assert ok.ok and ok.statistics is not None and ok.statistics.mm_per_px == 0.5
    assert "concrete" in ok.statistics.severity_rule and ok.model_version == "7"
    assert not bad.ok and "not an image" in bad.status
    with zipfile.ZipFile(io.BytesIO(output.zip("test"))) as z:
        names = set(z.namelist())
        assert {"masks/site/a.png", "overlays/site/a.jpg", "report.csv", "cracks.csv", "report.html"} <= names
        mask = np.asarray(Image.open(io.BytesIO(z.read("masks/site/a.png"))))
        report = list(csv.DictReader(io.StringIO(z.read("report.csv").decode())))
        html = z.read("report.html").decode()
    assert mask.shape == (320, 480)
    assert [r["status"] for r in report] == ["ok", bad.status]
    assert "overlays/site/a.jpg" in html and "data:image/jpeg;base64," in html


def test_batch_page_runs_uploads_and_a_zip(make_app: MakeApp, predictor: FakePredictor) -> None:
    at = make_app("views/batch.py")
    assert not at.exception and "Upload photos or a ZIP" in at.info[0].value
    archive = zipped({"more/c.jpg": sample("concrete_crack_network.jpg")})
    at.file_uploader[0].set_value(
        [
            ("a.jpg", sample("asphalt_branching.jpg"), "image/jpeg"),
            ("broken.jpg", sample("asphalt_branching.jpg")[:500], "image/jpeg"),
            ("more.zip", archive, "application/zip"),
        ]
    )
    at.button(key="FormSubmitter:batch-upload-Run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "3 photos: 2 measured, 1 failed." in at.warning[0].value
    table = at.dataframe[0].value
    assert list(table["path"]) == ["a.jpg", "broken.jpg", "more/c.jpg"]
    assert predictor.calls.count("predict") == 2, "the unreadable photo never reaches the predictor"
    output: BatchOutput = at.session_state[OUTPUT_KEY]
    severities = {m.label: m.value for m in at.metric}
    assert sum(int(v) for v in severities.values()) == 2
    assert set(output.masks) == {"a", "more/c"}


def test_batch_page_uses_the_pixel_size(make_app: MakeApp) -> None:
    at = make_app("views/batch.py")
    at.number_input[0].set_value(0.25).run()
    at.file_uploader[0].set_value([("a.jpg", sample("asphalt_branching.jpg"), "image/jpeg")])
    at.button(key="FormSubmitter:batch-upload-Run").click().run()
    assert not at.exception
    row = at.dataframe[0].value.iloc[0]
    assert float(row["total_length_mm"]) == pytest.approx(float(row["total_length_px"]) * 0.25, abs=0.01)
    assert "3 photos" not in at.success[0].value and "1 photos: 1 measured" in at.success[0].value


def test_batch_page_stops_when_the_predictor_is_down(make_app: MakeApp, predictor: FakePredictor) -> None:
    predictor.down = True
    at = make_app("views/batch.py")
    at.file_uploader[0].set_value(
        [
            ("a.jpg", sample("asphalt_branching.jpg"), "image/jpeg"),
            ("b.jpg", sample("asphalt_branching.jpg"), "image/jpeg"),
        ]
    )
    at.button(key="FormSubmitter:batch-upload-Run").click().run()
    assert not at.exception
    assert (
        "Stopped after 0 of 2 photos" in at.main.error[0].value and "not reachable" in at.main.error[0].value
    )
    assert predictor.calls.count("predict") == 1, "one failure stops the run instead of failing every photo"
