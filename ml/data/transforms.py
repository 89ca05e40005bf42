"""Joint image + mask augmentation with torchvision transforms v2.

Inputs are ``tv_tensors.Image`` (uint8, (3, H, W)) and ``tv_tensors.Mask`` ((1, H, W)), as
:class:`ml.data.torchdata.SegmentationDataset` passes them. Geometric transforms move both with the same random
parameters; colour, blur, JPEG and noise touch the image only. Cracks are often 1–3 px wide, so training crops are
cut at native scale (zoom 0.8–1.25) and a resized mask is re-thresholded from its coverage, never sampled with
nearest neighbour (which breaks a thin line into dashes).
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


class RandomRot90(v2.Transform):
    """Rotate image and mask together by the same random multiple of 90° (exact: no interpolation).

    Rotations by 90° or 270° swap height and width; with square crops the batch shape does not change.
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"k": int(torch.randint(0, 4, ()).item())}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask | tv_tensors.Video):
            return inpt
        rotated = torch.rot90(inpt.as_subclass(torch.Tensor), params["k"], dims=(-2, -1))
        return tv_tensors.wrap(rotated, like=inpt)


class ScaleJitterCrop(v2.Transform):
    """Crop ``size`` at (near) native scale, with a mask resampling that keeps 1-px cracks connected.

    A random scale ``s`` is drawn log-uniformly from ``scale``; a window of ``size / s`` pixels is cut (reflect-padded
    where the image is smaller) and resized to ``size``. The image is resampled bilinearly with antialiasing. The
    mask is resampled as a float coverage map (antialiased bilinear ≈ area averaging when shrinking) and then
    re-thresholded at ``coverage_threshold``: a 1-px line shrunk by 1.25× still covers 0.8 of a pixel and survives,
    where nearest-neighbour sampling drops every 5th pixel and breaks it into pieces.

    Args:
        size: output ``(height, width)``.
        scale: range of the zoom factor (> 1 enlarges); keep it near 1 for thin cracks.
        coverage_threshold: fraction of a resampled pixel that must be crack for it to stay crack.
    """

    def __init__(
        self,
        size: tuple[int, int],
        scale: tuple[float, float] = (0.8, 1.25),
        coverage_threshold: float = 0.3,
    ) -> None:
        super().__init__()
        if min(size) < 1:
            raise ValueError(f"size must be positive (height, width), got {size}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must satisfy 0 < min <= max, got {scale}")
        if not 0 < coverage_threshold < 1:
            raise ValueError(f"coverage_threshold must be in (0, 1), got {coverage_threshold}")
        self.size = size
        self.scale = scale
        self.coverage_threshold = coverage_threshold

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        import math

        h, w = v2.functional.get_size(next(i for i in flat_inputs if isinstance(i, tv_tensors.Image)))
        lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
        s = math.exp(float(torch.empty(()).uniform_(lo, hi))) if hi > lo else self.scale[0]
        ch, cw = max(1, round(self.size[0] / s)), max(1, round(self.size[1] / s))
        top = int(torch.randint(0, max(h - ch, 0) + 1, ()))
        left = int(torch.randint(0, max(w - cw, 0) + 1, ()))
        return {"top": top, "left": left, "crop": (ch, cw), "pad": (max(ch - h, 0), max(cw - w, 0))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask):
            return inpt
        import torch.nn.functional as F

        x = inpt.as_subclass(torch.Tensor)
        pad_h, pad_w = params["pad"]
        if pad_h or pad_w:
            mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
            x = F.pad(x[None].float(), (0, pad_w, 0, pad_h), mode=mode)[0].to(x.dtype)
        ch, cw = params["crop"]
        x = x[..., params["top"] : params["top"] + ch, params["left"] : params["left"] + cw]
        if (ch, cw) != tuple(self.size):
            if isinstance(inpt, tv_tensors.Mask):
                cover = v2.functional.resize(x.float(), list(self.size), antialias=True)
                x = (cover >= self.coverage_threshold * x.max().clamp(min=1)).to(x.dtype)
            else:
                x = v2.functional.resize(x, list(self.size), antialias=True)
        return tv_tensors.wrap(x.contiguous(), like=inpt)


class RandomJPEGNoise(v2.Transform):
    """Image only: JPEG re-compression and Gaussian sensor noise, each with probability ``p``."""

    def __init__(
        self, p: float = 0.3, quality: tuple[int, int] = (40, 95), sigma: tuple[float, float] = (1, 6)
    ):
        super().__init__()
        self.p, self.quality, self.sigma = p, quality, sigma

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        jpeg = float(torch.rand(())) < self.p
        noise = float(torch.rand(())) < self.p
        return {
            "quality": int(torch.randint(self.quality[0], self.quality[1] + 1, ())) if jpeg else None,
            "sigma": float(torch.empty(()).uniform_(*self.sigma)) if noise else None,
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        x = inpt.as_subclass(torch.Tensor)
        if params["quality"] is not None:
            x = v2.functional.jpeg(x, params["quality"])
        if params["sigma"] is not None:
            x = (x.float() + params["sigma"] * torch.randn_like(x, dtype=torch.float32)).round().clamp(0, 255)
            x = x.to(torch.uint8)
        return tv_tensors.wrap(x, like=inpt)


def train_transform(
    crop_size: tuple[int, int] = (256, 256),
    scale: tuple[float, float] = (0.8, 1.25),
    color: bool = True,
) -> v2.Compose:
    """Native-scale crop with mild scale jitter, flips, 90° rotations, colour, blur, JPEG and noise.

    Args:
        crop_size: Output ``(height, width)``; square sizes keep shapes fixed under 90° rotations.
        scale: zoom range of :class:`ScaleJitterCrop` (1 = native pixels).
        color: Apply photometric augmentation to the image (never to the mask).
    """
    if min(crop_size) < 1:
        raise ValueError(f"crop_size must be positive (height, width), got {crop_size}")
    steps: list[v2.Transform] = [
        ScaleJitterCrop(crop_size, scale=scale),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
    ]
    if crop_size[0] == crop_size[1]:
        steps.append(RandomRot90())
    if color:
        steps += [
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.2, hue=0.02),
            v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.2))], p=0.2),
            RandomJPEGNoise(p=0.25),
        ]
    return v2.Compose(steps)


def eval_transform() -> v2.Compose:
    """No augmentation: evaluation sees whole images (the model pads to its multiple internally)."""
    return v2.Compose([v2.Identity()])
