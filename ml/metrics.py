"""Segmentation metrics, functional style (as in segmentation_models.pytorch).

``get_stats(pred, target)`` gives per-image true/false positive/negative pixel counts; the score functions turn
counts into precision, recall, F1, IoU and Dice with an explicit reduction:

- ``"pooled"``: counts are summed over all images first, then one score is computed (dataset-level, "micro").
  This is how the crack-detection literature reports F1 (DeepCrack, CrackForest), and the default here.
- ``"per_image"``: one score per image, a tensor of shape (N,).
- ``"mean"``: the mean of the per-image scores ("imagewise macro").

Conventions, stated once:

- A pixel is predicted crack when ``probability >= threshold``.
- Zero division: a score whose denominator is 0 (e.g. precision of an image where nothing was predicted) takes the
  value ``zero_division`` (default 1.0). The only way F1/IoU/Dice hit 0/0 is an image with no crack where no crack
  was predicted, which is perfect agreement, hence 1.0. Pass 0.0 for the pessimistic convention.
- F1 and Dice are the same number for binary masks (``2tp / (2tp + fp + fn)``); both names exist because both
  communities use them.

Threshold sweeps (``ThresholdCurve``) are **pixel-exact**: a predicted pixel counts only where the ground truth
itself is crack (no distance tolerance — the BSDS benchmark's boundary matching with a tolerance is NOT applied, so
these numbers are stricter than tolerance-based ones). **P1 / ODS** is the F1 of pooled counts at the single best
threshold for the whole dataset; **P2** is the single threshold that maximises the mean per-image F1; **OIS** picks
the best threshold for each image, then pools those images' counts and computes one F1 from them (the BSDS
``collect_eval_bdry`` convention); ``ois_mean`` is the mean of per-image best F1; **AP** is the area under the
pooled precision–recall curve.
The sweep histograms each image's crack and background probabilities once (``len(thresholds) + 1`` bins whose edges
are the thresholds) and reads every threshold's counts off reverse cumulative sums, so the result is exactly what
re-thresholding at each grid value would give, at the cost of one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Reduction = Literal["pooled", "per_image", "mean"]


@dataclass(frozen=True)
class Stats:
    """Per-image confusion counts, each a (N,) int64 tensor."""

    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    tn: torch.Tensor

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.tp, self.fp, self.fn, self.tn))


def get_stats(pred: torch.Tensor, target: torch.Tensor) -> Stats:
    """Count tp, fp, fn, tn per image.

    Args:
        pred: (N, ...) bool predicted crack mask (threshold probabilities first: ``probs >= t``).
        target: (N, ...) bool ground truth of the same shape.

    Returns:
        ``Stats`` of four (N,) int64 tensors.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if pred.dtype != torch.bool or target.dtype != torch.bool:
        raise ValueError(
            f"get_stats takes bool masks, got {pred.dtype} and {target.dtype}: threshold probabilities first"
        )
    if pred.ndim < 1:
        raise ValueError("get_stats needs a leading image dimension (N, ...)")
    n = pred.shape[0]
    p = pred.reshape(n, -1)
    t = target.reshape(n, -1)
    tp = (p & t).sum(1)
    fp = (p & ~t).sum(1)
    fn = (~p & t).sum(1)
    tn = (~p & ~t).sum(1)
    return Stats(tp.long(), fp.long(), fn.long(), tn.long())


def _ratio(num: torch.Tensor, den: torch.Tensor, reduction: Reduction, zero_division: float) -> torch.Tensor:
    if reduction == "pooled":
        num, den = num.sum(0), den.sum(0)
    elif reduction not in ("per_image", "mean"):
        raise ValueError(f"reduction must be 'pooled', 'per_image' or 'mean', got {reduction!r}")
    num, den = num.double(), den.double()
    score = torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, zero_division))
    return score.mean(0) if reduction == "mean" else score


def precision(stats: Stats, reduction: Reduction = "pooled", zero_division: float = 1.0) -> torch.Tensor:
    """``tp / (tp + fp)``."""
    return _ratio(stats.tp, stats.tp + stats.fp, reduction, zero_division)


def recall(stats: Stats, reduction: Reduction = "pooled", zero_division: float = 1.0) -> torch.Tensor:
    """``tp / (tp + fn)``."""
    return _ratio(stats.tp, stats.tp + stats.fn, reduction, zero_division)


