"""The starter model recipe (synthetic data only) and the DVC prepare stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml.checkpoint import load_model
from ml.prepare import PrepareParams, prepare


def test_starter_cli_trains_on_synthetic_and_reports_zero_shot(tmp_path: Path, tiny_dataset: Path) -> None:
    from services.cli import app

    out = tmp_path / "models" / "starter"
    args = [
        "starter-model",
        "--out",
        str(out),
        "--workdir",
        str(tmp_path / "work"),
        "--steps",
        "2",
        "--base-width",
        "4",
        "--depth",
        "2",
        "--height",
        "64",
        "--width",
        "64",
        "--n-images",
        "4",
        "--batch-size",
        "2",
        "--crop-size",
        "32",
        "--device",
        "cpu",
        "--eval-data",
        str(tiny_dataset),
        "--eval-split",
        "all",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["steps"] == 2 and summary["registered_version"] is None
    loaded = load_model(out)  # the sha256 still matches after the metrics were added
    assert loaded.config.base_width == 4
    zero_shot = loaded.config.metrics[f"zero_shot_{tiny_dataset.name}_all_f1_ods"]
    assert zero_shot == pytest.approx(summary["zero_shot"]["f1_ods"])
    # Only synthetic images were trained on.
    work_sets = [p.name for p in (tmp_path / "work").iterdir() if p.name.startswith("synthetic-")]
    assert work_sets == ["synthetic-n4-64x64-s0"]
    # Generated in parallel processes, yet identical to the sequential generator's output.
    from ml.data import synthetic

    synthetic.generate(4, tmp_path / "sequential", size=(64, 64), seed=0)
    for sub in ("images", "masks"):
        parallel = sorted((tmp_path / "work" / work_sets[0] / sub).iterdir())
        assert [p.name for p in parallel] == [f"synth_{i:05d}.png" for i in range(4)]
        assert [p.read_bytes() for p in parallel] == [
            (tmp_path / "sequential" / sub / p.name).read_bytes() for p in parallel
        ]

    bad = CliRunner().invoke(app, [*args[:5], "--steps", "0"])
    assert bad.exit_code == 2 and "steps" in bad.output


def test_prepare_synthetic(tmp_path: Path) -> None:
    n = prepare(PrepareParams(n_synthetic=4, height=32, width=40, test_fraction=0.25), tmp_path / "p")
    assert n == 4
    split = json.loads((tmp_path / "p" / "split.json").read_text())
    assert len(split["train"]) == 3 and len(split["test"]) == 1
    assert len(list((tmp_path / "p" / "images").iterdir())) == 4


def test_prepare_copies_a_small_subset_keeping_the_source_split(tmp_path: Path, tiny_dataset: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(tiny_dataset, source)
    ids = sorted(p.stem for p in (source / "images").iterdir())
    (source / "split.json").write_text(json.dumps({"train": ids[:5], "test": ids[5:]}))
    n = prepare(PrepareParams(source=str(source), max_pairs=6, seed=1), tmp_path / "p")
    assert n == 6
    split = json.loads((tmp_path / "p" / "split.json").read_text())
    assert set(split["train"]) <= set(ids[:5]) and set(split["test"]) <= set(ids[5:])
    assert len(split["train"]) + len(split["test"]) == 6
    # Rerunning replaces the folder instead of mixing old and new files.
    prepare(PrepareParams(source=str(source), max_pairs=3, seed=1), tmp_path / "p")
    assert len(list((tmp_path / "p" / "images").iterdir())) == 3


def test_prepare_rejects_a_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        prepare(PrepareParams(source=str(tmp_path / "missing")), tmp_path / "p")
    assert not (tmp_path / "p").exists()
