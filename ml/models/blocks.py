"""Building blocks of the Attention U-Net (Oktay et al. 2018, "Attention U-Net: Learning Where to Look")."""

from __future__ import annotations

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    """Two 3×3 conv → BatchNorm → ReLU layers.

    Shapes: (N, in_channels, H, W) → (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection.

    The gating signal ``g`` comes from the coarser decoder level (already upsampled to the skip's size) and
    decides, per pixel, how much of the skip features ``x`` pass: ``x * sigmoid(psi(relu(Wg g + Wx x)))``.

    Shapes: g (N, gate_channels, H, W), x (N, skip_channels, H, W) → (N, skip_channels, H, W).
    """

    def __init__(self, gate_channels: int, skip_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.w_g = nn.Sequential(
            nn.Conv2d(gate_channels, inter_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(inter_channels),
        )
        self.w_x = nn.Sequential(
            nn.Conv2d(skip_channels, inter_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(inter_channels),
        )
        self.psi = nn.Sequential(nn.Conv2d(inter_channels, 1, kernel_size=1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        alpha = self.psi(self.relu(self.w_g(g) + self.w_x(x)))  # (N, 1, H, W), in [0, 1]
        return x * alpha


class UpBlock(nn.Module):
    """Decoder step: upsample, gate the skip connection, concatenate, DoubleConv.

    Shapes: below (N, in_channels, H/2, W/2), skip (N, skip_channels, H, W) → (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.gate = AttentionGate(out_channels, skip_channels, max(skip_channels // 2, 1))
        self.conv = DoubleConv(out_channels + skip_channels, out_channels)

    def forward(self, below: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        g = self.up(below)  # (N, out, H, W)
        gated = self.gate(g, skip)  # (N, skip, H, W)
        return self.conv(torch.cat([gated, g], dim=1))
