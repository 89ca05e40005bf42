"""Evaluate a checkpoint on a dataset split: ODS/OIS F1, F1 at 0.5, precision/recall/IoU/Dice, per image.

Every image is run at full size (the network pads internally), one at a time, so datasets with mixed image sizes
work. Which threshold each number uses is part of its name; unqualified ``precision``, ``recall`` and ``iou`` are
pooled at the ODS threshold, the protocol of the crack-detection literature (DeepCrack reports P/R/F1 at ODS), and
``dice`` is the mean per-image Dice at that threshold (pooled Dice would repeat ``f1_ods``). The ``model_threshold``
block is what the predictor will actually do: the threshold stored in the checkpoint (chosen on validation data).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ml import metrics
from ml.metrics import Stats, ThresholdCurve, ToleranceCurve


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] → ``(x - mean) / std`` per channel, as ``ModelConfig`` prescribes."""
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - m) / s


@dataclass
class Sweep:
    """What one inference pass over a dataset collected.

    Attributes:
        curve: per-image counts at every threshold of the grid.
        fixed: per-image ``Stats`` at each requested fixed threshold.
        ids: image ids in order.
        samples: the first ``keep`` images as (rgb (H,W,3) uint8, probs (H,W) float32, target (H,W) bool).
    """

    curve: ThresholdCurve
    fixed: dict[float, Stats]
    ids: list[str]
    crack_fraction: list[float]
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    tolerance: ToleranceCurve | None = None


