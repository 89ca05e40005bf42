"""Joint image + mask augmentation with torchvision transforms v2.

Inputs are ``tv_tensors.Image`` (uint8, (3, H, W)) and ``tv_tensors.Mask`` ((1, H, W)), as
:class:`ml.data.torchdata.SegmentationDataset` passes them. v2 dispatches on those types: geometric transforms move
both with the same random parameters (masks are always resized with NEAREST, so they stay binary), while colour
transforms and blur touch the image only.
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


def train_transform(
    crop_size: tuple[int, int] = (256, 256),
    scale: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    color: bool = True,
) -> v2.Compose:
    """Random crop/scale to ``crop_size`` (height, width), flips, 90° rotations, colour jitter and mild blur.

    Args:
        crop_size: Output ``(height, width)``; square sizes keep shapes fixed under 90° rotations.
        scale: Area fraction range of the random crop before it is resized to ``crop_size``.
        ratio: Aspect ratio range of the random crop.
        color: Apply colour jitter and blur to the image (never to the mask).
    """
    if min(crop_size) < 1:
        raise ValueError(f"crop_size must be positive (height, width), got {crop_size}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
    steps: list[v2.Transform] = [
        v2.RandomResizedCrop(crop_size, scale=scale, ratio=ratio, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
    ]
    if crop_size[0] == crop_size[1]:
        steps.append(RandomRot90())
    if color:
        steps += [
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.2, hue=0.02),
            v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.2))], p=0.2),
        ]
    return v2.Compose(steps)


def eval_transform() -> v2.Compose:
    """No augmentation: evaluation sees whole images (the model pads to its multiple internally)."""
    return v2.Compose([v2.Identity()])
