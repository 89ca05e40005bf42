import json
from pathlib import Path

from typer.testing import CliRunner

from ml.model_card import render, stage1_seeds


def _seeds() -> dict:
    runs = [
        {
            "seed": s,
            "metrics": {"val_p1": p1, "val_p2": p1 - 0.02},
            "per_source": {"deepcrack": p1 + 0.01},
            "counts": {"deepcrack": {"train": 255, "val": 45}},
        }
        for s, p1 in ((0, 0.80), (1, 0.82), (2, 0.84))
    ]
    from ml.recipe import summarise_seeds

    return {"seeds": [0, 1, 2], "summary": summarise_seeds(runs), "runs": runs}


def test_card_numbers_come_from_the_seed_summary_and_config() -> None:
    config = {
        "arch": "attention_unet",
        "base_width": 8,
        "depth": 4,
        "threshold": 0.41,
        "metrics": {"val_p1": 0.84, "val_p2": 0.82},
        "calibration": {"scale": 0.8, "bias": -3.5},
    }
    card = render(config, _seeds())
    assert "0.820 ± 0.020" in card  # P1 over the three seeds
    assert "| 0.840 |" in card  # the shipped seed's own P1
    assert "threshold **0.41**" in card
    assert "deepcrack: 0.830 (3 seeds)" in card
    assert "non-commercial" in card and "test* splits were never used" in card


def test_cli_writes_the_card_and_names_a_missing_file(tmp_path: Path) -> None:
    from services.cli import app

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"arch": "attention_unet", "base_width": 8, "depth": 4, "threshold": 0.4})
    )
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps(_seeds()))
    ok = CliRunner().invoke(app, ["model-card", "--model", str(model), "--seeds", str(seeds)])
    assert ok.exit_code == 0, ok.output
    assert "P1" in (model / "MODEL_CARD.md").read_text()
    bad = CliRunner().invoke(
        app, ["model-card", "--model", str(model), "--seeds", str(tmp_path / "nope.json")]
    )
    assert bad.exit_code == 2 and "nope.json" in bad.output


def _variants(shipped_p1: float, wide_p1: float) -> dict:
    def row(name: str, init_from: str | None, width: int, p1: float, ms: float) -> dict:
        return {
            "name": name,
            "description": name,
            "init_from": init_from,
            "loss": {"pos_weight": 5.0, "bce_weight": 1.0, "dice_weight": 1.0, "focal_gamma": 0.0},
            "base_width": width,
            "depth": 4,
            "params": 546825 if width == 8 else 2182789,
            "gflop": 3.21 if width == 8 else 12.34,
            "onnx_ms_p50": ms,
            "onnx_ms_p90": ms + 1,
            "threshold": 0.4,
            "val_p1": p1,
            "val_p2": p1 - 0.05,
            "val_ois": p1 + 0.03,
            "val_ap": p1 + 0.01,
        }

    return {
        "created_at": "2026-12-04T20:00:00+00:00",
        "screening": "ml/recipes/variants/screening.yaml",
        "base_recipe": "ml/recipes/default.yaml",
        "seed": 0,
        "budget": {"epochs": 8, "steps_per_epoch": 60, "batch_size": 8, "crop_size": 224},
        "base_budget": {"epochs": 8, "steps_per_epoch": 60},
        "shipped": "shipped",
        "machine": {
            "cpu": "AMD EPYC",
            "cpu_count": 2,
            "loadavg_before_timing": [0.5, 1, 1],
            "loadavg_after_timing": [0.7, 1, 1],
        },
        "timing": {"input": {"height": 384, "width": 544}, "threads": 2, "warmup": 3, "runs": 20},
        "variants": [
            row("shipped", "models/starter", 8, shipped_p1, 88.4),
            row("w16-scratch", None, 16, wide_p1, 231.0),
        ],
    }


def test_card_renders_the_variant_table_from_variants_json(tmp_path: Path) -> None:
    from ml.model_card import write_card

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"arch": "attention_unet", "base_width": 8, "depth": 4, "threshold": 0.4})
    )
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps(_seeds()))
    # Without variants.json the card has no screening section.
    assert "Choosing width" not in write_card(model, seeds).read_text()
    (model / "variants.json").write_text(json.dumps(_variants(0.801, 0.790)))
    card = write_card(model, seeds).read_text()
    assert (
        "## Choosing width, depth and loss: a one-seed screening at a short budget, not a final result"
        in card
    )
    assert (
        "| **shipped** (shipped) | starter | 8 | 4 | BCE(pw 5) + Dice | 0.55 | 3.21 | 0.801 | 0.751 | 0.831 | "
        "0.811 | 88.4 |" in card
    )
    assert "| w16-scratch | scratch | 16 | 4 | BCE(pw 5) + Dice | 2.18 | 12.34 | 0.790 |" in card
    # The noise is twice the seeds' P1 std (0.020 → 0.040); the shipped row is the best, so the table supports it.
    assert "below 0.040 (twice the 3-seed std of P1)" in card
    assert "so the table supports the choice, and it meets the speed goal." in card
    assert (
        "at this short budget (seed 0: P1 0.801, 88.4 ms; the 3-seed run scored 0.800 at that seed)" in card
    )
    assert "Within the ≤ 100 ms goal at 544×384: `shipped` (88.4 ms)." in card
    assert card.index("Choosing width") < card.index("## Data and licences")


