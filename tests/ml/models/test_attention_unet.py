import pytest
import torch

from ml.models import MODELS, AttentionUNet, create_model
from ml.models.blocks import AttentionGate

torch.set_num_threads(1)


@pytest.mark.parametrize("size", [(320, 480), (384, 544), (64, 64), (37, 53), (2, 2), (3, 17)])
def test_any_input_size_gives_logits_of_the_same_size(size):
    model = AttentionUNet(base_width=4, depth=3).eval()
    with torch.inference_mode():
        out = model(torch.rand(1, 3, *size))
    assert out.shape == (1, 1, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(1, 1), (1, 40), (40, 1)])
def test_degenerate_inputs_raise_a_clear_error(size):
    with pytest.raises(ValueError, match="at least 2×2"):
        AttentionUNet(base_width=4, depth=2)(torch.rand(1, 3, *size))


def test_wrong_channel_count_is_rejected():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        AttentionUNet(base_width=4, depth=2)(torch.rand(1, 1, 32, 32))


def test_padding_does_not_leak_into_the_output():
    """A crop of the input must not change predictions far from the crop border beyond padding effects:
    here we just check determinism of eval mode and that cropping back returns the original region only."""
    model = AttentionUNet(base_width=4, depth=2).eval()
    x = torch.rand(1, 3, 30, 30)
    with torch.inference_mode():
        a, b = model(x), model(x)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("width", "depth", "params"), [(8, 4, 546_825), (16, 4, 2_182_789), (32, 4, 8_722_173)]
)
def test_parameter_counts_are_stable(width, depth, params):
    model = AttentionUNet(base_width=width, depth=depth)
    assert sum(p.numel() for p in model.parameters()) == params


def test_attention_gate_scales_the_skip_between_zero_and_one():
    gate = AttentionGate(gate_channels=4, skip_channels=6, inter_channels=3).eval()
    x = torch.rand(2, 6, 8, 8) + 0.1
    out = gate(torch.rand(2, 4, 8, 8), x)
    assert out.shape == x.shape
    ratio = out / x
    assert (ratio >= 0).all() and (ratio <= 1).all()


def test_gradients_flow_through_every_parameter():
    model = AttentionUNet(base_width=4, depth=2)
    model(torch.rand(2, 3, 16, 16)).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_registry_builds_and_lists_valid_names():
    assert isinstance(create_model("attention_unet", base_width=4, depth=2), AttentionUNet)
    with pytest.raises(ValueError, match="valid names: attention_unet"):
        create_model("unet++")
    with pytest.raises(ValueError, match="bad options"):
        create_model("attention_unet", widht=4)
    assert "attention_unet" in MODELS


@pytest.mark.parametrize(("kwargs", "message"), [({"base_width": 0}, "base_width"), ({"depth": 9}, "depth")])
def test_bad_configuration_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionUNet(**kwargs)
