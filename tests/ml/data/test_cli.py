import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from ml.data.datasets import dataset_hash, discover
from services.cli import app

runner = CliRunner()


def test_synth_then_check(tmp_path):
    out = tmp_path / "syn"
    result = runner.invoke(
        app, ["data", "synth", "--n", "3", "--out", str(out), "--height", "64", "--width", "96"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote 3 pairs to {out} (crack fraction 0.0")
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "synth_00000.png",
        "synth_00001.png",
        "synth_00002.png",
    ]
    result = runner.invoke(app, ["data", "check", str(out)])
    assert result.exit_code == 0, result.output
    assert "pairs:          3" in result.output
    assert "sizes (WxH):    96x64: 3" in result.output
    assert f"dataset hash:   {dataset_hash(discover(out))}" in result.output


def test_check_a_split_and_a_broken_dataset(tmp_path):
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for stem in ("a", "b", "c"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images" / f"{stem}.png")
        mask = np.zeros((4, 4), np.uint8)
        mask[0, :2] = 255
        Image.fromarray(mask).save(tmp_path / "masks" / f"{stem}.png")
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a", "b"], "test": ["c"]}))
    result = runner.invoke(app, ["data", "check", str(tmp_path), "--split", "train"])
    assert result.exit_code == 0, result.output
    assert "split:          train (available: train, test)" in result.output
    assert "crack fraction: 0.1250 (4 of 32 px)" in result.output
    result = runner.invoke(app, ["data", "check", str(tmp_path), "--split", "val"])
    assert result.exit_code == 2 and "split 'val' is not in" in result.output
    (tmp_path / "masks" / "b.png").unlink()
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "masks" / "a.png")
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert "2 problem(s) in 3 pair(s)" in result.output
    assert "a.png: size mismatch" in result.output and "b.png: image without mask" in result.output


def test_check_the_real_crackforest_test_split(datasets_root):
    result = runner.invoke(app, ["data", "check", str(datasets_root / "crackforest"), "--split", "test"])
    assert result.exit_code == 0, result.output
    assert "pairs:          46" in result.output and "480x320: 46" in result.output
