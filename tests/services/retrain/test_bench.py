"""``crackseg loop bench``: bad input is exit 2 naming the file; a toy run goes through the real loop end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from services.cli import app
from services.retrain.proxy import summarise
from tests.services.retrain.conftest import TINY_FINETUNE

runner = CliRunner()


def _pair(root: Path, stem: str, size: tuple[int, int] = (40, 48)) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    h, w = size
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(root / "images" / f"{stem}.png")
    mask = np.zeros((h, w), np.uint8)
    mask[h // 2, :] = 255
    Image.fromarray(mask).save(root / "masks" / f"{stem}.png")


def _bench(tmp_path: Path, feedback: Path, eval_dir: Path, *extra: str) -> tuple[int, str]:
    args = [
        "loop",
        "bench",
        "--feedback",
        str(feedback),
        "--eval",
        str(eval_dir),
        "--out",
        str(tmp_path / "r.json"),
    ]
    result = runner.invoke(app, [*args, "--work", str(tmp_path / "work"), *extra])
    return result.exit_code, result.output


@pytest.fixture
def good(tmp_path: Path) -> Path:
    for stem in ("a", "b"):
        _pair(tmp_path / "good", stem)
    return tmp_path / "good"


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("missing_mask", "b.png"),
        ("size_mismatch", "b.png"),
        ("empty", "no image/mask pairs"),
        ("unreadable", "b.png"),
        ("no_masks_folder", "no masks/ folder"),
        ("not_a_folder", "not a folder"),
    ],
)
def test_bad_feedback_is_exit_2_naming_the_file(
    breakage: str, expected: str, tmp_path: Path, good: Path
) -> None:
    bad = tmp_path / "bad"
    _pair(bad, "a")
    _pair(bad, "b")
    if breakage == "missing_mask":
        (bad / "masks" / "b.png").unlink()
    elif breakage == "size_mismatch":
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(bad / "masks" / "b.png")
    elif breakage == "empty":
        for f in [*(bad / "images").iterdir(), *(bad / "masks").iterdir()]:
            f.unlink()
    elif breakage == "unreadable":
        (bad / "images" / "b.png").write_bytes(b"not an image")
    elif breakage == "no_masks_folder":
        for f in (bad / "masks").iterdir():
            f.unlink()
        (bad / "masks").rmdir()
    elif breakage == "not_a_folder":
        bad = tmp_path / "nowhere"
    code, output = _bench(tmp_path, bad, good)
    assert code == 2, output
    assert "--feedback" in output and expected in output
    assert not (tmp_path / "work").exists()  # nothing started, nothing written


def test_bad_eval_and_champion_are_named(tmp_path: Path, good: Path) -> None:
    code, output = _bench(tmp_path, good, tmp_path / "missing")
    assert code == 2 and "--eval" in output
    code, output = _bench(tmp_path, good, good, "--champion", str(tmp_path))
    assert code == 2 and "--champion" in output and "config.json" in output


def _report(eval_before: float, eval_after: float, promoted: bool) -> dict[str, object]:
    def block(f1: float) -> dict[str, object]:
        return {"f1_ods": f1, "model_threshold": {"f1": f1 - 0.05}}

    return {
        "promoted": promoted,
        "retrain_seconds": 100.0,
        "before": {"eval": block(eval_before), "base_eval": block(0.8)},
        "after": {"eval": block(eval_after), "base_eval": block(0.79)},
    }


def test_summary_is_mean_and_sample_std_over_seeds() -> None:
    summary = summarise([_report(0.5, 0.6, True), _report(0.5, 0.7, True), _report(0.5, 0.8, False)])
    assert summary["promoted"] == 2 and summary["n_seeds"] == 3
    delta = summary["stats"]["eval_f1_ods_delta"]
    assert delta["mean"] == pytest.approx(0.2) and delta["std"] == pytest.approx(0.1)
    assert summary["stats"]["base_eval_f1_ods_delta"]["mean"] == pytest.approx(-0.01)


@pytest.mark.slow
@pytest.mark.integration
def test_toy_bench_runs_the_real_loop(tmp_path: Path) -> None:
    """Two tiny synthetic domains, a width-4 champion, a 2-step fine-tune: the report has every part."""
    from ml.checkpoint import ModelConfig, build_model, save_model
    from ml.data import synthetic

    torch.manual_seed(0)
    config = ModelConfig(base_width=4, depth=2, threshold=0.5)
    champion = save_model(build_model(config), config, tmp_path / "champion")
    synthetic.generate(5, tmp_path / "feedback", size=(64, 64), seed=21)
    synthetic.generate(2, tmp_path / "eval", size=(64, 64), seed=22)
    synthetic.generate(3, tmp_path / "base-train", size=(64, 64), seed=23)
    synthetic.generate(2, tmp_path / "base-eval", size=(64, 64), seed=24)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"finetune": TINY_FINETUNE}))
    code, output = _bench(
        tmp_path,
        tmp_path / "feedback",
        tmp_path / "eval",
        "--champion",
        str(champion),
        "--base-train",
        str(tmp_path / "base-train"),
        "--base-eval",
        str(tmp_path / "base-eval"),
        "--params",
        str(params),
        "--seed",
        "3",
    )
    assert code == 0, output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_feedback"] == 5 and report["version_before"] == "1"
    assert report["retrain_seconds"] > 0
    assert report["version_after"] == ("2" if report["promoted"] else "1")
    for when in ("before", "after"):
        for split in ("eval", "base_eval"):
            block = report[when][split]
            assert {"f1_ods", "ois", "model_threshold", "per_image"} <= set(block)
    assert report["after"]["eval"]["n_images"] == 2
    gate = report["gate"]
    assert "feedback_f1_at_threshold" in gate["challenger"] and "f1_at_threshold" in gate["champion"]
    assert "P1 (F1 ODS)" in output
    # The run trained with the bench's seed, on the recipe's file.
    used = yaml.safe_load((tmp_path / "work" / "retrain-params.yaml").read_text())
    assert used["finetune"]["seed"] == 3
