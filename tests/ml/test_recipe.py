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
    # The summary records the recipe as trained; a rerun that asks for another one is refused, not answered
    # with this run's numbers. A command-line override equal to the file's value is the same recipe.
    assert again["recipe"]["train"]["epochs"] == 1 and again["recipe"]["init_from"] is None
    same = train_default(
        _tiny_recipe(splits),
        seed=3,
        out_dir=tmp_path / "s3",
        datasets_root=root,
        cache_dir=tmp_path / "cache",
        overrides={"epochs": "1"},
    )
    assert same == again
    with pytest.raises(
        ValueError, match=r"s3 holds seed 3 trained with another recipe \(differs in train\.epochs\)"
    ):
        train_default(
            _tiny_recipe(splits),
            seed=3,
            out_dir=tmp_path / "s3",
            datasets_root=root,
            cache_dir=tmp_path / "cache",
            overrides={"epochs": "2"},
        )


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
    # The second-stage experiment trains on the default mixture and validates on the same ids, from the shipped
    # folder, whose seeds.json records the seeds it was picked from (the card's stage-1 paragraph).
    polish = Recipe.load(DEFAULT_RECIPE.with_name("polish-ema.yaml"))
    assert polish.data == recipe.data
    assert polish.init_from == "models/default"
    assert polish.train["ema_decay"] and polish.train["validate_from"] > 1
    stage1 = Path(__file__).resolve().parents[2] / polish.init_from
    assert {"config.json", "model.safetensors", "seeds.json"} <= {p.name for p in stage1.iterdir()}
    assert json.loads((stage1 / "seeds.json").read_text())["recipe"]["init_from"] == recipe.init_from


def test_a_recipe_with_unknown_keys_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "r.yaml"
    bad.write_text("data: {sources: [{name: a, path: a, weight: 1}]}\nepochs: 3\n")
    with pytest.raises(ValueError, match="invalid recipe"):
        Recipe.load(bad)


def test_seeds_train_side_by_side_and_a_failed_seed_is_named(
    tiny_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from typer.testing import CliRunner

    from services.cli import app

    root, splits = tiny_world
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(_tiny_recipe(splits).model_dump(mode="json")))
    monkeypatch.setenv("CRACKSEG_DATASETS", str(root))
    out, cache = tmp_path / "out", tmp_path / "cache"
    common = ["--out", str(out), "--recipe", str(recipe), "--jobs", "2", "--cache", str(cache)]

    result = CliRunner().invoke(app, ["train-default", "--seed", "0", "--seed", "1", *common])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "seeds.json").read_text())
    assert report["seeds"] == [0, 1] and [r["seed"] for r in report["runs"]] == [0, 1]
    assert report["summary"]["val_p1"]["n"] == 2
    assert report["recipe"]["train"] == _tiny_recipe(splits).train
    for seed in (0, 1):
        # Each seed ran in its own process, wrote its own log, and finished (summary + calibrated model).
        assert "epoch 1:" in (out / f"seed{seed}.log").read_text()
        assert (out / f"seed{seed}" / "summary.json").is_file()
        assert "calibration" in json.loads((out / f"seed{seed}" / "model" / "config.json").read_text())
    # The synthetic samples were generated once, before the children started: one finished cache, no staging.
    assert [p.name for p in cache.iterdir()] == ["synthetic-hn-v2-n3-48x48-s7"]
    assert report["recipe_file"] == str(recipe)

    # --ship: the finished seeds are only re-read, and the best by validation P1 replaces the model folder's
    # weights, config, ONNX graph and seeds.json; what training does not write there (notes, the screening) is kept.
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "notes.txt").write_text("kept")
    (shipped / "model.onnx").write_bytes(b"old graph")
    (shipped / "MODEL_CARD.md").write_text("the previous model's card")
    again = CliRunner().invoke(
        app, ["train-default", "--seed", "0", "--seed", "1", *common, "--ship", str(shipped)]
    )
    assert again.exit_code == 0, again.output
    best_run = max(report["runs"], key=lambda r: r["metrics"]["val_p1"])
    best = best_run["seed"]
    assert f"shipped seed {best} to {shipped}" in again.output
    # The card is rendered from what was shipped, not carried over from the folder's previous model.
    card = (shipped / "MODEL_CARD.md").read_text()
    assert f"served threshold **{best_run['threshold']:.2f}**" in card and f"Recipe: `{recipe}`" in card
    for name in ("config.json", "model.safetensors", "model.onnx"):
        assert (shipped / name).read_bytes() == (out / f"seed{best}" / "model" / name).read_bytes(), name
    assert json.loads((shipped / "seeds.json").read_text()) == json.loads((out / "seeds.json").read_text())
    assert (shipped / "notes.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".shipped")) == []

    failed = CliRunner().invoke(
        app, ["train-default", "--seed", "5", "--seed", "6", *common, "--set", "lr=-1"]
    )
    assert failed.exit_code == 2
    assert "seed(s) [5, 6] failed" in failed.output and str(out / "seed5.log") in failed.output
    assert "lr" in (out / "seed5.log").read_text()
    assert not (out / "seed5" / "summary.json").exists()


def test_ship_refuses_a_seed_folder_that_lacks_a_file_and_leaves_the_target_alone(tmp_path: Path) -> None:
    from ml.recipe import ship_best_seed

    (tmp_path / "out" / "seed4" / "model").mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "out" / "seed4" / "model" / name).write_text("x")
    target = tmp_path / "models" / "default"
    target.mkdir(parents=True)
    (target / "config.json").write_text("old")
    doc = {"runs": [{"seed": 4, "metrics": {"val_p1": 0.9}}, {"seed": 5, "metrics": {"val_p1": 0.1}}]}
    with pytest.raises(ValueError, match=r"cannot ship seed 4: .*seed4/model lacks model\.onnx"):
        ship_best_seed(doc, tmp_path / "out", target)
    assert [p.name for p in target.iterdir()] == ["config.json"]
    assert (target / "config.json").read_text() == "old"
    with pytest.raises(ValueError, match="no seed runs"):
        ship_best_seed({"runs": []}, tmp_path / "out", target)
