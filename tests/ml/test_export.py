"""ONNX export: every save carries model.onnx, parity with PyTorch on real photos, a torch-free runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ml.checkpoint import CONFIG_FILE, ONNX_FILE, ModelConfig, read_config, save_model
from ml.export import parity
from ml.models import create_model
from ml.segmenter import RuntimeUnavailable, open_segmenter
from tests.ml.photos import REPO, real_photo, real_photos

STARTER = REPO / "models" / "starter"


def _tiny_dir(out: Path) -> Path:
    torch.manual_seed(0)
    return save_model(
        create_model("attention_unet", base_width=4, depth=2), ModelConfig(base_width=4, depth=2), out
    )


def test_save_exports_onnx_and_records_its_checksum_without_touching_the_model(tmp_path: Path) -> None:
    model = create_model("attention_unet", base_width=4, depth=2).train()
    save_model(model, ModelConfig(base_width=4, depth=2), tmp_path / "m")
    assert model.training  # exporting works on a copy: a training loop's model stays in train mode
    config = read_config(tmp_path / "m")
    assert (tmp_path / "m" / ONNX_FILE).is_file() and config.onnx_sha256 and len(config.onnx_sha256) == 64


def test_onnx_matches_pytorch_on_real_photos() -> None:
    # The committed starter export against its own weights, through the serving path (tiling included).
    images = [real_photo(544, 384, i) for i in range(3)] + [real_photo(1500, 1000, 3)]
    result = parity(STARTER, images)
    assert result.images == 4
    assert result.max_abs_diff <= 1e-4
    assert result.mask_iou >= 0.999


def test_onnx_runs_batches_and_odd_sizes_like_pytorch(tmp_path: Path) -> None:
    model_dir = _tiny_dir(tmp_path / "m")
    image = np.random.default_rng(0).integers(0, 256, (333, 517, 3), dtype=np.uint8)
    ref = open_segmenter(model_dir, "torch", tile_size=128).probabilities(image)
    got = open_segmenter(model_dir, "onnx", tile_size=128, batch_size=4).probabilities(image)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_export_onnx_command_adds_the_graph_to_an_old_directory(tmp_path: Path) -> None:
    from services.cli import app

    model_dir = _tiny_dir(tmp_path / "m")
    (model_dir / ONNX_FILE).unlink()
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    config.pop("onnx_sha256")
    (model_dir / CONFIG_FILE).write_text(json.dumps(config))
    photo = real_photos(1)[0]
    result = CliRunner().invoke(app, ["export-onnx", str(model_dir), "--check", str(photo)])
    assert result.exit_code == 0, result.output
    assert (model_dir / ONNX_FILE).is_file() and read_config(model_dir).onnx_sha256
    assert json.loads(result.output.splitlines()[-1])["max_abs_diff"] <= 1e-4


def test_export_onnx_command_names_a_missing_directory(tmp_path: Path) -> None:
    from services.cli import app

    result = CliRunner().invoke(app, ["export-onnx", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope" in result.output


def test_a_corrupt_onnx_file_is_refused_by_name(tmp_path: Path) -> None:
    model_dir = _tiny_dir(tmp_path / "m")
    (model_dir / ONNX_FILE).write_bytes(b"not a graph")
    with pytest.raises(ValueError, match=r"model\.onnx does not match the sha256"):
        open_segmenter(model_dir, "onnx")
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    config.pop("onnx_sha256")
    (model_dir / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        open_segmenter(model_dir, "onnx")


def test_a_directory_without_onnx_falls_back_to_torch_or_says_how_to_export(tmp_path: Path) -> None:
    model_dir = _tiny_dir(tmp_path / "m")
    (model_dir / ONNX_FILE).unlink()
    assert open_segmenter(model_dir, "auto").runtime == "torch"
    with pytest.raises(FileNotFoundError, match="crackseg export-onnx"):
        open_segmenter(model_dir, "onnx")


def test_the_torch_runtime_names_the_extra_when_torch_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    model_dir = _tiny_dir(tmp_path / "m")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(RuntimeUnavailable, match=r"crackseg\[train\]"):
        open_segmenter(model_dir, "torch")
    assert open_segmenter(model_dir, "auto").runtime == "onnx"


def test_the_onnx_path_never_imports_torch(tmp_path: Path) -> None:
    model_dir = _tiny_dir(tmp_path / "m")
    code = (
        "import sys, numpy as np\n"
        "from ml.segmenter import open_segmenter\n"
        f"seg = open_segmenter({str(model_dir)!r}, 'auto', tile_size=64)\n"
        "mask = seg.predict_mask(np.zeros((100, 150, 3), np.uint8))\n"
        "assert mask.shape == (100, 150) and seg.runtime == 'onnx', seg.runtime\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
