"""The Attention U-Net used by crackseg."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ml.models.blocks import DoubleConv, UpBlock


class AttentionUNet(nn.Module):
    """Attention U-Net with additive attention gates on every skip connection.

    Args:
        in_channels: image channels (3 for RGB).
        out_channels: logit channels (1: crack vs background).
        base_width: channels of the first encoder level; level ``i`` has ``base_width * 2**i``.
        depth: number of 2× downsamplings; inputs are padded internally to a multiple of ``2**depth``.

    Shapes: (N, in_channels, H, W) → logits (N, out_channels, H, W) for any H, W ≥ 2.
    """

    def __init__(
        self, in_channels: int = 3, out_channels: int = 1, base_width: int = 16, depth: int = 4
    ) -> None:
        super().__init__()
        if base_width < 1:
            raise ValueError(f"base_width must be a positive integer, got {base_width}")
        if not 1 <= depth <= 6:
            raise ValueError(f"depth must be between 1 and 6, got {depth}")
        self.in_channels = in_channels
        self.depth = depth
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList(
            [DoubleConv(in_channels, widths[0])]
            + [DoubleConv(widths[i], widths[i + 1]) for i in range(depth)]
        )
        self.pool = nn.MaxPool2d(2)
        self.decoders = nn.ModuleList(
            [UpBlock(widths[i + 1], widths[i], widths[i]) for i in reversed(range(depth))]
        )
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this internally."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected a (N, {self.in_channels}, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h < 2 or w < 2:
            raise ValueError(f"input must be at least 2×2 pixels, got {h}×{w}")
        m = self.multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            # Reflection needs pad < size; replicate works for any size.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        return self.forward_aligned(x)[..., :h, :w]

    def forward_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an input whose sides are already multiples of ``multiple`` (no padding, no branch).

        This is what the ONNX export traces: the tiling code pads once, the same way ``forward`` would.
        """
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)  # level i: (N, base*2^i, H/2^i, W/2^i)
        x = skips.pop()
        for decoder in self.decoders:
            x = decoder(x, skips.pop())
        return self.head(x)  # (N, out, H_pad, W_pad)
