"""The models store: promoted versions exported to ``<models_dir>/v<N>/`` with a checksum file.

An export is built in a hidden staging folder, verified (weights sha256 against ``config.json`` and the registry
download), stamped with ``SHA256SUMS`` and renamed into place, so ``v<N>/`` exists only when complete and verified.
Torch-free: it hashes files and rewrites JSON.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ml.fsutil import atomic_dir, atomic_write_bytes, atomic_write_json, sha256_file
from ml.registry import Registry
from services.retrain.errors import ExportError

SUMS_FILE = "SHA256SUMS"
FILES = ("model.safetensors", "config.json")
# The ONNX graph the lean predictor runs; versions saved before ONNX exports existed lack it.
OPTIONAL_FILES = ("model.onnx",)


def verify_export(folder: Path) -> bool:
    """True when ``folder`` holds both files and they match ``SHA256SUMS``."""
    sums = folder / SUMS_FILE
    if not sums.is_file():
        return False
    expected: dict[str, str] = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest:
            expected[name] = digest
    return set(FILES) <= set(expected) <= set(FILES) | set(OPTIONAL_FILES) and all(
        (folder / name).is_file() and sha256_file(folder / name) == digest
        for name, digest in expected.items()
    )


def export_version(registry: Registry, version: str, models_dir: Path) -> Path:
    """Export registry version ``version`` to ``models_dir/v<version>`` (idempotent; reuses a verified export)."""
    target = models_dir / f"v{version}"
    if verify_export(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    # An unverified leftover at target (a crash mid-copy by an older tool) is replaced whole.
    with (
        tempfile.TemporaryDirectory(prefix=f".v{version}.download.", dir=models_dir) as download,
        atomic_dir(target) as out,
    ):
        source = registry.download(version, Path(download))
        for name in FILES:
            if not (source / name).is_file():
                raise ExportError(f"version {version}: {name} missing from the registry artifacts")
            shutil.copyfile(source / name, out / name)
        present = [*FILES, *(n for n in OPTIONAL_FILES if (source / n).is_file())]
        for name in present[len(FILES) :]:
            shutil.copyfile(source / name, out / name)
        config = json.loads((out / "config.json").read_text())
        weights_sha = sha256_file(out / "model.safetensors")
        if config.get("weights_sha256") not in (None, weights_sha):
            raise ExportError(
                f"version {version}: model.safetensors sha256 {weights_sha} does not match config.json "
                f"({config.get('weights_sha256')}); refusing to export corrupt weights"
            )
        # The exported copy knows its registry version, so a predictor loading the folder reports it.
        config.update(version=str(version), weights_sha256=weights_sha)
        atomic_write_json(out / "config.json", config)
        sums = "".join(f"{sha256_file(out / name)}  {name}\n" for name in present)
        atomic_write_bytes(out / SUMS_FILE, sums.encode())
        if not verify_export(out):
            raise ExportError(f"version {version}: export in {out} failed its own verification")
    return target
