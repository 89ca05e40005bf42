import pytest
import torch
from torch import nn

from ml.calibrate import expected_calibration_error, fit_platt, fold_into_head, head_of


def test_ece_is_zero_for_calibrated_and_large_for_overconfident_probabilities() -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.rand(200_000, generator=g, dtype=torch.float64)
    y = (
        torch.rand(200_000, generator=g, dtype=torch.float64) < p
    ).double()  # labels drawn with probability p
    assert expected_calibration_error(p, y) < 0.01
    overconfident = torch.where(p > 0.5, torch.ones_like(p), torch.zeros_like(p))
    assert expected_calibration_error(overconfident, y) > 0.2


def test_platt_recovers_the_true_scale_and_bias() -> None:
    g = torch.Generator().manual_seed(1)
    z = 4 * torch.randn(100_000, generator=g, dtype=torch.float64)
    true_scale, true_bias = 0.5, -2.0
    y = (
        torch.rand(100_000, generator=g, dtype=torch.float64) < torch.sigmoid(true_scale * z + true_bias)
    ).double()
    scale, bias = fit_platt(z, y)
    assert scale == pytest.approx(true_scale, abs=0.03)
    assert bias == pytest.approx(true_bias, abs=0.06)


def test_platt_refuses_a_model_that_ranks_backwards() -> None:
    z = torch.linspace(-5, 5, 1000)
    with pytest.raises(ValueError, match="non-positive scale"):
        fit_platt(z, (z < 0).double())


def test_bias_only_fit_keeps_the_ranking_and_fixes_the_base_rate() -> None:
    z = torch.linspace(-5, 5, 1000)
    y = (torch.arange(1000) % 10 == 0).double()  # 10 % positives, unrelated to z
    scale, bias = fit_platt(z, y, fixed_scale=1.0)
    assert scale == 1.0
    assert torch.sigmoid(z + bias).mean() == pytest.approx(0.1, abs=0.02)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def test_folding_into_the_head_is_exactly_the_affine_map_of_the_logits() -> None:
    torch.manual_seed(0)
    net = _Net()
    x = torch.randn(2, 3, 8, 8)
    before = net(x).detach()
    fold_into_head(net, 0.7, -1.5)
    assert torch.allclose(net(x), 0.7 * before - 1.5, atol=1e-5)


def test_head_of_rejects_a_network_without_a_single_logit_head() -> None:
    net = _Net()
    net.head = nn.Conv2d(4, 2, 1)
    with pytest.raises(ValueError, match="single-logit"):
        head_of(net)
