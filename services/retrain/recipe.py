"""What a retraining run trains on and is judged on: the feedback split, the fine-tune call, the gate's numbers.

* The labelled feedback of the snapshot (all of it, not only what is newer than the watermark) is split by a seeded
  hash of each record id: ``holdout_fraction`` of it is held back for the gate and never trained on. The hash makes
  the split stable as feedback grows: a photo held back once is held back in every later run, so no model of the
  lineage has trained on the slice that judges it.
* The ``finetune`` recipe (``ml.finetune``) trains on the rest plus a replay of the base training data; the
  ``train`` recipe (``ml.train``, full training with validation-based selection) stays available for a scratch run.
* Metrics are read off ``ml.evaluate.EvalReport``; ``f1_at_threshold`` is the F1 at the model's served threshold.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.retrain.errors import ConfigError

if TYPE_CHECKING:
    from services.retrain.promote import GateDecision
    from services.retrain.settings import RunSettings

EVAL_KEYS = ("f1_ods", "f1_at_0_5", "ois", "precision", "recall", "iou", "dice", "threshold_ods", "n_images")
HOLDOUT_DIR = "feedback-holdout"
TRAIN_DIR = "feedback-train"


def _unit_hash(seed: int, record_id: str) -> float:
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_feedback(ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, held-back ids): an id is held back when its seeded hash falls below ``fraction``.

    With two or more ids, at least one is held back and at least one is trained on (the lowest / highest hash);
    a single id is trained on (nothing can be held back).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-back feedback fraction must lie in [0, 1), got {fraction}")
    ranked = sorted(set(ids), key=lambda i: (_unit_hash(seed, i), i))
    held = {i for i in ranked if _unit_hash(seed, i) < fraction}
    if len(ranked) >= 2 and fraction > 0:
        if not held:
            held = {ranked[0]}
        if len(held) == len(ranked):
            held.discard(ranked[-1])
    return [i for i in sorted(set(ids)) if i not in held], [i for i in sorted(set(ids)) if i in held]


def layout_split(feedback_dir: Path, out: Path, fraction: float, seed: int) -> tuple[Path, Path | None]:
    """Link the snapshot's feedback into ``out/feedback-train`` and ``out/feedback-holdout`` (flat folders).

    Returns (train folder, held-back folder or ``None`` when nothing is held back).
    """
    import shutil

    from ml.data.datasets import discover

    pairs = {p.id: p for p in discover(feedback_dir)}
    train_ids, held_ids = split_feedback(list(pairs), fraction, seed)
    folders = []
    for name, ids in ((TRAIN_DIR, train_ids), (HOLDOUT_DIR, held_ids)):
        folder = out / name
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir(parents=True)
        for i in ids:
            os.symlink(pairs[i].image.resolve(), folder / "images" / pairs[i].image.name)
            os.symlink(pairs[i].mask.resolve(), folder / "masks" / pairs[i].mask.name)
        folders.append(folder)
    return folders[0], folders[1] if held_ids else None


def replay_pairs(base_data: Path, split: str | None = "train") -> list[Any]:
    """The base training pairs to replay: ``split`` of a split root, or every pair of a flat folder."""
    from ml.data.datasets import available_splits, discover

    return discover(base_data, split if split in available_splits(base_data) else None)


def metrics_of(report: Any) -> dict[str, float]:
    """The registry/journal metrics of an ``EvalReport``, with ``f1_at_threshold`` (the served threshold's F1)."""
    out = {k: float(getattr(report, k)) for k in EVAL_KEYS}
    out["f1_at_threshold"] = float(report.model_threshold["f1"])
    out["threshold"] = float(report.model_threshold["threshold"])
    return out


def evaluate_metrics(model_dir: Path, data: Path, split: str | None) -> dict[str, float]:
    """``crackseg eval``'s numbers for one model on one set (the same function the CLI calls)."""
    from ml.evaluate import evaluate

    return metrics_of(evaluate(model_dir, data, split))


def load_train_params(path: Path | None) -> Any:
    """The ``train`` recipe's budget: ``path``'s ``train:`` section, or the defaults."""
    from ml.train import TrainParams

    if path is None:
        return TrainParams()
    try:
        return TrainParams.from_yaml(path)
    except ValueError as e:
        raise ConfigError(str(e)) from e


def load_finetune_params(path: Path | None) -> Any:
    """The ``finetune`` recipe: ``path``'s ``finetune:`` section, or the defaults."""
    from ml.finetune import FinetuneParams

    if path is None:
        return FinetuneParams()
    try:
        return FinetuneParams.from_yaml(path)
    except ValueError as e:
        raise ConfigError(str(e)) from e


def layout_feedback(settings: RunSettings, feedback_dir: Path, run_dir: Path) -> tuple[Path, Path | None]:
    """The run's (trained-on, held-back) feedback folders, laid out from the snapshot's feedback."""
    return layout_split(
        feedback_dir,
        run_dir / "feedback-split",
        settings.retrain_holdout_fraction,
        settings.retrain_holdout_seed,
    )


@dataclass(frozen=True)
class Trained:
    model_dir: Path
    run_id: str | None
    summary: dict[str, Any]


def train_challenger(
    settings: RunSettings,
    *,
    base: Path,
    feedback: Path,
    out_dir: Path,
    init_from: Path | None,
    tags: dict[str, str],
) -> Trained:
    """Train the challenger with the configured recipe on the base data and the feedback minus its held-back slice."""
    from ml.data.datasets import check_integrity, discover

    train_dir, holdout = layout_feedback(settings, feedback, out_dir)
    tags = {**tags, "feedback_held_back": str(len(discover(holdout)) if holdout else 0)}
    if settings.retrain_recipe == "finetune":
        from ml.finetune import finetune

        if init_from is None:
            raise ConfigError(
                "the finetune recipe needs a champion to start from (CRACKSEG_RETRAIN_INIT=champion)"
            )
        fb_pairs = discover(train_dir)
        check_integrity(fb_pairs)
        base_pairs = replay_pairs(base)
        check_integrity(base_pairs)
        result = finetune(
            load_finetune_params(settings.retrain_params),
            init_from=init_from,
            feedback=fb_pairs,
            base=base_pairs,
            out_dir=out_dir,
            tracking_uri=settings.mlflow_tracking_uri,
            tags=tags,
        )
        summary = {
            "recipe": "finetune",
            "steps": result.steps,
            "n_feedback": result.n_feedback,
            "n_replay_images": result.n_replay_images,
            "seconds": round(result.seconds, 1),
        }
        return Trained(result.model_dir, result.run_id, summary)
    from ml.train import train

    trained = train(
        load_train_params(settings.retrain_params),
        data_root=base,
        out_dir=out_dir,
        init_from=init_from,
        tracking_uri=settings.mlflow_tracking_uri,
        register=False,
        extra_data=[train_dir],
        resume=True,  # a rerun continues an interrupted training from its last epoch
        tags=tags,
    )
    summary = {"recipe": "train", "val_f1": trained.best_val_f1, "epochs": trained.epochs_run}
    return Trained(Path(trained.model_dir), trained.run_id, summary)


def evaluate_pair(
    settings: RunSettings, challenger: Path, champion: Path | None, holdout: Path | None
) -> tuple[dict[str, float], dict[str, float]]:
    """(challenger, champion) metrics on the base evaluation set, plus ``feedback_*`` on the held-back slice."""
    split = settings.eval_split or None
    models = {"challenger": challenger, "champion": champion}
    out: dict[str, dict[str, float]] = {"challenger": {}, "champion": {}}
    for role, model_dir in models.items():
        if model_dir is None:
            continue
        out[role] = evaluate_metrics(model_dir, settings.eval_data, split)
        if holdout is not None:
            held = evaluate_metrics(model_dir, holdout, None)
            out[role].update({f"feedback_{k}": v for k, v in held.items()})
    return out["challenger"], out["champion"]


def decide(settings: RunSettings, challenger: dict[str, float], champion: dict[str, float]) -> GateDecision:
    """The gate on the run's metrics (``promote.gate``) with the configured metric and margins."""
    from services.retrain.promote import gate

    metric = settings.retrain_metric
    fb = f"feedback_{metric}"
    feedback = (challenger[fb], champion[fb]) if fb in challenger and fb in champion else None
    return gate(
        metric,
        base=(challenger[metric], champion.get(metric)),
        feedback=feedback,
        tolerance=settings.retrain_tolerance,
        min_gain=settings.retrain_min_gain,
    )


def metric_tags(metrics: dict[str, float]) -> dict[str, str]:
    """Registry version tags for the evaluation metrics (base set, and ``feedback_*`` on the held-back slice)."""
    keys = ("f1_ods", "f1_at_0_5", "f1_at_threshold", "threshold", "ois", "precision", "recall", "iou")
    return {
        name: f"{metrics[name]:.4f}" for key in keys for name in (key, f"feedback_{key}") if name in metrics
    }