def f1_score(stats: Stats, reduction: Reduction = "pooled", zero_division: float = 1.0) -> torch.Tensor:
    """``2tp / (2tp + fp + fn)`` (the harmonic mean of precision and recall, without its 0/0 cases)."""
    return _ratio(2 * stats.tp, 2 * stats.tp + stats.fp + stats.fn, reduction, zero_division)


def dice_score(stats: Stats, reduction: Reduction = "pooled", zero_division: float = 1.0) -> torch.Tensor:
    """Dice coefficient; identical to F1 for binary masks."""
    return f1_score(stats, reduction, zero_division)


def iou_score(stats: Stats, reduction: Reduction = "pooled", zero_division: float = 1.0) -> torch.Tensor:
    """``tp / (tp + fp + fn)`` (Jaccard index)."""
    return _ratio(stats.tp, stats.tp + stats.fp + stats.fn, reduction, zero_division)


def scores(stats: Stats, reduction: Reduction = "pooled", zero_division: float = 1.0) -> dict[str, float]:
    """All five scores as floats (``reduction`` must not be ``"per_image"``)."""
    if reduction == "per_image":
        raise ValueError("scores() returns floats: use 'pooled' or 'mean', or call the functions per image")
    return {
        "precision": float(precision(stats, reduction, zero_division)),
        "recall": float(recall(stats, reduction, zero_division)),
        "f1": float(f1_score(stats, reduction, zero_division)),
        "iou": float(iou_score(stats, reduction, zero_division)),
        "dice": float(dice_score(stats, reduction, zero_division)),
    }


def default_thresholds() -> torch.Tensor:
    """0.01, 0.02, …, 0.99 (99 values; 0.5 is exactly one of them)."""
    return torch.arange(1, 100, dtype=torch.float64) / 100


@dataclass(frozen=True)
class ThresholdScore:
    """Pooled scores at one threshold of the sweep."""

    threshold: float
    f1: float
    precision: float
    recall: float
    index: int  # position of ``threshold`` in the grid


@dataclass(frozen=True)
class OISScore:
    """Optimal image scale: per-image best thresholds and their aggregate."""

    f1: float  # BSDS convention: F1 of the counts pooled at each image's best threshold
    precision: float
    recall: float
    f1_mean: float  # mean of per-image best F1
    thresholds: list[float]  # best threshold of each image, in update order
    per_image_f1: list[float]


