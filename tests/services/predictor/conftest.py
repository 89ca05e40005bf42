"""Fixtures for the predictor: a tiny real model, settings, an app through TestClient, sample images."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# KServe parses sys.argv when imported; pytest's arguments are not its arguments.
sys.argv = sys.argv[:1]

import torch  # noqa: E402

from tests.services.predictor.samples import jpeg_bytes, make_tiny_model  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def settings(tiny_model_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    from services.predictor.settings import Settings

    return Settings(
        model_source=str(tiny_model_dir),
        model_version="1",
        feedback_dir=tmp_path / "feedback",
        models_dir=tmp_path / "models",
        model_cache_dir=tmp_path / "cache",
        max_body_bytes=2_000_000,
        max_pixels=1_000_000,
        max_side=2000,
        tile_size=256,
        threads=1,
    )


@pytest.fixture
def model(settings):  # type: ignore[no-untyped-def]
    from services.predictor.model import CracksegModel

    m = CracksegModel(settings)
    m.load()
    yield m
    m.stop()


@pytest.fixture
def client(model, settings) -> Iterator:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from services.predictor.app import create_app

    with TestClient(create_app(model, settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def jpeg() -> bytes:
    return jpeg_bytes()
