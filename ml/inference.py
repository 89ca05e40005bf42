"""The PyTorch segmenter: the same tiling as the ONNX one (``ml.tiling``), the forward pass in torch.

Used on a GPU, for models without ``model.onnx``, and as the reference in the ONNX parity check. Tiling, its
exactness argument and its memory bound are described in ``ml.tiling``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ml.checkpoint import LoadedModel
from ml.segmenter import DEFAULT_TILE_SIZE, TiledSegmenter


def best_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class Segmenter(TiledSegmenter):
    """A loaded checkpoint run by PyTorch (channels_last, inference mode).

    Args:
        loaded: a model from ``ml.checkpoint.load_model`` (its config supplies normalisation and threshold).
        device: torch device for the forward pass.
        threads: intra-op threads; ``None`` leaves torch's setting alone (it is process-wide).
        tile_size, overlap, batch_size: see ``TiledSegmenter``.
    """

    runtime = "torch"

    def __init__(
        self,
        loaded: LoadedModel,
        tile_size: int = DEFAULT_TILE_SIZE,
        overlap: int | None = None,
        device: str = "cpu",
        *,
        batch_size: int = 1,
        threads: int | None = None,
        **_: Any,
    ) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        super().__init__(
            loaded.config,
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            threads=threads or torch.get_num_threads(),
        )
        self.loaded = loaded
        self.device = str(torch.device(device))
        self.module = loaded.module.to(self.device).eval().to(memory_format=torch.channels_last)
        # Tiles are already padded to the grid: run the network without its own padding when it has that entry.
        self._net = getattr(self.module, "forward_aligned", self.module)

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(pixels).to(self.device).contiguous(memory_format=torch.channels_last)
            logits = self._net(x)  # (N, 1, h, w)
            return torch.sigmoid(logits)[:, 0].float().cpu().numpy()
