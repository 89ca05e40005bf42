"""Evaluation on a tiny dataset with answers worked out by hand, through the function and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ml.checkpoint import ModelConfig, save_model
from ml.evaluate import evaluate
from ml.models import create_model


def _constant_model(tmp: Path, prob: float, threshold: float) -> Path:
    """A network whose head has zero weights: every pixel's probability is ``prob`` whatever the input."""
    model = create_model("attention_unet", base_width=4, depth=2)
    with torch.no_grad():
        model.head.weight.zero_()  # type: ignore[union-attr, operator]
        model.head.bias.fill_(math.log(prob / (1 - prob)))  # type: ignore[union-attr, operator]
    return save_model(model, ModelConfig(base_width=4, depth=2, threshold=threshold), tmp / "model")


@pytest.fixture
def known(tmp_path: Path) -> tuple[Path, Path]:
    """Three 8×8 images: a has 16 crack pixels, b has 8, c none; the model says 0.705 everywhere."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for name, rows in (("a", 2), ("b", 1), ("c", 0)):
        mask = np.zeros((8, 8), np.uint8)
        mask[:rows] = 255
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / "images" / f"{name}.png")
    return _constant_model(tmp_path, 0.705, threshold=0.8), root


def test_known_answers(known: tuple[Path, Path]) -> None:
    model_dir, root = known
    r = evaluate(model_dir, root, split=None)
    assert r.n_images == 3
    # At every threshold ≤ 0.70 every pixel is crack: tp 24, fp 48 + 56 + 64 = 168, fn 0.
    assert r.f1_at_0_5 == pytest.approx(48 / 216)
    assert (r.precision_at_0_5, r.recall_at_0_5) == pytest.approx((24 / 192, 1.0))
    # ODS: the tie over 0.01–0.70 resolves to the lowest threshold; above 0.70 nothing is found (F1 0).
    assert r.threshold_ods == pytest.approx(0.01)
    assert r.f1_ods == pytest.approx(48 / 216)
    assert (r.precision, r.recall, r.iou) == pytest.approx((24 / 192, 1.0, 24 / 192))
    # Dice = mean per-image Dice at ODS: a 32/80, b 16/72, c 0/64.
    assert r.dice == pytest.approx((0.4 + 16 / 72 + 0.0) / 3)
    # OIS: a and b are best at 0.01, the crack-free c at 0.71 (predict nothing: F1 1 by zero division).
    # BSDS pooling: tp 24, fp 48 + 56 + 0, fn 0 → 48 / 152.
    assert r.ois == pytest.approx(48 / 152)
    assert r.ois_mean == pytest.approx((0.4 + 16 / 72 + 1.0) / 3)
    assert [row["best_threshold"] for row in r.per_image] == pytest.approx([0.01, 0.01, 0.71])
    assert [row["id"] for row in r.per_image] == ["a", "b", "c"]
    assert [row["crack_fraction"] for row in r.per_image] == pytest.approx([0.25, 0.125, 0.0])
    # The model's own threshold 0.8 predicts nothing: F1 0, precision 0/0 → 1, recall 0.
    assert r.model_threshold == pytest.approx(
        {"threshold": 0.8, "f1": 0.0, "precision": 1.0, "recall": 0.0, "iou": 0.0}
    )
    assert json.loads(json.dumps(r.to_dict()))["n_images"] == 3


def test_split_json_root(known: tuple[Path, Path]) -> None:
    model_dir, root = known
    (root / "split.json").write_text(json.dumps({"train": ["a"], "test": ["b", "c"]}))
    r = evaluate(model_dir, root, split="test")
    assert r.n_images == 2 and r.split == "test"
    assert r.f1_at_0_5 == pytest.approx(16 / (16 + 56 + 64))  # b and c: tp 8, fp 120
    with pytest.raises(ValueError, match="split 'val'"):
        evaluate(model_dir, root, split="val")


def test_bad_model_argument(known: tuple[Path, Path], tmp_path: Path) -> None:
    _, root = known
    with pytest.raises(ValueError, match="neither a checkpoint folder nor a models:/ URI"):
        evaluate(tmp_path / "nope", root)
    with pytest.raises(ValueError, match="not a model URI"):
        evaluate("models:/crackseg", root)


def test_cli_prints_and_writes_json(known: tuple[Path, Path], tmp_path: Path) -> None:
    from services.cli import app

    model_dir, root = known
    out = tmp_path / "reports" / "report.json"
    plot = tmp_path / "reports" / "pr.png"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            str(model_dir),
            "--data",
            str(root),
            "--split",
            "all",
            "--out",
            str(out),
            "--plot",
            str(plot),
            "--tolerance",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "P1 (ODS)" in result.output and "P2" in result.output and "c " in result.output
    assert "tolerant F1" in result.output and "NOT pixel-exact" in result.output
    assert Image.open(plot).size[0] > 100
    report = json.loads(out.read_text())
    assert report["n_images"] == 3 and report["f1_ods"] == pytest.approx(48 / 216)
    assert {
        "f1_ods",
        "p2",
        "threshold_p2",
        "ap",
        "f1_at_0_5",
        "ois",
        "precision",
        "recall",
        "iou",
        "dice",
        "n_images",
        "per_image",
    } <= set(report)

    bad = CliRunner().invoke(app, ["eval", "--model", str(model_dir), "--data", str(tmp_path / "missing")])
    assert bad.exit_code == 2
    assert "is not a directory" in bad.output


def test_empty_folder_and_missing_mask_are_named(tmp_path: Path, known: tuple[Path, Path]) -> None:
    from services.cli import app

    model_dir, root = known
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    res = CliRunner().invoke(app, ["eval", "--model", str(model_dir), "--data", str(empty)])
    assert res.exit_code == 2 and "no image/mask pairs" in res.output and str(empty) in res.output
    (root / "masks" / "b.png").unlink()
    res = CliRunner().invoke(app, ["eval", "--model", str(model_dir), "--data", str(root)])
    assert res.exit_code == 2 and "b.png" in res.output and "image without mask" in res.output
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "masks" / "b.png")
    res = CliRunner().invoke(app, ["eval", "--model", str(model_dir), "--data", str(root)])
    assert res.exit_code == 2 and "size mismatch" in res.output and "b.png" in res.output
    (root / "images" / "a.png").write_bytes(b"not an image")
    res = CliRunner().invoke(app, ["eval", "--model", str(model_dir), "--data", str(root)])
    assert res.exit_code == 2 and "a.png" in res.output and "unreadable image" in res.output


def test_large_photos_are_evaluated_through_the_tiled_serving_path(tmp_path: Path, monkeypatch) -> None:
    """A photo larger than the tile size must be scored from Segmenter's tiles, not one big forward pass."""
    import ml.inference

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((300, 700, 3), np.uint8)).save(root / "images" / "big.png")
    Image.fromarray(np.zeros((300, 700), np.uint8)).save(root / "masks" / "big.png")
    model_dir = _constant_model(tmp_path, 0.3, threshold=0.5)
    shapes: list[tuple[int, ...]] = []
    original = ml.inference.Segmenter.probabilities

    def spy(self, rgb):  # type: ignore[no-untyped-def]
        shapes.append((self.tile_size, *rgb.shape))
        return original(self, rgb)

    monkeypatch.setattr(ml.inference.Segmenter, "probabilities", spy)
    r = evaluate(model_dir, root, split=None, tile_size=320)
    assert shapes == [(320, 300, 700, 3)]
    assert r.n_images == 1 and r.model_threshold["f1"] == 1.0  # nothing predicted on a crack-free photo
