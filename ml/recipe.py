"""The default model's recipe: mixture training, Platt calibration on validation, and a validation report.

``train_default(recipe, seed, out)`` runs the whole recipe for one seed into ``out``:

1. generate (once, cached) the hard-negative synthetic set the recipe asks for;
2. build the mixture (:mod:`ml.data.mixture`) — validation ids only from the fixed split file;
3. train (:func:`ml.train.train`, resumable: a killed run continues from its last epoch) from ``init_from``;
4. calibrate the best weights on validation (:mod:`ml.calibrate`, folded into the head), re-pick the served
   threshold on validation in fp32, and write ``out/model`` (weights + config.json with threshold, calibration
   and validation metrics) and ``out/summary.json``.

``summarise_seeds`` turns several seeds' summaries into mean ± std (the model card's numbers).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ml.data.mixture import MixtureSpec

log = logging.getLogger(__name__)

DEFAULT_RECIPE = Path(__file__).with_name("recipes") / "default.yaml"
# How seeds.json names the default recipe (repo-relative); files written before recipe_file existed used it.
DEFAULT_RECIPE_FILE = "ml/recipes/default.yaml"
SUMMARY_FILE = "summary.json"
M = TypeVar("M", bound=BaseModel)


class Recipe(BaseModel):
    """A training recipe file: where to start from, the data mixture and the training parameters."""

    model_config = ConfigDict(extra="forbid")

    init_from: str | None = None
    data: MixtureSpec
    train: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str] = DEFAULT_RECIPE) -> Recipe:
        return read_yaml_model(cls, path, "recipe")


def read_yaml_model(model: type[M], path: str | os.PathLike[str], what: str) -> M:
    """A YAML file validated into ``model``; ``ValueError`` naming ``what`` and the file when it cannot be."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read {what} {path}: {e}") from e
    try:
        return model.model_validate(raw)
    except ValueError as e:
        raise ValueError(f"invalid {what} {path}: {e}") from e


def validation_pairs(recipe: Recipe, datasets_root: str | os.PathLike[str]) -> list[Any]:
    """The recipe's fixed validation pairs (ids ``<source>/<id>``); synthetic sources have none."""
    from ml.data.mixture import build_mixture

    real = recipe.data.model_copy(update={"sources": [s for s in recipe.data.sources if s.path is not None]})
    return build_mixture(real, datasets_root, None).val


def synthetic_cache(recipe: Recipe, cache_dir: Path) -> Path | None:
    """Generate (once) the hard-negative synthetic samples of the recipe; ``None`` if it has no synthetic source."""
    from ml.data import synthetic
    from ml.fsutil import atomic_dir

    n = max((s.synthetic or 0) for s in recipe.data.sources)
    if n == 0:
        return None
    h, w = recipe.data.synthetic_size
    seed = recipe.data.synthetic_seed
    root = cache_dir / f"synthetic-hn-v{synthetic.GENERATOR_VERSION}-n{n}-{h}x{w}-s{seed}"
    if (root / ".complete").is_file():
        return root
    with atomic_dir(root) as staging:
        synthetic.generate(
            n, staging, size=(h, w), seed=seed, config=synthetic.SynthConfig.hard_negatives(), workers=1
        )
        (staging / ".complete").write_text("")
    return root


