"""``crackseg predict --server`` against a real predictor process: same masks as the local run, the server's
error in the corrupt photo's row, the served version in every row."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from services.cli import app
from tests.helpers.procs import start_predictor

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_server_mode_matches_local_mode(photos: Path, tiny_model: Path, tmp_path: Path) -> None:
    url, proc = start_predictor(tiny_model, tmp_path / "server.log")
    try:
        remote = runner.invoke(
            app, ["predict", str(photos), "--out", str(tmp_path / "remote"), "--server", url, "--no-progress"]
        )
    finally:
        proc.stop()
    local = runner.invoke(
        app,
        [
            "predict",
            str(photos),
            "--out",
            str(tmp_path / "local"),
            "--model",
            str(tiny_model),
            "--no-progress",
        ],
    )
    assert remote.exit_code == 1 and local.exit_code == 1, remote.output + local.output
    assert "3 ok" in remote.output and "1 failed" in remote.output
    with (tmp_path / "remote" / "report.csv").open(newline="") as f:
        report = {Path(r["path"]).name: r for r in csv.DictReader(f)}
    assert report["broken.jpg"]["status"].startswith("the predictor refused it (400)")
    assert {r["model_version"] for n, r in report.items() if n != "broken.jpg"} == {"5"}
    for key in ("a", "c", "site/b"):
        remote_mask = np.asarray(Image.open(tmp_path / "remote" / "masks" / f"{key}.png"))
        local_mask = np.asarray(Image.open(tmp_path / "local" / "masks" / f"{key}.png"))
        assert np.array_equal(remote_mask, local_mask), key
    assert (tmp_path / "remote" / "cracks.csv").read_text().replace(str(tmp_path / "remote"), "") == (
        tmp_path / "local" / "cracks.csv"
    ).read_text().replace(str(tmp_path / "local"), "")
