"""The committed ``models/default`` is the model its numbers describe, and it behaves as its card says.

The first test re-scores the shipped weights on the fixed validation ids (skips without the datasets): a model
folder whose weights, threshold or metrics drifted apart (a copy from the wrong seed, a stale config) fails here.
The others render pavement with one kind of crack-like non-crack at a time (lane paint and its edges, sealed
joints, kerbs, oil) and pavement with cracks beside lane paint, as a regression guard on what inspectors notice first: marking a
lane-marking edge as a crack. The scenes come from the training generator but from seeds it never drew.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.ml.photos import datasets_root

DEFAULT = Path(__file__).resolve().parents[2] / "models" / "default"
SIZE = (384, 544)


def test_the_shipped_weights_score_the_metrics_their_config_and_seeds_record() -> None:
    from ml.evaluate import evaluate
    from ml.recipe import Recipe, validation_pairs

    root = datasets_root()
    if not (root / "deepcrack" / "train").is_dir() or not (root / "crackforest").is_dir():
        pytest.skip(f"needs DeepCrack train and CrackForest under {root} ($CRACKSEG_DATASETS)")
    report = evaluate(DEFAULT, root, pairs=validation_pairs(Recipe.load(), root)).to_dict()
    config = json.loads((DEFAULT / "config.json").read_text())
    recorded = config["metrics"]
    assert report["n_images"] == 63
    assert report["f1_ods"] == pytest.approx(recorded["val_p1"], abs=2e-3)
    assert report["p2"] == pytest.approx(recorded["val_p2"], abs=2e-3)
    assert report["ap"] == pytest.approx(recorded["val_ap"], abs=2e-3)
    assert report["threshold_ods"] == pytest.approx(config["threshold"], abs=0.0101)
    # The shipped seed is one of the runs in seeds.json, and the best by validation P1.
    runs = json.loads((DEFAULT / "seeds.json").read_text())["runs"]
    shipped = [r for r in runs if r["metrics"]["val_p1"] == pytest.approx(recorded["val_p1"], abs=1e-9)]
    assert len(shipped) == 1, "config.json's metrics match no single run of seeds.json"
    assert shipped[0]["threshold"] == config["threshold"]
    assert shipped[0]["metrics"]["val_p1"] == max(r["metrics"]["val_p1"] for r in runs)


def _scene(distractor: str | None, index: int, crack: bool = False) -> tuple[np.ndarray, np.ndarray]:
    from ml.data import synth_texture as tex
    from ml.data.synthetic import SynthConfig, _draw_cracks

    draw = {
        "lane paint": tex._lane_paint,
        "sealed joint": tex._joint,
        "kerb": tex._kerb,
        "oil": tex._oil,
    }
    rng = np.random.default_rng([20261205, index, len(distractor or "")])
    image = tex.pavement(rng, SIZE)
    if distractor is not None:
        image = draw[distractor](rng, image, SIZE)
    mask = np.zeros(SIZE, bool)
    if crack:
        image, mask = _draw_cracks(rng, image, SIZE, SynthConfig())
    image = tex.camera(rng, image, SIZE)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


@pytest.fixture(scope="module")
def segmenter():
    from ml.segmenter import open_segmenter

    return open_segmenter(DEFAULT)


@pytest.mark.parametrize("distractor", ["lane paint", "kerb", "oil"])
def test_the_default_model_leaves_lane_paint_kerbs_and_oil_alone(segmenter, distractor: str) -> None:
    marked = [segmenter.predict_mask(_scene(distractor, i)[0]).mean() for i in range(8)]
    # 0.1 % of 544×384 is 209 pixels: less than one 1-px crack across the photo.
    assert max(marked) < 1e-3, f"{distractor}: marked fractions {np.round(marked, 5).tolist()}"


def test_the_default_model_rarely_marks_sealed_joints(segmenter) -> None:
    """A thin straight dark joint is the card's known failure mode: marked now and then, never as a rule.

    Over these 16 scenes the shipped model marks 1 above 0.1 % of its pixels; the starter marks 3 and fails here.
    """
    marked = np.array([segmenter.predict_mask(_scene("sealed joint", i)[0]).mean() for i in range(16)])
    assert (marked > 1e-3).sum() <= 2 and marked.mean() < 2e-3, np.round(marked, 5).tolist()


def test_the_default_model_marks_cracks_next_to_lane_paint(segmenter) -> None:
    f1s = []
    for i in range(8):
        rgb, mask = _scene("lane paint", i, crack=True)
        pred = segmenter.predict_mask(rgb)
        tp, fp, fn = (pred & mask).sum(), (pred & ~mask).sum(), (~pred & mask).sum()
        f1s.append(2 * tp / (2 * tp + fp + fn))
    # A model that marks nothing passes the tests above; this one fails it (the shipped model: mean F1 0.78).
    assert np.mean(f1s) > 0.6, np.round(f1s, 3).tolist()
