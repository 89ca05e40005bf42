import json
from pathlib import Path

import pytest
import yaml

from ml.data import synthetic
from ml.variants import DEFAULT_SCREENING, Screening, run, variant_recipe


@pytest.fixture(scope="module")
def tiny_screening(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base recipe (init from a tiny width-4 depth-2 parent) and a screening of two variants on tiny data."""
    import torch

    from ml.checkpoint import ModelConfig, build_model, save_model

    root = tmp_path_factory.mktemp("variants")
    synthetic.generate(6, root / "ds" / "alpha", size=(48, 48), seed=1)
    ids = [f"synth_0000{i}" for i in range(6)]
    (root / "splits.json").write_text(json.dumps({"alpha": {"train": ids[:4], "val": ids[4:]}}))
    config = ModelConfig(base_width=4, depth=2)
    torch.manual_seed(0)
    save_model(build_model(config), config, root / "parent")
    base = {
        "init_from": str(root / "parent"),
        "data": {
            "splits": str(root / "splits.json"),
            "sources": [
                {"name": "alpha", "path": "alpha", "weight": 0.7},
                {"name": "synthetic", "synthetic": 3, "weight": 0.3},
            ],
            "synthetic_size": [48, 48],
        },
        "train": {"base_width": 4, "depth": 2, "epochs": 9, "steps_per_epoch": 9, "n_overlays": 0},
    }
    (root / "base.yaml").write_text(yaml.safe_dump(base))
    screening = {
        "base": str(root / "base.yaml"),
        "seed": 1,
        "shipped": "as-is",
        "budget": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "crop_size": 32, "threads": 1},
        "variants": [
            {"name": "as-is", "description": "the base recipe"},
            {
                "name": "w6-scratch",
                "description": "wider, from scratch, BCE only",
                "init_from": None,
                "train": {"base_width": 6, "dice_weight": 0.0},
            },
        ],
    }
    (root / "screening.yaml").write_text(yaml.safe_dump(screening))
    return root


def test_variants_train_measure_and_write_the_table(tiny_screening: Path) -> None:
    root = tiny_screening
    doc = run(
        root / "screening.yaml",
        out_root=root / "out",
        datasets_root=root / "ds",
        table=root / "variants.json",
        cache_dir=root / "cache",
        progress=lambda _: None,
    )
    assert doc == json.loads((root / "variants.json").read_text())
    rows = {r["name"]: r for r in doc["variants"]}
    assert list(rows) == ["as-is", "w6-scratch"]
    # The trained architecture is recorded: the parent's for the init_from row, the requested one from scratch.
    assert (rows["as-is"]["base_width"], rows["as-is"]["depth"]) == (4, 2)
    assert (rows["w6-scratch"]["base_width"], rows["w6-scratch"]["depth"]) == (6, 2)
    assert rows["w6-scratch"]["params"] > rows["as-is"]["params"] > 0
    assert rows["w6-scratch"]["gflop"] > rows["as-is"]["gflop"] > 0
    assert rows["w6-scratch"]["loss"]["dice_weight"] == 0.0 and rows["as-is"]["loss"]["dice_weight"] == 1.0
    assert rows["as-is"]["init_from"] == str(root / "parent") and rows["w6-scratch"]["init_from"] is None
    for r in rows.values():
        summary = json.loads((root / "out" / r["name"] / "summary.json").read_text())
        assert r["val_p1"] == summary["metrics"]["val_p1"] and r["threshold"] == summary["threshold"]
        assert 0 < r["onnx_ms_p50"] <= r["onnx_ms_p90"]
    assert doc["budget"]["epochs"] == 1 and doc["base_budget"] == {"epochs": 9, "steps_per_epoch": 9}
    assert doc["shipped"] == "as-is" and doc["timing"]["runs"] == 20 and doc["timing"]["rounds"] == 3
    assert doc["timing"]["threads"] == 2
    # Finished variants are not trained again: a rerun keeps their weights.
    weights = root / "out" / "as-is" / "model" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    run(
        root / "screening.yaml",
        out_root=root / "out",
        datasets_root=root / "ds",
        table=None,
        cache_dir=root / "cache",
        progress=lambda _: None,
    )
    assert weights.stat().st_mtime_ns == mtime


def test_the_table_needs_every_variant_trained(tiny_screening: Path, tmp_path: Path) -> None:
    from ml.variants import build_table

    screening = Screening.load(tiny_screening / "screening.yaml")
    with pytest.raises(ValueError, match=r"as-is.*has not finished"):
        build_table(screening, "s.yaml", tmp_path, measure=lambda _: {})


def test_a_width_that_init_from_would_ignore_is_refused(tiny_screening: Path) -> None:
    screening = Screening.load(tiny_screening / "screening.yaml")
    wider = screening.variants[0].model_copy(update={"name": "w8", "train": {"base_width": 8}})
    with pytest.raises(ValueError, match=r"'w8'.*base_width 4.*asks for 8"):
        variant_recipe(screening, wider)
    recipe, budget = variant_recipe(screening, screening.variant("w6-scratch"))
    assert recipe.init_from is None and recipe.train["base_width"] == 6 and budget["epochs"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"variants": [{"name": "a", "description": "x", "train": {"epochs": 3}}]}, "budget keys"),
        (
            {"variants": [{"name": "a", "description": "x"}, {"name": "a", "description": "y"}]},
            "unique",
        ),
        ({"shipped": "nope"}, "shipped 'nope'"),
        ({"variants": [{"name": "a", "description": "x", "train_": {}}]}, "invalid screening"),
    ],
)
def test_bad_screening_files_are_refused(tiny_screening: Path, tmp_path: Path, change, message) -> None:  # type: ignore[no-untyped-def]
    raw = {**yaml.safe_load((tiny_screening / "screening.yaml").read_text()), "shipped": None, **change}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=message):
        Screening.load(path)


def test_the_committed_screening_is_consistent() -> None:
    screening = Screening.load(DEFAULT_SCREENING)
    assert screening.shipped is not None
    shipped, _ = variant_recipe(screening, screening.variant(screening.shipped))
    default = yaml.safe_load(Path(screening.base).read_text())
    assert shipped.init_from == default["init_from"] and shipped.train == default["train"]
    for v in screening.variants:
        variant_recipe(screening, v)  # no width/depth that init_from would silently ignore
    from ml.variants import _relative

    assert _relative(DEFAULT_SCREENING) == "ml/recipes/variants/screening.yaml"


def test_cli_names_a_bad_screening_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    bad = CliRunner().invoke(
        app, ["variants", "--screening", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]
    )
    assert bad.exit_code == 2 and "nope.yaml" in bad.output
    unknown = CliRunner().invoke(app, ["variants", "--only", "w99", "--out", str(tmp_path / "o")])
    assert unknown.exit_code == 2 and "no variant 'w99'" in unknown.output