def train_default(
    recipe: Recipe,
    *,
    seed: int,
    out_dir: str | os.PathLike[str],
    datasets_root: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] = "state/cache",
    tracking_uri: str | None = "none",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the recipe for one seed; returns (and writes) ``out_dir/summary.json``."""
    from ml.data.mixture import build_mixture
    from ml.train import TrainParams, train

    out = Path(out_dir)
    asked = effective_recipe(recipe, overrides)
    if (out / SUMMARY_FILE).is_file():
        # This seed already finished (training, calibration, summary): a rerun only reports it, and only when it
        # asks for the same recipe: a changed recipe must not be answered with an old run's numbers.
        done = read_summary(out / SUMMARY_FILE)
        if "recipe" not in done:
            log.warning("%s predates recipe records: reporting it as trained with the recipe asked for", out)
        elif done["recipe"] != asked:
            changed = _changed_keys(done["recipe"], asked)
            raise ValueError(
                f"{out} holds seed {seed} trained with another recipe (differs in {', '.join(changed)}): "
                "train into another --out, or remove that folder to retrain"
            )
        return done
    synth = synthetic_cache(recipe, Path(cache_dir))
    mixture = build_mixture(recipe.data, datasets_root, synth)
    params = TrainParams.model_validate({**recipe.train, **(overrides or {}), "seed": seed})
    result = train(
        params,
        data_root=str(datasets_root),
        out_dir=out,
        init_from=recipe.init_from,
        tracking_uri=tracking_uri,
        register=False,
        tags={"run_name": f"default-seed{seed}", "recipe": "default"},
        resume=True,
        pairs=(mixture.train, mixture.val),
        sample_weights=mixture.weights,
    )
    return finalize(
        result.model_dir, mixture.val, seed=seed, counts=mixture.counts, out_dir=out, recipe=asked
    )


def effective_recipe(recipe: Recipe, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe as trained (``--set`` overrides applied and typed, so ``epochs=72`` from the command line equals
    ``epochs: 72`` in a file), as plain JSON: what a summary records."""
    from ml.train import TrainParams

    doc = recipe.model_dump(mode="json")
    merged = {**doc["train"], **(overrides or {})}
    typed = TrainParams.model_validate({**merged, "seed": 0}).model_dump(mode="json")
    doc["train"] = {k: typed.get(k, v) for k, v in merged.items()}
    result: dict[str, Any] = json.loads(json.dumps(doc, sort_keys=True))
    return result


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys


def train_seeds_side_by_side(
    recipe_path: str | os.PathLike[str],
    seeds: Sequence[int],
    *,
    out_dir: str | os.PathLike[str],
    jobs: int,
    extra_args: Sequence[str] = (),
    cache_dir: str | os.PathLike[str] = "state/cache",
) -> None:
    """Train ``seeds`` in up to ``jobs`` child processes (``crackseg train-default --seed N``), each logging to
    ``OUT/seedN.log``; seeds that already finished return at once. The synthetic samples are generated here first,
    so the children never race to write the same cache.

    Raises:
        ValueError: a seed's process failed (the message names the seed and its log).
    """
    import subprocess
    import sys
    import time

    synthetic_cache(Recipe.load(recipe_path), Path(cache_dir))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pending = list(seeds)
    running: dict[int, subprocess.Popen[bytes]] = {}
    failed: list[int] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                seed = pending.pop(0)
                cmd = [sys.executable, "-m", "services.cli", "train-default", "--seed", str(seed)]
                cmd += ["--out", str(out), "--recipe", str(recipe_path), *extra_args]
                with open(out / f"seed{seed}.log", "ab") as logf:
                    running[seed] = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
                log.info("seed %d training in process %d (log: %s)", seed, running[seed].pid, logf.name)
            for seed, proc in list(running.items()):
                if proc.poll() is not None:
                    del running[seed]
                    if proc.returncode != 0:
                        failed.append(seed)
            time.sleep(0.5)
    finally:
        for proc in running.values():  # interrupted: stop the children (their checkpoints let a rerun resume)
            proc.terminate()
            proc.wait()
    if failed:
        logs = ", ".join(str(out / f"seed{s}.log") for s in failed)
        raise ValueError(f"seed(s) {failed} failed: see {logs}")


