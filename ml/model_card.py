"""Render ``MODEL_CARD.md`` for a model directory from the numbers that produced it.

``crackseg model-card --model models/default --seeds state/train-default/seeds.json`` writes the card: the metric
table (mean ± std over the seeds of ``make train-default``), the shipped seed's own numbers, calibration, and the
fixed prose on data, licences, intended use and known failure modes. Every number in the card comes from those two
files, so re-running the recipe and this command keeps the card true.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

METRIC_ROWS = [
    ("val_p1", "P1 — pooled counts, best single threshold (ODS)"),
    ("val_p2", "P2 — mean per-image F1, best single threshold"),
    ("val_ois", "OIS — best threshold per image (BSDS pooled)"),
    ("val_ap", "AP — area under the pooled PR curve"),
    ("val_f1_at_threshold", "F1 at the served threshold"),
    ("val_ece_before", "ECE before calibration (15 bins)"),
    ("val_ece_after", "ECE after Platt calibration"),
]

PROSE = """
## Data and licences
Trained on the **DeepCrack** training set (Liu et al. 2019, 544×384 concrete and asphalt photos) and the
**CrackForest** training set (Shi et al. 2016, 480×320 asphalt photos), minus the fixed validation ids in
`ml/data/splits/default.json`, plus hard-negative synthetic pavement (`ml/data/synthetic.py`: lane paint and its
edges, sealed joints, patch edges, kerbs, manholes, tyre marks, stains, oil, shadows; 30 % crack-free). Both real
datasets are published for **non-commercial research and education only**: these weights are derived from them and
carry the same restriction. For a licence-clean model use `models/starter` (synthetic data only).

## Protocol
Checkpoint, served threshold and calibration are selected **only** on the fixed validation ids (carved from the
public training sets by a seeded shuffle). Public *test* splits were never used to train, select or evaluate.
All numbers are pixel-exact (no distance tolerance). Validation photos are evaluated whole; `crackseg eval`
evaluates photos larger than the tile size through the same tiled path that serving uses.

## Intended use
Pixel masks of surface cracks in photos of concrete and asphalt taken roughly perpendicular to the surface at
0.1–1 mm/pixel, as an aid to inspectors who review the result. Not for structural safety decisions on its own.

## Known failure modes
- Long, straight dark lines (saw cuts, sealed joints, kerb gaps) can still be marked where they look jagged.
- Very thin (< 1 px) hairline cracks and cracks under shadows are missed more often than wide ones.
- Large survey photos at a much coarser ground resolution than the training data (e.g. 1920×1080 highway frames)
  are outside the training distribution: expect lower recall, and correct them in the UI so the loop learns them.
"""


def _fmt(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def render(config: dict[str, Any], seeds: dict[str, Any], title: str = "crackseg default model") -> str:
    """The card's markdown from a model's ``config.json`` and ``seeds.json`` (``crackseg train-default``)."""
    summary = seeds["summary"]
    n = len(seeds["seeds"])
    metrics = config.get("metrics", {})
    cal = config.get("calibration", {})
    lines = [
        f"# {title}",
        "",
        f"Attention U-Net (`{config['arch']}`, base width {config['base_width']}, depth {config['depth']}); "
        f"served threshold **{config['threshold']:.2f}** (chosen on validation, fp32). Recipe: "
        "`ml/recipes/default.yaml`, reproduced by `make train-default` (seeds "
        f"{', '.join(str(s) for s in seeds['seeds'])}).",
        "",
        f"## Validation quality (mean ± std over {n} seeds)",
        "",
        "| metric | mean ± std | shipped seed |",
        "| --- | --- | --- |",
    ]
    for key, label in METRIC_ROWS:
        if key in summary:
            shipped = metrics.get(key)
            lines.append(
                f"| {label} | {_fmt(summary[key])} | {shipped:.3f} |"
                if shipped is not None
                else f"| {label} | {_fmt(summary[key])} | — |"
            )
    per_source: dict[str, list[float]] = {}
    for run in seeds["runs"]:
        for source, value in run.get("per_source", {}).items():
            per_source.setdefault(source, []).append(float(value))
    if per_source:
        lines += ["", "Mean per-image F1 at the P1 threshold, by validation source (mean over seeds):", ""]
        lines += [f"- {k}: {sum(v) / len(v):.3f} ({len(v)} seeds)" for k, v in sorted(per_source.items())]
    counts = seeds["runs"][0].get("counts", {})
    if counts:
        lines += [
            "",
            "Pairs per source (train / val): "
            + ", ".join(f"{k} {c['train']} / {c['val']}" for k, c in sorted(counts.items())),
        ]
    if cal:
        lines += [
            "",
            f"Calibration: Platt scaling `p = sigmoid({cal['scale']:.3f}·z {cal['bias']:+.3f})` fitted on "
            "validation pixels and folded into the 1×1 head, so every runtime serves calibrated probabilities.",
        ]
    return "\n".join(lines) + "\n" + PROSE


def write_card(model_dir: str | os.PathLike[str], seeds_file: str | os.PathLike[str]) -> Path:
    """Render and atomically write ``model_dir/MODEL_CARD.md``."""
    from ml.fsutil import atomic_write_bytes

    config = json.loads((Path(model_dir) / "config.json").read_text())
    seeds = json.loads(Path(seeds_file).read_text())
    out = Path(model_dir) / "MODEL_CARD.md"
    atomic_write_bytes(out, render(config, seeds).encode())
    return out
