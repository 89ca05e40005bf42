import json
from pathlib import Path

import pytest

from ml.data import synthetic
from ml.data.mixture import MixtureSpec, Source
from ml.recipe import DEFAULT_RECIPE, Recipe, summarise_seeds, train_default


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ds")
    synthetic.generate(6, root / "alpha", size=(48, 48), seed=1)
    splits = root / "splits.json"
    ids = [f"synth_0000{i}" for i in range(6)]
    splits.write_text(json.dumps({"alpha": {"train": ids[:4], "val": ids[4:]}}))
    return root, splits


def _tiny_recipe(splits: Path) -> Recipe:
    return Recipe(
        init_from=None,
        data=MixtureSpec(
            splits=str(splits),
            sources=[
                Source(name="alpha", path="alpha", weight=0.7),
                Source(name="synthetic", synthetic=3, weight=0.3),
            ],
            synthetic_size=(48, 48),
        ),
        train={
            "base_width": 4,
            "depth": 2,
            "epochs": 1,
            "steps_per_epoch": 2,
            "batch_size": 2,
            "crop_size": 32,
            "threads": 1,
            "n_overlays": 0,
        },
    )


def test_one_seed_trains_calibrates_and_reports(tiny_world, tmp_path: Path) -> None:
    root, splits = tiny_world
    summary = train_default(
        _tiny_recipe(splits),
        seed=3,
        out_dir=tmp_path / "s3",
        datasets_root=root,
        cache_dir=tmp_path / "cache",
    )
    assert summary["seed"] == 3
    assert summary["counts"] == {"alpha": {"train": 4, "val": 2}, "synthetic": {"train": 3, "val": 0}}
    for key in (
        "val_p1",
        "val_p2",
        "val_ois",
        "val_ap",
        "val_f1_at_threshold",
        "val_ece_before",
        "val_ece_after",
    ):
        assert 0.0 <= summary["metrics"][key] <= 1.0, key
    # The served threshold is the P1 threshold, so F1 there is P1 exactly (one validation pass gives both).
    assert summary["metrics"]["val_f1_at_threshold"] == pytest.approx(summary["metrics"]["val_p1"])
    # Platt scaling never makes the fitted pixels worse calibrated than before.
    assert summary["metrics"]["val_ece_after"] <= summary["metrics"]["val_ece_before"] + 1e-9
    config = json.loads((tmp_path / "s3" / "model" / "config.json").read_text())
    assert config["calibration"]["method"] == "platt" and config["calibration"]["scale"] > 0
    assert config["threshold"] == summary["threshold"]
    assert config["metrics"]["val_p1"] == pytest.approx(summary["metrics"]["val_p1"])
    # A finished seed is not trained (or calibrated) twice.
    again = train_default(
        _tiny_recipe(splits),
        seed=3,
        out_dir=tmp_path / "s3",
        datasets_root=root,
        cache_dir=tmp_path / "cache",
    )
    assert again == json.loads((tmp_path / "s3" / "summary.json").read_text())


def test_summarise_seeds_reports_mean_and_sample_std() -> None:
    runs = [{"metrics": {"val_p1": v, "only_here": 1.0}} for v in (0.80, 0.82)]
    runs[1]["metrics"].pop("only_here")
    agg = summarise_seeds(runs)
    assert set(agg) == {"val_p1"}
    assert agg["val_p1"]["mean"] == pytest.approx(0.81)
    assert agg["val_p1"]["std"] == pytest.approx(0.0141421, abs=1e-6)
    with pytest.raises(ValueError):
        summarise_seeds([])


def test_the_shipped_recipes_load() -> None:
    recipe = Recipe.load(DEFAULT_RECIPE)
    assert {s.name for s in recipe.data.sources} == {"deepcrack", "crackforest", "synthetic"}
    proxy = Recipe.load(DEFAULT_RECIPE.with_name("proxy-no-crackforest.yaml"))
    assert "crackforest" not in {s.name for s in proxy.data.sources}
    reverse = Recipe.load(DEFAULT_RECIPE.with_name("proxy-no-deepcrack.yaml"))
    assert {s.name for s in reverse.data.sources} == {"crackforest", "synthetic"}
    assert not any("deepcrack" in (s.path or "") for s in reverse.data.sources)
    assert reverse.init_from == "models/starter"


def test_a_recipe_with_unknown_keys_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("data: {sources: [{name: a, path: a, weight: 1}]}\nepochs: 3\n")
    with pytest.raises(ValueError, match="invalid recipe"):
        Recipe.load(bad)
