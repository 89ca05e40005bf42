"""A folder of survey photos (bundled samples, a sub-folder, a corrupt file) and a tiny real model."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.argv = sys.argv[:1]  # KServe parses sys.argv when the local engine imports the predictor

from tests.helpers.procs import REPO  # noqa: E402

SAMPLES = REPO / "services" / "ui" / "samples"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.services.predictor.samples import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("batch-model") / "tiny", version="5")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """``in/`` with three good photos (one in ``site/``), a truncated JPEG and a text file to ignore."""
    folder = tmp_path / "in"
    (folder / "site").mkdir(parents=True)
    shutil.copy(SAMPLES / "concrete_single_crack.jpg", folder / "a.jpg")
    shutil.copy(SAMPLES / "asphalt_branching.jpg", folder / "site" / "b.jpg")
    shutil.copy(SAMPLES / "concrete_crack_network.jpg", folder / "c.jpg")
    (folder / "site" / "broken.jpg").write_bytes((SAMPLES / "concrete_single_crack.jpg").read_bytes()[:2000])
    (folder / "notes.txt").write_text("not a photo")
    return folder
