"""Fixtures of the ML suites: one torch thread, a tiny synthetic dataset, tiny training params."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # The machine's 2 cores are shared by every engineer's tests.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 synthetic 64×64 image/mask pairs in one flat images/ + masks/ folder."""
    from ml.data import synthetic

    root = tmp_path_factory.mktemp("tiny-synthetic")
    synthetic.generate(8, root, size=(64, 64), seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_params():  # type: ignore[no-untyped-def]
    """Training params for seconds-long runs: width 4, depth 2, 32×32 crops, 1 thread."""
    from ml.train import TrainParams

    return TrainParams(
        base_width=4,
        depth=2,
        epochs=2,
        steps_per_epoch=2,
        batch_size=2,
        crop_size=32,
        train_split=None,
        val_fraction=0.25,
        threads=1,
        n_overlays=2,
        patience=5,
    )
