"""Losses for thin-structure segmentation: weighted BCE (or focal BCE) + soft Dice.

Cracks cover 1.6–4 % of the pixels, so plain BCE learns to predict "no crack" everywhere. Two remedies are combined:
a positive-class weight in the BCE term (every crack pixel counts ``pos_weight`` times) and a soft Dice term, which
is a ratio of overlaps and therefore insensitive to how much background there is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - (2·Σpt + s) / (Σp + Σt + s)`` with ``p = sigmoid(logits)``, summed over the whole batch.

    Pooling over the batch (rather than averaging per-image Dice) keeps crack-free crops from producing a loss of
    0 or 1 depending only on ``smooth``.

    Args:
        logits: (N, 1, H, W) raw network outputs.
        target: (N, 1, H, W) float 0/1.
        smooth: additive smoothing; makes an all-background crop predicted all-background a loss of 0.
    """
    probs = torch.sigmoid(logits.float())
    target = target.float()
    intersection = (probs * target).sum()
    return 1.0 - (2.0 * intersection + smooth) / (probs.sum() + target.sum() + smooth)


def weighted_bce_loss(
    logits: torch.Tensor, target: torch.Tensor, pos_weight: float = 1.0, focal_gamma: float = 0.0
) -> torch.Tensor:
    """Mean binary cross-entropy with a positive-class weight, optionally focal.

    With ``focal_gamma > 0`` every pixel's term is scaled by ``(1 - p_t)**gamma`` (Lin et al. 2017), ``p_t`` being the
    predicted probability of the true class, so easy background pixels stop dominating the gradient.
    ``focal_gamma = 0`` is exactly ``F.binary_cross_entropy_with_logits(..., pos_weight=...)``.
    """
    logits = logits.float()
    target = target.float()
    weight = torch.tensor([pos_weight], dtype=logits.dtype, device=logits.device)
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight, reduction="none")
    if focal_gamma > 0:
        probs = torch.sigmoid(logits)
        p_t = probs * target + (1 - probs) * (1 - target)
        per_pixel = (1 - p_t) ** focal_gamma * per_pixel
    return per_pixel.mean()


class SegmentationLoss(nn.Module):
    """``bce_weight · BCE(pos_weight[, focal]) + dice_weight · SoftDice``.

    Args:
        pos_weight: weight of crack pixels in the BCE term (≈ background/crack pixel ratio, capped; 10 is typical).
        bce_weight: weight of the BCE (or focal) term.
        dice_weight: weight of the soft Dice term.
        focal_gamma: 0 for plain weighted BCE, > 0 for focal BCE.
        smooth: Dice smoothing.

    Shapes: logits and target (N, 1, H, W) → scalar.
    """

    def __init__(
        self,
        pos_weight: float = 10.0,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        focal_gamma: float = 0.0,
        smooth: float = 1.0,
    ) -> None:
        super().__init__()
        if pos_weight <= 0:
            raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
        if bce_weight < 0 or dice_weight < 0 or bce_weight + dice_weight == 0:
            raise ValueError(
                f"bce_weight and dice_weight must be ≥ 0 and not both 0, got {bce_weight} and {dice_weight}"
            )
        if focal_gamma < 0:
            raise ValueError(f"focal_gamma must be ≥ 0, got {focal_gamma}")
        self.pos_weight = pos_weight
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.focal_gamma = focal_gamma
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.bce_weight:
            loss = loss + self.bce_weight * weighted_bce_loss(
                logits, target, self.pos_weight, self.focal_gamma
            )
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target, self.smooth)
        return loss