@torch.no_grad()
def sweep(
    module: nn.Module,
    dataset: torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device = "cpu",
    fixed_thresholds: Sequence[float] = (0.5,),
    keep: int = 0,
    autocast_dtype: torch.dtype | None = None,
    ids: Sequence[str] | None = None,
    progress: bool = False,
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
    tolerance: int = 0,
) -> Sweep:
    """Run ``module`` over every (image (3,H,W) in [0,1], mask (1,H,W)) of ``dataset``, one full image at a time.

    ``predict`` replaces the plain forward pass: it takes the ``(H, W, 3) uint8`` photo and returns ``(H, W)``
    probabilities — evaluation passes the serving path (:class:`ml.inference.Segmenter`, tiled for large photos)
    so that what is measured is what is served. ``tolerance`` > 0 also fills a :class:`ToleranceCurve`.
    """
    from tqdm import tqdm

    was_training = module.training
    module.eval()
    device = torch.device(device)
    curve = ThresholdCurve()
    tol = ToleranceCurve(tolerance) if tolerance > 0 else None
    fixed_thresholds = sorted(set(fixed_thresholds))
    per_fixed: dict[float, list[Stats]] = {t: [] for t in fixed_thresholds}
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    fractions: list[float] = []
    n = len(dataset)  # type: ignore[arg-type]
    try:
        for i in tqdm(range(n), desc="eval", unit="img", disable=None if progress else True, leave=False):
            image, mask = dataset[i]
            if predict is not None:
                rgb = (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
                probs = torch.from_numpy(predict(rgb))[None, None].to(device)  # (1, 1, H, W)
            else:
                x = normalise(image[None].to(device), mean, std)  # (1, 3, H, W)
                if autocast_dtype is not None:
                    with torch.autocast(device_type=device.type, dtype=autocast_dtype):
                        logits = module(x)
                else:
                    logits = module(x)
                probs = torch.sigmoid(logits.float())  # (1, 1, H, W)
            target = mask[None].to(device) > 0.5  # (1, 1, H, W) bool
            curve.update(probs, target)
            if tol is not None:
                tol.update(probs, target)
            for t in fixed_thresholds:
                per_fixed[t].append(metrics.get_stats(probs >= t, target))
            fractions.append(float(target.float().mean()))
            if i < keep:
                rgb = (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
                samples.append((rgb, probs[0, 0].cpu().numpy(), target[0, 0].cpu().numpy()))
    finally:
        module.train(was_training)
    fixed = {
        t: Stats(*(torch.cat([getattr(s, k) for s in stats]) for k in ("tp", "fp", "fn", "tn")))
        for t, stats in per_fixed.items()
        if stats
    }
    names = list(ids) if ids is not None else [str(i) for i in range(n)]
    return Sweep(
        curve=curve, fixed=fixed, ids=names, crack_fraction=fractions, samples=samples, tolerance=tol
    )


@dataclass
class EvalReport:
    """Scores of one model on one dataset split (see the module docstring for which threshold is which)."""

    model: str
    model_version: str | None
    data_root: str
    split: str | None
    n_images: int
    f1_ods: float
    threshold_ods: float
    p2: float
    threshold_p2: float
    ap: float
    f1_at_0_5: float
    ois: float
    ois_mean: float
    precision: float
    recall: float
    iou: float
    dice: float
    precision_at_0_5: float
    recall_at_0_5: float
    model_threshold: dict[str, float]
    per_image: list[dict[str, Any]]
    tolerance: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self, max_rows: int = 60) -> str:
        """A plain-text summary and per-image table for the terminal."""
        mt = self.model_threshold
        lines = [
            f"model {self.model} (version {self.model_version or '-'}) on {self.data_root} "
            f"[{self.split or 'all'}], {self.n_images} images",
            f"  P1 (ODS)   {self.f1_ods:.4f}  (best single threshold {self.threshold_ods:.2f}, counts pooled)",
            f"  P2         {self.p2:.4f}  (best single threshold {self.threshold_p2:.2f}, mean per-image F1)",
            f"  AP         {self.ap:.4f}  (area under the pooled PR curve)",
            f"  F1 @ 0.5   {self.f1_at_0_5:.4f}  (P {self.precision_at_0_5:.4f}, R {self.recall_at_0_5:.4f})",
            f"  OIS        {self.ois:.4f}  (BSDS pooled; mean of per-image best {self.ois_mean:.4f})",
            f"  precision  {self.precision:.4f}  recall {self.recall:.4f}  IoU {self.iou:.4f}  "
            f"Dice {self.dice:.4f}  (at ODS; Dice = per-image mean)",
            f"  model threshold {mt['threshold']:.2f}: F1 {mt['f1']:.4f}  P {mt['precision']:.4f}  "
            f"R {mt['recall']:.4f}  IoU {mt['iou']:.4f}",
            "",
            f"  {'id':<24} {'f1':>7} {'prec':>7} {'recall':>7} {'iou':>7} {'best_t':>7} {'best_f1':>7} {'crack%':>7}",
        ]
        for row in self.per_image[:max_rows]:
            lines.append(
                f"  {row['id']:<24} {row['f1']:>7.4f} {row['precision']:>7.4f} {row['recall']:>7.4f} "
                f"{row['iou']:>7.4f} {row['best_threshold']:>7.2f} {row['best_f1']:>7.4f} "
                f"{100 * row['crack_fraction']:>7.2f}"
            )
        if self.tolerance is not None:
            t = self.tolerance
            lines.insert(
                6,
                f"  tolerant F1 {t['f1_ods']:.4f}  (k = {t['k_pixels']} px, threshold {t['threshold_ods']:.2f}; "
                "NOT pixel-exact, reported apart)",
            )
        if len(self.per_image) > max_rows:
            lines.append(f"  … {len(self.per_image) - max_rows} more rows in the JSON report")
        return "\n".join(lines)


def pr_figure(curve: ThresholdCurve, fixed_threshold: float, title: str = "validation PR curve") -> Any:
    """The pooled precision–recall curve with the P1 (ODS) point and the served threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, r, f = curve.pr_curve()
    ods = curve.ods()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(r.numpy(), p.numpy(), label="pooled PR (thresholds 0.01–0.99)")
    ax.scatter(
        [ods.recall],
        [ods.precision],
        color="red",
        zorder=3,
        label=f"P1 (ODS) F1 {ods.f1:.3f} @ {ods.threshold:.2f}",
    )
    j = curve.index_of(fixed_threshold)
    if j is not None:
        ax.scatter(
            [float(r[j])],
            [float(p[j])],
            color="black",
            marker="x",
            zorder=3,
            label=f"F1 {float(f[j]):.3f} @ {fixed_threshold:.2f}",
        )
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def resolve_model_dir(
    model: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """A local checkpoint folder for ``model`` (a folder, or a ``models:/`` URI downloaded into the cache)."""
    from ml.tracking import download_model, is_model_uri

    if is_model_uri(model):
        return download_model(str(model), cache_dir=cache_dir, tracking_uri=tracking_uri)
    path = Path(model)
    if not path.is_dir():
        raise ValueError(f"model {model!r} is neither a checkpoint folder nor a models:/ URI")
    return path


def report_from_sweep(
    sw: Sweep,
    *,
    model: str,
    model_version: str | None,
    model_threshold: float,
    data_root: str,
    split: str | None,
) -> EvalReport:
    """Turn a ``Sweep`` (which must hold fixed thresholds 0.5 and ``model_threshold``) into an ``EvalReport``."""
    curve = sw.curve
    ods = curve.ods()
    p2 = curve.best_mean()
    ois = curve.ois()
    at_ods = curve.stats_at(ods.index)
    at_05 = sw.fixed[0.5]
    at_model = sw.fixed[model_threshold]
    per_f1 = metrics.f1_score(at_ods, "per_image")
    per_p = metrics.precision(at_ods, "per_image")
    per_r = metrics.recall(at_ods, "per_image")
    per_iou = metrics.iou_score(at_ods, "per_image")
    per_image = [
        {
            "id": sw.ids[i],
            "f1": float(per_f1[i]),
            "precision": float(per_p[i]),
            "recall": float(per_r[i]),
            "iou": float(per_iou[i]),
            "best_threshold": ois.thresholds[i],
            "best_f1": ois.per_image_f1[i],
            "crack_fraction": sw.crack_fraction[i],
        }
        for i in range(len(sw.ids))
    ]
    model_scores = metrics.scores(at_model)
    return EvalReport(
        model=model,
        model_version=model_version,
        data_root=data_root,
        split=split,
        n_images=len(sw.ids),
        f1_ods=ods.f1,
        threshold_ods=ods.threshold,
        p2=p2.f1,
        threshold_p2=p2.threshold,
        ap=curve.average_precision(),
        f1_at_0_5=float(metrics.f1_score(at_05)),
        ois=ois.f1,
        ois_mean=ois.f1_mean,
        precision=ods.precision,
        recall=ods.recall,
        iou=float(metrics.iou_score(at_ods)),
        dice=float(metrics.dice_score(at_ods, "mean")),
        precision_at_0_5=float(metrics.precision(at_05)),
        recall_at_0_5=float(metrics.recall(at_05)),
        model_threshold={
            "threshold": model_threshold,
            "f1": model_scores["f1"],
            "precision": model_scores["precision"],
            "recall": model_scores["recall"],
            "iou": model_scores["iou"],
        },
        per_image=per_image,
        tolerance=_tolerance_block(sw.tolerance),
    )


def _tolerance_block(tol: ToleranceCurve | None) -> dict[str, Any] | None:
    if tol is None:
        return None
    best = tol.ods()
    return {
        "k_pixels": tol.k,
        "note": f"NOT pixel-exact: a pixel counts when a counterpart lies within {tol.k} px (Chebyshev)",
        "f1_ods": best.f1,
        "threshold_ods": best.threshold,
        "precision": best.precision,
        "recall": best.recall,
    }


def evaluate(
    model: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    split: str | None = "test",
    device: str = "cpu",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
    progress: bool = False,
    tile_size: int | None = None,
    pairs: Sequence[Any] | None = None,
    plot: str | os.PathLike[str] | None = None,
    tolerance: int = 0,
) -> EvalReport:
    """Evaluate a checkpoint folder or registry model (``models:/crackseg@champion``) on ``data_root[split]``.

    ``data_root`` is a ``split.json`` root, a ``<split>/images`` root or a flat ``images/`` + ``masks/`` folder
    (which has no splits: every pair is used). ``split=None`` evaluates every pair; explicit ``pairs`` (e.g. the
    fixed validation set) replace discovery. Every photo goes through the serving path (:class:`Segmenter`):
    photos larger than ``tile_size`` (default: the model config's, else 1024) are tiled exactly as served.

    Raises:
        ValueError: unknown model, dataset layout or split. ``DatasetIntegrityError`` for broken data.
    """
    from ml.checkpoint import load_model
    from ml.data.datasets import check_integrity, discover
    from ml.data.torchdata import SegmentationDataset
    from ml.inference import Segmenter

    model_dir = resolve_model_dir(model, cache_dir, tracking_uri)
    loaded = load_model(model_dir, device=device)
    pairs = list(pairs) if pairs is not None else discover(Path(data_root), split)
    if not pairs:
        raise ValueError(
            f"{data_root} has no image/mask pairs (expected images/ + masks/ with matching names)"
        )
    check_integrity(pairs)
    config = loaded.config
    tile = tile_size or int((config.model_extra or {}).get("tile_size", 1024))
    segmenter = Segmenter(loaded, tile_size=tile, device=device)
    sw = sweep(
        loaded.module,
        SegmentationDataset(pairs),
        mean=config.mean,
        std=config.std,
        device=device,
        fixed_thresholds=sorted({0.5, config.threshold}),
        ids=[p.id for p in pairs],
        progress=progress,
        predict=segmenter.probabilities,
        tolerance=tolerance,
    )
    if plot is not None:
        import matplotlib.pyplot as plt

        fig = pr_figure(
            sw.curve, config.threshold, title=f"PR curve: {Path(str(data_root)).name} [{split or 'all'}]"
        )
        Path(plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(plot, dpi=100)
        plt.close(fig)
    return report_from_sweep(
        sw,
        model=str(model),
        model_version=config.version,
        model_threshold=config.threshold,
        data_root=str(data_root),
        split=split,
    )
