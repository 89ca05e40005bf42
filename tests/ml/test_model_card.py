import json
from pathlib import Path

from typer.testing import CliRunner

from ml.model_card import render


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
