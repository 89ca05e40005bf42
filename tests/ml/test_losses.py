"""Loss values on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ml.losses import SegmentationLoss, soft_dice_loss, weighted_bce_loss


def test_weighted_bce_by_hand() -> None:
    logits = torch.zeros(1, 1, 1, 2)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.0]]]])
    # crack pixel: 3·ln2, background pixel: ln2 → mean 2·ln2
    assert float(weighted_bce_loss(logits, target, pos_weight=3.0)) == pytest.approx(2 * math.log(2))


def test_weighted_bce_matches_torch() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 5, 5, generator=gen)
    target = (torch.rand(2, 1, 5, 5, generator=gen) > 0.7).float()
    expected = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor([7.0]))
    assert float(weighted_bce_loss(logits, target, 7.0)) == pytest.approx(float(expected), rel=1e-6)


def test_focal_term_by_hand() -> None:
    logits = torch.zeros(1, 1, 1, 1)
    target = torch.ones(1, 1, 1, 1)
    # p_t = 0.5, (1 - p_t)^2 = 0.25, weighted BCE = 2·ln2
    assert float(weighted_bce_loss(logits, target, 2.0, focal_gamma=2.0)) == pytest.approx(
        0.25 * 2 * math.log(2)
    )


def test_soft_dice_by_hand() -> None:
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # Σpt = 0.5, Σp = 2, Σt = 1: smooth 0 → 1 - 1/3; smooth 1 → 1 - 2/4
    assert float(soft_dice_loss(logits, target, smooth=0.0)) == pytest.approx(2 / 3)
    assert float(soft_dice_loss(logits, target, smooth=1.0)) == pytest.approx(0.5)


def test_perfect_prediction_has_near_zero_loss() -> None:
    target = torch.zeros(1, 1, 4, 4)
    target[..., 1, :] = 1
    logits = (target * 2 - 1) * 30
    assert float(SegmentationLoss(pos_weight=10)(logits, target)) < 1e-6


def test_combined_weights() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 6, 6, generator=gen)
    target = (torch.rand(2, 1, 6, 6, generator=gen) > 0.8).float()
    loss = SegmentationLoss(pos_weight=4.0, bce_weight=0.3, dice_weight=2.0)(logits, target)
    expected = 0.3 * weighted_bce_loss(logits, target, 4.0) + 2.0 * soft_dice_loss(logits, target)
    assert float(loss) == pytest.approx(float(expected))
    only_dice = SegmentationLoss(bce_weight=0.0, dice_weight=1.0)(logits, target)
    assert float(only_dice) == pytest.approx(float(soft_dice_loss(logits, target)))


def test_gradient_flows_and_bad_arguments_raise() -> None:
    logits = torch.zeros(1, 1, 3, 3, requires_grad=True)
    SegmentationLoss()(logits, torch.ones(1, 1, 3, 3)).backward()
    assert logits.grad is not None and bool((logits.grad < 0).all())  # push every logit towards crack
    with pytest.raises(ValueError, match="pos_weight"):
        SegmentationLoss(pos_weight=0)
    with pytest.raises(ValueError, match="not both 0"):
        SegmentationLoss(bce_weight=0, dice_weight=0)
    with pytest.raises(ValueError, match="differ in shape"):
        SegmentationLoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
