import json

import pytest
import torch

from ml.checkpoint import (
    CONFIG_FILE,
    ONNX_FILE,
    WEIGHTS_FILE,
    ModelConfig,
    load_model,
    read_config,
    save_model,
)
from ml.models import create_model

torch.set_num_threads(1)


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("attention_unet", base_width=4, depth=2)


def test_round_trip_restores_identical_outputs(tmp_path):
    model = _tiny().eval()
    config = ModelConfig(base_width=4, depth=2, threshold=0.37, dataset_hash="abc", git_commit="deadbeef")
    save_model(model, config, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    x = torch.rand(1, 3, 24, 40)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded.module(x))
    assert loaded.config.threshold == 0.37
    assert loaded.config.dataset_hash == "abc"
    assert loaded.config.weights_sha256 and len(loaded.config.weights_sha256) == 64
    assert not loaded.module.training


def test_files_are_safetensors_onnx_and_json_only(tmp_path):
    save_model(_tiny(), ModelConfig(base_width=4, depth=2), tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_FILE, ONNX_FILE, WEIGHTS_FILE]
    assert json.loads((tmp_path / "m" / CONFIG_FILE).read_text())["arch"] == "attention_unet"


def test_overwriting_replaces_the_whole_directory(tmp_path):
    save_model(_tiny(0), ModelConfig(base_width=4, depth=2, threshold=0.4), tmp_path / "m")
    save_model(_tiny(1), ModelConfig(base_width=4, depth=2, threshold=0.6), tmp_path / "m")
    assert read_config(tmp_path / "m").threshold == 0.6
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging leftovers


def test_corrupt_weights_are_detected(tmp_path):
    save_model(_tiny(), ModelConfig(base_width=4, depth=2), tmp_path / "m")
    weights = tmp_path / "m" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        load_model(tmp_path / "m")


def test_architecture_mismatch_is_a_clear_error(tmp_path):
    save_model(_tiny(), ModelConfig(base_width=4, depth=2), tmp_path / "m")
    config = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
    config["base_width"] = 8
    (tmp_path / "m" / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="cannot be loaded into"):
        load_model(tmp_path / "m")


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_model(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not a valid crackseg model config"):
        read_config(tmp_path)


def test_threshold_must_be_a_probability():
    with pytest.raises(ValueError):
        ModelConfig(threshold=1.5)


def test_truncated_weights_are_a_value_error_naming_the_file(tmp_path):
    save_model(_tiny(), ModelConfig(base_width=4, depth=2), tmp_path / "m")
    weights = tmp_path / "m" / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=WEIGHTS_FILE):
        load_model(tmp_path / "m", verify=False)  # past the checksum: safetensors' own error is mapped too