def finalize(
    model_dir: Path,
    val_pairs: list[Any],
    *,
    seed: int,
    counts: dict[str, Any],
    out_dir: Path,
    recipe: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Calibrate ``model_dir`` on ``val_pairs``, re-pick its threshold on them, save, and write the summary
    (with ``recipe``, the :func:`effective_recipe` it was trained with, when given)."""
    from ml.calibrate import calibrate
    from ml.checkpoint import load_model, save_model
    from ml.data.torchdata import SegmentationDataset
    from ml.evaluate import report_from_sweep, sweep
    from ml.fsutil import atomic_write_json

    loaded = load_model(model_dir)
    config = loaded.config
    val = SegmentationDataset(val_pairs, cache=True)
    if "calibration" in (config.model_extra or {}):
        raise ValueError(f"{model_dir} is already calibrated: finalize runs once on the trained weights")
    cal = calibrate(loaded.module, val, mean=config.mean, std=config.std)
    sw = sweep(
        loaded.module,
        val,
        mean=config.mean,
        std=config.std,
        fixed_thresholds=(0.5,),
        ids=[p.id for p in val_pairs],
    )
    ods = sw.curve.ods()
    threshold = ods.threshold
    # The served threshold is a grid value, so its per-image counts are the curve's own: no second pass.
    sw.fixed[threshold] = sw.curve.stats_at(ods.index)
    report = report_from_sweep(
        sw,
        model=str(model_dir),
        model_version=None,
        model_threshold=threshold,
        data_root="val",
        split="val",
    )
    metrics = {
        "val_p1": report.f1_ods,
        "val_p2": report.p2,
        "val_ois": report.ois,
        "val_ap": report.ap,
        "val_f1_at_threshold": report.model_threshold["f1"],
        "val_precision_at_threshold": report.model_threshold["precision"],
        "val_recall_at_threshold": report.model_threshold["recall"],
        "val_f1_at_0_5": report.f1_at_0_5,
        "val_ece_before": cal.ece_before,
        "val_ece_after": cal.ece_after,
    }
    new_config = config.model_copy(
        update={
            "threshold": threshold,
            # Threshold-dependent numbers from training predate calibration: only the epoch carries over.
            "metrics": {"best_epoch": config.metrics.get("best_epoch", 0.0), **metrics},
            "calibration": {"method": "platt", "scale": cal.scale, "bias": cal.bias, "folded_into": "head"},
        }
    )
    save_model(loaded.module, new_config, model_dir)
    summary = {
        "seed": seed,
        "threshold": threshold,
        "counts": counts,
        "metrics": metrics,
        "per_source": _per_source(report.per_image),
        **({"recipe": recipe} if recipe is not None else {}),
    }
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return summary


def _per_source(per_image: list[dict[str, Any]]) -> dict[str, float]:
    """Mean per-image F1 at the ODS threshold, by source (the id prefix)."""
    groups: dict[str, list[float]] = {}
    for row in per_image:
        groups.setdefault(str(row["id"]).split("/", 1)[0], []).append(float(row["f1"]))
    return {k: statistics.fmean(v) for k, v in sorted(groups.items())}


def summarise_seeds(summaries: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean": …, "std": …, "n": …}}`` over seeds (sample std; 0 for one seed)."""
    if not summaries:
        raise ValueError("no seed summaries to aggregate")
    keys = sorted(set.intersection(*(set(s["metrics"]) for s in summaries)))
    out: dict[str, dict[str, float]] = {}
    for k in keys:
        values = [float(s["metrics"][k]) for s in summaries]
        out[k] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": float(len(values)),
        }
    return out


def read_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed run with the best validation P1: the one a recipe ships (the first on a tie)."""
    return max(runs, key=lambda r: float(r["metrics"]["val_p1"]))


# Files of a shipped model folder that training writes; anything else there (variants.json, the card) is kept.
SHIPPED_FILES = ("config.json", "model.safetensors", "model.onnx")


def ship_best_seed(
    seeds_doc: dict[str, Any], out_dir: str | os.PathLike[str], dest: str | os.PathLike[str]
) -> int:
    """Copy the seed with the best validation P1 (``out_dir/seedN/model``) into ``dest`` with ``seeds.json``.

    ``dest`` is replaced whole and atomically (a crash leaves the old folder); files of ``dest`` that training
    does not write (``variants.json``, ``MODEL_CARD.md``) are carried over, so the card must be rendered again
    (``crackseg train-default --ship`` does). Returns the shipped seed.

    Raises:
        ValueError: no run in ``seeds_doc``, or the best seed's model folder lacks a file.
    """
    import shutil

    from ml.fsutil import atomic_dir, atomic_write_json

    runs = seeds_doc.get("runs") or []
    if not runs:
        raise ValueError("no seed runs to ship")
    best = best_run(runs)
    src = Path(out_dir) / f"seed{best['seed']}" / "model"
    missing = [name for name in SHIPPED_FILES if not (src / name).is_file()]
    if missing:
        raise ValueError(f"cannot ship seed {best['seed']}: {src} lacks {', '.join(missing)}")
    target = Path(dest)
    with atomic_dir(target) as staging:
        if target.is_dir():
            for old in target.iterdir():
                if old.is_file() and old.name not in (*SHIPPED_FILES, "seeds.json"):
                    shutil.copy2(old, staging / old.name)
        for name in SHIPPED_FILES:
            shutil.copy2(src / name, staging / name)
        atomic_write_json(staging / "seeds.json", seeds_doc)
    return int(best["seed"])
