"""A PyTorch ``Dataset`` over discovered image/mask pairs.

Samples come out as ``(image, mask)``: image ``float32 (3, H, W)`` in ``[0, 1]``, mask ``float32 (1, H, W)`` in
``{0, 1}``. Mean/std normalisation is left to the training loop, which owns the model's ``ModelConfig``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ml.data.datasets import Pair
from ml.data.imageio import read_image, read_mask

# A joint transform: receives and returns (uint8 image (3,H,W), uint8 mask (1,H,W)) as tv_tensors.
JointTransform = Callable[[tv_tensors.Image, tv_tensors.Mask], tuple[torch.Tensor, torch.Tensor]]


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Decodes pairs with :mod:`ml.data.imageio` and applies a joint transform.

    Args:
        pairs: The examples, as returned by :func:`ml.data.datasets.discover`.
        transform: Optional joint transform (see :mod:`ml.data.transforms`), applied to the uint8
            ``tv_tensors.Image`` (3, H, W) and ``tv_tensors.Mask`` (1, H, W) before conversion to float.
        cache: Keep decoded arrays in memory (per process: each DataLoader worker holds its own copy).
            CrackForest decoded is ~0.6 MB per pair, so small datasets fit easily.

    Returns from ``__getitem__``:
        ``image`` float32 (3, H, W) in [0, 1] and ``mask`` float32 (1, H, W) in {0, 1}.
    """

    def __init__(
        self, pairs: Sequence[Pair], transform: JointTransform | None = None, cache: bool = False
    ) -> None:
        self.pairs = list(pairs)
        self.transform = transform
        self.cache = cache
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The decoded ``(H, W, 3) uint8`` image and ``(H, W) bool`` mask of one pair."""
        if index in self._cache:
            return self._cache[index]
        pair = self.pairs[index]
        image, mask = read_image(pair.image), read_mask(pair.mask)
        if image.shape[:2] != mask.shape:
            raise ValueError(
                f"{pair.id}: image is {image.shape[1]}x{image.shape[0]} but mask is {mask.shape[1]}x{mask.shape[0]};"
                " run check_integrity before training"
            )
        if self.cache:
            self._cache[index] = (image, mask)
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, binary = self.arrays(index)
        image = tv_tensors.Image(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())  # (3,H,W) uint8
        mask = tv_tensors.Mask(torch.from_numpy(binary.astype(np.uint8))[None])  # (1,H,W) uint8
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        out_image = image.as_subclass(torch.Tensor)
        out_image = out_image.float() / 255.0 if out_image.dtype == torch.uint8 else out_image.float()
        out_mask = (mask.as_subclass(torch.Tensor) > 0).float()
        return out_image, out_mask
