"""ONNX export of a checkpoint (fp32, dynamic batch/height/width) and its parity check against PyTorch.

The graph takes ``pixels`` ``(N, 3, H, W) float32``, normalised, with H and W multiples of ``2**depth`` (the
shared tiling code pads to that before either runtime runs), and returns ``probability`` ``(N, 1, H, W)`` after
the sigmoid. Exporting the aligned forward keeps the graph free of shape-dependent branches.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml.config import ONNX_FILE, ModelConfig, read_config, sha256_file
from ml.fsutil import atomic_write_bytes, atomic_write_json

INPUT_NAME = "pixels"
OUTPUT_NAME = "probability"
OPSET = 17


class _Probabilities(nn.Module):
    """The network on aligned inputs, with the sigmoid: what the ONNX graph computes."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net.forward_aligned(pixels))  # type: ignore[operator]


def onnx_bytes(model: nn.Module, config: ModelConfig) -> bytes:
    """Serialise ``model`` (left untouched: a CPU copy in eval mode is exported) as an ONNX graph."""
    net = getattr(model, "_orig_mod", model)  # a torch.compile wrapper exports its original module
    if not hasattr(net, "forward_aligned"):
        raise ValueError(f"{type(net).__name__} has no forward_aligned(); only {config.arch} exports to ONNX")
    wrapped = _Probabilities(copy.deepcopy(net).to("cpu").float()).eval()
    side = 2 * config.multiple
    example = torch.zeros(1, config.in_channels, side, side)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter(
            "ignore"
        )  # tracer warnings about shape arithmetic, which is aligned by contract
        torch.onnx.export(
            wrapped,
            (example,),
            buf,  # type: ignore[arg-type]  # a binary file object works and is documented
            dynamo=False,  # the TorchScript exporter: sub-second, and dynamic H/W without shape guards
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            },
            opset_version=OPSET,
        )
    return buf.getvalue()


def write_onnx(model: nn.Module, config: ModelConfig, model_dir: Path) -> ModelConfig:
    """Write ``model_dir/model.onnx`` atomically; returns ``config`` with its sha256 recorded."""
    path = model_dir / ONNX_FILE
    atomic_write_bytes(path, onnx_bytes(model, config))
    return config.model_copy(update={"onnx_sha256": sha256_file(path)})


def export_model_dir(model_dir: str | os.PathLike[str]) -> Path:
    """Add ``model.onnx`` to an existing checkpoint directory (for directories saved before exports existed)."""
    from ml.checkpoint import CONFIG_FILE, load_model

    model_dir = Path(model_dir)
    loaded = load_model(model_dir)
    config = write_onnx(loaded.module, read_config(model_dir), model_dir)
    atomic_write_json(model_dir / CONFIG_FILE, config.model_dump(mode="json"))
    return model_dir / ONNX_FILE


@dataclass(frozen=True)
class Parity:
    """PyTorch vs ONNX Runtime on the same images through the same tiling."""

    max_abs_diff: float  # max |Δprobability| over every pixel of every image
    mask_iou: float  # pooled IoU of the masks at the model's threshold (1.0 when both are empty)
    images: int


def parity(model_dir: str | os.PathLike[str], images: list[np.ndarray], threads: int = 1) -> Parity:
    """Run both runtimes on ``images`` (``(H, W, 3) uint8``) and compare probabilities and masks."""
    from ml.segmenter import open_segmenter

    ref = open_segmenter(model_dir, runtime="torch", threads=threads)
    onnx = open_segmenter(model_dir, runtime="onnx", threads=threads)
    worst, inter, union = 0.0, 0, 0
    for rgb in images:
        p_ref, p_onnx = ref.probabilities(rgb), onnx.probabilities(rgb)
        worst = max(worst, float(np.abs(p_ref - p_onnx).max()))
        m_ref, m_onnx = p_ref >= ref.threshold, p_onnx >= onnx.threshold
        inter += int(np.count_nonzero(m_ref & m_onnx))
        union += int(np.count_nonzero(m_ref | m_onnx))
    return Parity(max_abs_diff=worst, mask_iou=inter / union if union else 1.0, images=len(images))
