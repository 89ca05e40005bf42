"""The ONNX Runtime segmenter: numpy + onnxruntime only (no torch), for the lean predictor.

One session per model, ``intra_op`` threads = the CPUs the process may use, ``inter_op`` 1, no spinning (idle
threads sleep instead of busy-waiting, so a shared CPU is not burnt between requests). The caller runs one
inference at a time on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ml.config import CONFIG_FILE, ModelConfig, sha256_file
from ml.segmenter import TiledSegmenter


class OnnxSegmenter(TiledSegmenter):
    runtime = "onnx"

    def __init__(self, config: ModelConfig, onnx_path: Path, **options: Any) -> None:
        super().__init__(config, **options)
        if not onnx_path.is_file():
            raise FileNotFoundError(
                f"{onnx_path} not found: export it with `crackseg export-onnx {onnx_path.parent}` "
                "(needs crackseg[train]), or serve with the torch runtime"
            )
        if config.onnx_sha256 and sha256_file(onnx_path) != config.onnx_sha256:
            raise ValueError(
                f"{onnx_path} does not match the sha256 recorded in {CONFIG_FILE}: the file is corrupt"
            )
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad graphs
            raise ValueError(f"{onnx_path} is not a loadable ONNX model: {e}") from e
        self._input = self.session.get_inputs()[0].name

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        (probs,) = self.session.run(None, {self._input: pixels})  # (N, 1, h, w)
        return np.asarray(probs[:, 0], dtype=np.float32)