def test_card_does_not_pass_off_a_longer_recipe_as_a_rerun_of_the_screening() -> None:
    from ml.model_card import render_variants

    doc = {**_variants(0.801, 0.790), "base_budget": {"epochs": 36, "steps_per_epoch": 100}}
    section = render_variants(doc, p1_std=0.01, same_seed_p1=0.842)
    assert "the 3-seed run scored" not in section
    assert (
        "(seed 0: P1 0.801, 88.4 ms; the shipped recipe's 36 × 100 steps scored 0.842 at that seed)"
        in section
    )
    assert "(the shipped recipe trains 36 × 100 steps, 3 seeds)" in section


def test_card_states_the_budget_the_shipped_seeds_trained_with() -> None:
    config = {"arch": "attention_unet", "base_width": 8, "depth": 4, "threshold": 0.45}
    recipe = {
        "init_from": "models/starter",
        "train": {
            "epochs": 72,
            "steps_per_epoch": 100,
            "batch_size": 8,
            "crop_size": 224,
            "dice_weight": 0.0,
        },
    }
    card = render(config, {**_seeds(), "recipe": recipe}, variants=_variants(0.801, 0.790))
    assert (
        "Recipe: `ml/recipes/default.yaml` (72 epochs × 100 steps of 8 crops of 224², BCE only, fine-tuned from "
        "`models/starter`), reproduced by" in card
    )
    # The screening's note on the shipped budget follows the seeds' record, not variants.json's older copy.
    assert "(the shipped recipe trains 72 × 100 steps, 3 seeds)" in card
    both = {"train": {**recipe["train"], "dice_weight": 1.0}}
    assert "steps of 8 crops of 224², BCE + soft Dice)," in render(config, {**_seeds(), "recipe": both})
    # A seeds.json from before recipe records renders as before.
    assert "Recipe: `ml/recipes/default.yaml`, reproduced by" in render(config, _seeds())


def test_card_says_when_a_wider_variant_wins_and_its_speed() -> None:
    from ml.model_card import render_variants

    section = render_variants(_variants(0.780, 0.850), p1_std=0.013)
    assert "`w16-scratch` beats it by 0.070 at this budget" in section
    assert "does not support the choice; `w16-scratch` runs at 231.0 ms against the ≤ 100 ms goal." in section
    # Within the noise (2 × 0.013 = 0.026) a better-looking wide row is not a win.
    assert "supports the choice" in render_variants(_variants(0.780, 0.800), p1_std=0.013)


def test_the_committed_card_is_rendered_from_the_committed_files() -> None:
    model = Path("models/default")
    variants = model / "variants.json"
    seeds = json.loads((model / "seeds.json").read_text())
    rendered = render(
        json.loads((model / "config.json").read_text()),
        seeds,
        variants=json.loads(variants.read_text()) if variants.is_file() else None,
        stage1=stage1_seeds(seeds),
    )
    assert rendered == (model / "MODEL_CARD.md").read_text(), (
        f"regenerate with: crackseg model-card --model {model} --seeds {model}/seeds.json"
    )


def test_card_of_a_second_stage_names_the_first_and_whose_spread_it_reports(tmp_path: Path) -> None:
    config = {"arch": "attention_unet", "base_width": 8, "depth": 4, "threshold": 0.45}
    train = {"epochs": 18, "steps_per_epoch": 100, "batch_size": 8, "crop_size": 224, "lr": 0.0002}
    polish = {
        **_seeds(),
        "recipe": {"init_from": str(tmp_path / "stage1"), "train": {**train, "ema_decay": 0.995}},
        "recipe_file": "ml/recipes/default-polish.yaml",
    }
    stage1 = {**_seeds(), "recipe": {"init_from": "models/starter", "train": {**train, "epochs": 72}}}
    (tmp_path / "stage1").mkdir()
    (tmp_path / "stage1" / "seeds.json").write_text(json.dumps(stage1))
    assert stage1_seeds(polish) == stage1
    card = render(config, polish, stage1=stage1_seeds(polish))
    assert (
        "Recipe: `ml/recipes/default-polish.yaml` (18 epochs × 100 steps of 8 crops of 224², BCE + soft Dice, "
        "peak lr 0.0002, shipping the EMA of weights and BN statistics (decay 0.995), fine-tuned from "
        in card
    )
    assert (
        f"Stage 1: `{tmp_path / 'stage1'}` is seed 2 of `ml/recipes/default.yaml` (72 epochs × 100 steps"
        in card
    )
    assert (
        "the best of its seeds 0, 1, 2 by validation P1 (stage 1: P1 0.820 ± 0.020 over 3 seeds, that seed "
        in card
    )
    assert "the spread below is this stage's, not the whole recipe's" in card
    # A start without a seeds.json (the starter) is no stage of the recipe.
    assert stage1_seeds({"recipe": {"init_from": "models/starter"}}) is None
    assert stage1_seeds(_seeds()) is None
