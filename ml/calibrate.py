"""Probability calibration: Platt scaling fitted on validation pixels and folded into the network's last layer.

A segmentation net trained with a positive-weighted BCE + Dice is confident in the wrong places: its best F1
threshold sits at 0.9 and "probability 0.7" means little. Platt scaling fits ``p = sigmoid(a·z + b)`` to the
validation labels (``z`` the network's logit) by maximum likelihood. Because the head is a 1×1 convolution, the
map folds exactly into it (``w ← a·w``, ``bias ← a·bias + b``), so every runtime (PyTorch, ONNX) serves calibrated
probabilities with no extra code. For a calibrated model the F1-optimal threshold is about half the best F1
(Lipton et al. 2014), so it lands near 0.4–0.45 rather than 0.9, and a threshold slider means what it says.

Quality of calibration is reported as the expected calibration error (ECE, 15 equal-width bins, pixel-weighted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ml.evaluate import normalise

ECE_BINS = 15


@dataclass(frozen=True)
class Calibration:
    """``p = sigmoid(scale · logit + bias)`` and the ECE before/after on the pixels it was fitted on."""

    scale: float
    bias: float
    ece_before: float
    ece_after: float
    n_pixels: int


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Pixel-weighted ECE: Σ_bins (n_b / N) · |mean label − mean probability| over ``bins`` equal-width bins.

    Args:
        probs: (P,) float probabilities.
        labels: (P,) 0/1 (bool or float) ground truth.
    """
    if probs.shape != labels.shape or probs.ndim != 1:
        raise ValueError(f"probs and labels must be equal 1-D tensors, got {probs.shape} and {labels.shape}")
    if probs.numel() == 0:
        raise ValueError("cannot compute an ECE of zero pixels")
    p = probs.double().clamp(0, 1)
    y = labels.double()
    idx = torch.clamp((p * bins).long(), max=bins - 1)
    conf = torch.bincount(idx, weights=p, minlength=bins)
    acc = torch.bincount(idx, weights=y, minlength=bins)
    return float((conf - acc).abs().sum() / p.numel())


def fit_platt(
    logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100, fixed_scale: float | None = None
) -> tuple[float, float]:
    """Maximum-likelihood ``(scale, bias)`` for ``sigmoid(scale · logits + bias)`` (L-BFGS on the mean BCE).

    With ``fixed_scale`` only the bias is fitted (a shift of the logits that keeps their ranking).

    Raises:
        ValueError: the fitted scale is not positive (the logits rank crack pixels *below* background).
    """
    z = logits.double().flatten()
    y = labels.double().flatten()
    scale_t = torch.tensor(fixed_scale if fixed_scale is not None else 1.0, dtype=torch.float64)
    bias_t = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    free = [bias_t] if fixed_scale is not None else [scale_t.requires_grad_(True), bias_t]
    opt = torch.optim.LBFGS(free, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(scale_t * z + bias_t, y)
        loss.backward()
        return loss

    opt.step(closure)
    scale, bias = float(scale_t.detach()), float(bias_t.detach())
    if not scale > 0:
        raise ValueError(
            f"Platt scaling found a non-positive scale {scale:.4g}: the model ranks pixels wrongly"
        )
    return scale, bias


@torch.no_grad()
def collect_logits(
    module: nn.Module,
    dataset: torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    max_pixels: int = 4_000_000,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of a uniform random sample of validation pixels (every image contributes equally)."""
    module.eval()
    n = len(dataset)  # type: ignore[arg-type]
    per_image = max(1, max_pixels // max(n, 1))
    g = torch.Generator().manual_seed(seed)
    zs, ys = [], []
    for i in range(n):
        image, mask = dataset[i]
        logits = module(normalise(image[None], mean, std)).float().flatten()  # (H·W,)
        labels = (mask > 0.5).flatten()
        if logits.numel() > per_image:
            pick = torch.randperm(logits.numel(), generator=g)[:per_image]
            logits, labels = logits[pick], labels[pick]
        zs.append(logits)
        ys.append(labels)
    return torch.cat(zs), torch.cat(ys)


def head_of(module: nn.Module) -> nn.Conv2d:
    """The final 1×1 convolution that produces the crack logit."""
    head = getattr(module, "head", None)
    if not isinstance(head, nn.Conv2d) or head.kernel_size != (1, 1) or head.out_channels != 1:
        raise ValueError(
            f"{type(module).__name__} has no 1×1 single-logit 'head' convolution to fold Platt into"
        )
    return head


@torch.no_grad()
def fold_into_head(module: nn.Module, scale: float, bias: float) -> None:
    """Make ``module`` output ``scale · logit + bias`` by rewriting its last 1×1 convolution in place."""
    head = head_of(module)
    head.weight.mul_(scale)
    if head.bias is None:
        head.bias = nn.Parameter(torch.zeros(1, dtype=head.weight.dtype, device=head.weight.device))
    head.bias.mul_(scale).add_(bias)


def calibrate(
    module: nn.Module,
    dataset: torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    max_pixels: int = 4_000_000,
) -> Calibration:
    """Fit Platt scaling on ``dataset`` (validation data) and fold it into ``module``'s head.

    Falls back to a bias-only fit (scale 1) when the full fit would invert the ranking of the pixels."""
    z, y = collect_logits(module, dataset, mean=mean, std=std, max_pixels=max_pixels)
    before = expected_calibration_error(torch.sigmoid(z), y)
    try:
        scale, bias = fit_platt(z, y)
    except ValueError:
        # A barely trained net can rank pixels backwards on validation; never flip its output — shift it only.
        scale, bias = fit_platt(z, y, fixed_scale=1.0)
    after = expected_calibration_error(torch.sigmoid(scale * z + bias), y)
    fold_into_head(module, scale, bias)
    return Calibration(scale=scale, bias=bias, ece_before=before, ece_after=after, n_pixels=int(z.numel()))