class ThresholdCurve:
    """Accumulates per-image tp/fp/fn at every threshold of a grid, one histogram pass per image.

    Args:
        thresholds: strictly increasing values in (0, 1); defaults to ``default_thresholds()``.
        zero_division: as in the module docstring.

    Usage: ``curve.update(probs, target)`` for each batch ((N, ...) float probabilities and bool masks), then
    ``curve.ods()``, ``curve.ois()``, ``curve.pr_curve()``, ``curve.stats_at(threshold_index)``.
    """

    def __init__(self, thresholds: torch.Tensor | None = None, zero_division: float = 1.0) -> None:
        t = default_thresholds() if thresholds is None else torch.as_tensor(thresholds, dtype=torch.float64)
        if t.ndim != 1 or t.numel() == 0:
            raise ValueError("thresholds must be a non-empty 1-D sequence")
        if not bool(((t > 0) & (t < 1)).all()) or not bool((t[1:] > t[:-1]).all()):
            raise ValueError("thresholds must be strictly increasing values in (0, 1)")
        self.thresholds = t
        self.zero_division = zero_division
        self._tp: list[torch.Tensor] = []  # each (N, K)
        self._fp: list[torch.Tensor] = []
        self._pos: list[torch.Tensor] = []  # each (N,)
        self._neg: list[torch.Tensor] = []

    def __len__(self) -> int:
        return sum(x.shape[0] for x in self._pos)

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``probs`` (N, ...) float in [0, 1], ``target`` (N, ...) bool of the same shape."""
        if probs.shape != target.shape:
            raise ValueError(f"probs {tuple(probs.shape)} and target {tuple(target.shape)} differ in shape")
        if target.dtype != torch.bool:
            raise ValueError(f"target must be a bool mask, got {target.dtype}")
        n, k = probs.shape[0], self.thresholds.numel()
        p = probs.reshape(n, -1)
        if not p.is_floating_point():
            raise ValueError(f"probs must be a float tensor, got {p.dtype}")
        t = target.reshape(n, -1)
        # Thresholds in the probabilities' dtype, so "p >= t" here is the same comparison as ``probs >= t``
        # elsewhere (a float32 0.7 is below the float64 0.7).
        edges = self.thresholds.to(device=p.device, dtype=p.dtype)
        # bin b = number of thresholds <= p: the pixel is predicted crack at threshold j exactly when b > j.
        bins = torch.bucketize(p, edges, right=True)  # (N, P) in [0, K]
        flat = bins + (k + 1) * torch.arange(n, device=p.device)[:, None]
        hist_pos = torch.bincount(flat[t], minlength=n * (k + 1)).reshape(n, k + 1)
        hist_neg = torch.bincount(flat[~t], minlength=n * (k + 1)).reshape(n, k + 1)
        # Reverse cumulative sum: count of pixels in bins >= b; threshold j needs bins >= j + 1.
        above_pos = hist_pos.flip(1).cumsum(1).flip(1)[:, 1:]  # (N, K)
        above_neg = hist_neg.flip(1).cumsum(1).flip(1)[:, 1:]
        self._tp.append(above_pos.cpu())
        self._fp.append(above_neg.cpu())
        self._pos.append(t.sum(1).cpu())
        self._neg.append((~t).sum(1).cpu())

    def _counts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self._pos:
            raise ValueError("ThresholdCurve is empty: call update() with at least one image")
        tp, fp = torch.cat(self._tp), torch.cat(self._fp)  # (N, K)
        pos, neg = torch.cat(self._pos)[:, None], torch.cat(self._neg)[:, None]
        return tp, fp, pos - tp, neg - fp

    def stats_at(self, index: int) -> Stats:
        """Per-image ``Stats`` at ``thresholds[index]``."""
        tp, fp, fn, tn = self._counts()
        return Stats(tp[:, index], fp[:, index], fn[:, index], tn[:, index])

    def _pooled(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Stats of shape (N, K): the "pooled" reduction sums over images and leaves one score per threshold.
        s = Stats(*self._counts())
        return (
            precision(s, "pooled", self.zero_division),
            recall(s, "pooled", self.zero_division),
            f1_score(s, "pooled", self.zero_division),
        )

    def pr_curve(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pooled (precision, recall, f1), each (K,), one value per threshold."""
        return self._pooled()

    def ods(self) -> ThresholdScore:
        """The single best dataset threshold (ties: the lowest threshold)."""
        p, r, f = self._pooled()
        j = int(torch.argmax(f))
        return ThresholdScore(float(self.thresholds[j]), float(f[j]), float(p[j]), float(r[j]), j)

    def ois(self) -> OISScore:
        """Best threshold per image (ties: the lowest), aggregated as in BSDS (pooled) and as a mean."""
        tp, fp, fn, tn = self._counts()
        per = f1_score(Stats(tp, fp, fn, tn), "per_image", self.zero_division)  # (N, K)
        best = torch.argmax(per, dim=1)  # (N,)
        rows = torch.arange(tp.shape[0])
        chosen = Stats(tp[rows, best], fp[rows, best], fn[rows, best], tn[rows, best])
        per_best = per[rows, best]
        return OISScore(
            f1=float(f1_score(chosen, "pooled", self.zero_division)),
            precision=float(precision(chosen, "pooled", self.zero_division)),
            recall=float(recall(chosen, "pooled", self.zero_division)),
            f1_mean=float(per_best.mean()),
            thresholds=[float(self.thresholds[j]) for j in best],
            per_image_f1=[float(x) for x in per_best],
        )

    def best_mean(self) -> ThresholdScore:
        """P2: the single threshold that maximises the **mean per-image** F1 (precision/recall: per-image means).

        Unlike ODS, every image weighs the same whatever its crack area, so a model that only finds the wide cracks
        of a few images scores lower here (ties: the lowest threshold)."""
        tp, fp, fn, tn = self._counts()
        s = Stats(tp, fp, fn, tn)
        f = f1_score(s, "mean", self.zero_division)  # (K,)
        j = int(torch.argmax(f))
        p = precision(s, "mean", self.zero_division)
        r = recall(s, "mean", self.zero_division)
        return ThresholdScore(float(self.thresholds[j]), float(f[j]), float(p[j]), float(r[j]), j)

    def average_precision(self) -> float:
        """Area under the pooled precision–recall curve, as a step sum ``Σ (R_k − R_{k+1}) · P_k`` over the grid.

        Thresholds increase along the grid, so recall falls; the segment from the lowest threshold down to recall
        0 uses the grid's own points only (no interpolation), which slightly underestimates AP at the ends."""
        p, r, _ = self._pooled()
        r_next = torch.cat([r[1:], torch.zeros(1, dtype=r.dtype)])
        return float(((r - r_next).clamp(min=0) * p).sum())

    def index_of(self, threshold: float) -> int | None:
        """Index of ``threshold`` in the grid, or None when it is not one of its values."""
        hits = torch.nonzero(torch.isclose(self.thresholds, torch.tensor(threshold, dtype=torch.float64)))
        return int(hits[0]) if hits.numel() else None


