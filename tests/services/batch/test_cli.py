"""``crackseg predict`` end to end in this process with a tiny real model: outputs, a corrupt photo, resume,
``--force``, and the errors that stop a run before it starts."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from services.cli import app
from tests.services.batch.conftest import SAMPLES

runner = CliRunner()


def predict(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["predict", "--no-progress", *args])
    return result.exit_code, result.output


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_folder_with_a_corrupt_photo(photos: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = predict(str(photos), "--out", str(out), "--model", str(tiny_model), "--pixel-size", "0.5")
    assert code == 1, output
    assert "4 photos: 3 ok (0 already done), 1 failed" in output
    report = {Path(r["path"]).name: r for r in rows(out / "report.csv")}
    assert set(report) == {"a.jpg", "b.jpg", "c.jpg", "broken.jpg"}
    assert "truncated or corrupt" in report["broken.jpg"]["status"] and report["broken.jpg"]["width"] == ""
    good = report["b.jpg"]
    assert (good["status"], good["width"], good["height"], good["model_version"]) == ("ok", "480", "320", "5")
    assert float(good["total_length_mm"]) == pytest.approx(float(good["total_length_px"]) * 0.5, abs=0.01)
    mask = np.asarray(Image.open(out / "masks" / "site" / "b.png"))
    assert mask.shape == (320, 480) and set(np.unique(mask)) <= {0, 255}
    assert Image.open(out / "overlays" / "site" / "b.jpg").size == (480, 320)
    # One cracks.csv row per crack, ids 1..n per photo, as many as the photo row says.
    cracks = rows(out / "cracks.csv")
    for name, row in report.items():
        ids = [int(c["crack_id"]) for c in cracks if Path(c["path"]).name == name]
        assert ids == list(range(1, len(ids) + 1))
        assert len(ids) == (int(row["n_cracks"]) if row["status"] == "ok" else 0)
    html = (out / "report.html").read_text()
    assert "Totals by severity" in html and "Failed photos" in html and "broken.jpg" in html
    assert html.count("data:image/jpeg;base64,") == 3, "a thumbnail per measured photo"


def test_resume_skips_done_photos_and_force_redoes_them(
    photos: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [str(photos), "--out", str(out), "--model", str(tiny_model)]
    assert predict(*args)[0] == 1
    done_mask = out / "masks" / "a.png"
    stamp = done_mask.stat().st_mtime_ns
    # The broken photo is fixed: only it runs again, and now everything succeeded.
    shutil.copy(SAMPLES / "concrete_single_crack.jpg", photos / "site" / "broken.jpg")
    code, output = predict(*args)
    assert code == 0, output
    assert "4 photos: 4 ok (3 already done), 0 failed" in output
    assert done_mask.stat().st_mtime_ns == stamp, "a done photo is not redone"
    assert [r["status"] for r in rows(out / "report.csv")] == ["ok"] * 4
    code, output = predict(*args, "--force")
    assert code == 0 and "(0 already done)" in output
    assert done_mask.stat().st_mtime_ns != stamp


def test_resume_with_other_options_is_refused(photos: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(photos / "a.jpg"), "--out", str(out), "--model", str(tiny_model)]
    assert predict(*args)[0] == 0
    code, output = predict(*args, "--pixel-size", "0.2")
    assert code == 2 and "--force" in output
    assert predict(*args, "--pixel-size", "0.2", "--force")[0] == 0
    assert rows(out / "report.csv")[0]["total_length_mm"] != ""


def test_errors_before_the_run_exit_2(photos: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    code, output = predict(str(tmp_path / "missing"), "--out", out, "--model", str(tiny_model))
    assert code == 2 and "missing does not exist" in output
    code, output = predict(str(photos), "--out", out, "--model", str(tiny_model), "--server", "http://x")
    assert code == 2 and "not both" in output
    code, output = predict(str(photos), "--out", out, "--model", str(tmp_path))
    assert code == 2 and "not a model directory" in output
    code, output = predict(str(photos), "--out", out, "--model", str(tiny_model), "--surface", "gravel")
    assert code == 2 and "gravel" in output
    code, output = predict(str(photos), "--out", out, "--server", "http://127.0.0.1:9")
    assert code == 2 and "not reachable" in output
