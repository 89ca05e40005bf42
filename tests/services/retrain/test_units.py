"""Units (the gate has test_gate.py): the verified export, rollback target selection, settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ml.fsutil import sha256_file
from services.retrain.modelstore import SUMS_FILE, verify_export
from services.retrain.settings import RunSettings


def _export(folder: Path) -> None:
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text(json.dumps({"version": "3"}))
    sums = "".join(f"{sha256_file(folder / n)}  {n}\n" for n in ("model.safetensors", "config.json"))
    (folder / SUMS_FILE).write_text(sums)


def test_verify_export_detects_tampering_and_missing_files(tmp_path: Path) -> None:
    good = tmp_path / "v3"
    _export(good)
    assert verify_export(good)
    (good / "model.safetensors").write_bytes(b"weightz")
    assert not verify_export(good)
    other = tmp_path / "v4"
    _export(other)
    (other / "config.json").unlink()
    assert not verify_export(other)
    assert not verify_export(tmp_path / "absent")


def test_run_settings_require_the_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.delenv("CRACKSEG_BASE_DATA", raising=False)
    monkeypatch.delenv("CRACKSEG_EVAL_DATA", raising=False)
    with pytest.raises(ValidationError, match="base_data"):
        RunSettings()  # type: ignore[call-arg]
    monkeypatch.setenv("CRACKSEG_BASE_DATA", "/data/base")
    monkeypatch.setenv("CRACKSEG_EVAL_DATA", "/data/eval")
    monkeypatch.setenv("CRACKSEG_WORK_DIR", "/tmp/retrain")
    monkeypatch.setenv("PREDICTOR_URL", "http://127.0.0.1:9999")
    settings = RunSettings()  # type: ignore[call-arg]
    assert settings.retrain_work_dir == Path("/tmp/retrain")
    assert settings.predictor_url == "http://127.0.0.1:9999"
    assert settings.journal_dir == settings.feedback_dir / "state" / "retrain"
    # Fields can be passed by name too, whatever their variable is called.
    by_name = RunSettings(
        base_data=Path("/b"), eval_data=Path("/e"), retrain_work_dir=Path("/w"), git_commit="abc"
    )
    assert (by_name.retrain_work_dir, by_name.git_commit) == (Path("/w"), "abc")


@pytest.mark.parametrize(
    "bad", ["crackseg-retrain-XYZ", "other-0123456789ab", "crackseg-retrain-0123456789abc"]
)
def test_run_names_are_validated(bad: str) -> None:
    from services.retrain.plan import validate_run_name

    with pytest.raises(ValueError, match="not of the form"):
        validate_run_name(bad)


def test_unwritable_work_dir_is_a_clear_error(tmp_path: Path) -> None:
    from ml.registry import Registry
    from services.retrain.errors import ConfigError
    from services.retrain.run import RetrainRun

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = RunSettings(
        feedback_dir=tmp_path / "feedback",
        base_data=tmp_path,
        eval_data=tmp_path,
        retrain_work_dir=blocker / "retrain",
    )
    run = RetrainRun(settings, Registry("http://127.0.0.1:9"), None)
    with pytest.raises(ConfigError, match="CRACKSEG_RETRAIN_WORK_DIR"):
        run.execute("crackseg-retrain-000000000000")


def test_export_carries_the_onnx_graph_and_checks_it(tmp_path: Path) -> None:
    from services.retrain.modelstore import export_version

    source = tmp_path / "artifacts"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"weights")
    (source / "config.json").write_text(json.dumps({}))
    (source / "model.onnx").write_bytes(b"graph")

    class Registry:
        def download(self, version: str, dst: Path) -> Path:
            shutil.copytree(source, dst, dirs_exist_ok=True)
            return dst

    out = export_version(Registry(), "5", tmp_path / "models")  # type: ignore[arg-type]
    assert (out / "model.onnx").read_bytes() == b"graph" and verify_export(out)
    (out / "model.onnx").write_bytes(b"tampered")
    assert not verify_export(out)