class ToleranceCurve:
    """Pooled precision/recall/F1 at every threshold **with a k-pixel tolerance** (reported apart, labelled).

    A predicted crack pixel is correct when a ground-truth crack pixel lies within ``k`` pixels of it (Chebyshev
    distance: a (2k+1)×(2k+1) window); a ground-truth pixel is found when a predicted pixel lies within ``k`` of
    it. Precision and recall therefore count different pixels, and ``F1 = 2PR / (P + R)``. This is the kind of
    slack crack papers grant for annotation jitter (often k = 2); it is *not* the BSDS bipartite matching, and the
    pixel-exact ``ThresholdCurve`` stays the headline number.

    Args:
        k: tolerance in pixels (≥ 1).
        thresholds: as in :class:`ThresholdCurve`.
    """

    def __init__(self, k: int, thresholds: torch.Tensor | None = None) -> None:
        if k < 1:
            raise ValueError(
                f"tolerance must be at least 1 pixel, got {k} (k = 0 is the pixel-exact ThresholdCurve)"
            )
        self.k = k
        self.thresholds = (
            default_thresholds() if thresholds is None else torch.as_tensor(thresholds, dtype=torch.float64)
        )
        n = self.thresholds.numel()
        self._pred_ok = torch.zeros(n, dtype=torch.int64)
        self._pred_bad = torch.zeros(n, dtype=torch.int64)
        self._found = torch.zeros(n, dtype=torch.int64)
        self._positives = 0

    def _above(self, values: torch.Tensor) -> torch.Tensor:
        """For each threshold, how many of ``values`` are >= it."""
        k = self.thresholds.numel()
        bins = torch.bucketize(values.flatten(), self.thresholds.to(values.dtype), right=True)
        hist = torch.bincount(bins, minlength=k + 1)
        return hist.flip(0).cumsum(0).flip(0)[1:]

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """Add images: ``probs`` (N, H, W) or (N, 1, H, W) float, ``target`` bool of the same shape."""
        import torch.nn.functional as F

        if probs.shape != target.shape:
            raise ValueError(f"probs {tuple(probs.shape)} and target {tuple(target.shape)} differ in shape")
        p = probs.reshape(-1, 1, *probs.shape[-2:]).float()
        t = target.reshape(-1, 1, *target.shape[-2:])
        window = 2 * self.k + 1
        near_truth = F.max_pool2d(t.float(), window, stride=1, padding=self.k) > 0  # GT within k
        near_pred = F.max_pool2d(p, window, stride=1, padding=self.k)  # best probability within k
        self._pred_ok += self._above(p[near_truth])
        self._pred_bad += self._above(p[~near_truth])
        self._found += self._above(near_pred[t])
        self._positives += int(t.sum())

    def pr_curve(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(precision, recall, f1) per threshold; 0/0 precision (nothing predicted) is 1, 0/0 recall is 1."""
        predicted = (self._pred_ok + self._pred_bad).double()
        p = torch.where(
            predicted > 0, self._pred_ok.double() / predicted.clamp(min=1), torch.ones_like(predicted)
        )
        r = self._found.double() / self._positives if self._positives else torch.ones_like(p)
        f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp(min=1e-12), torch.zeros_like(p))
        return p, r, f

    def ods(self) -> ThresholdScore:
        """The best single threshold of the tolerant, pooled F1."""
        p, r, f = self.pr_curve()
        j = int(torch.argmax(f))
        return ThresholdScore(float(self.thresholds[j]), float(f[j]), float(p[j]), float(r[j]), j)
