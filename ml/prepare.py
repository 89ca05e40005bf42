"""The DVC ``prepare`` stage: a small dataset with a ``split.json``, copied from a real one or generated.

``params.yaml`` key ``prepare``: ``source`` names a dataset root to copy (environment variables are expanded, so
``${CRACKSEG_DATASETS}/crackforest`` works); empty means "generate synthetic cracks". ``max_pairs`` keeps the copy
small. The source's own train/test split is kept when it has one; otherwise a seeded ``test_fraction`` is held out.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PrepareParams(BaseModel):
    """``params.yaml`` key ``prepare``."""

    model_config = ConfigDict(extra="forbid")

    source: str = ""
    max_pairs: int | None = Field(None, ge=2)
    n_synthetic: int = Field(24, ge=2)
    height: int = Field(96, ge=32)
    width: int = Field(128, ge=32)
    test_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 0

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> PrepareParams:
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
            return cls.model_validate(raw.get("prepare") or {})
        except (OSError, yaml.YAMLError, ValidationError, AttributeError) as e:
            raise ValueError(f"invalid prepare params in {path}: {e}") from e


def _copy_source(params: PrepareParams, root: Path, staging: Path) -> dict[str, list[str]]:
    from ml.data.datasets import available_splits, check_integrity, discover

    if not root.is_dir():
        raise ValueError(f"prepare.source {root} is not a directory")
    splits = available_splits(root)
    by_split = {name: discover(root, name) for name in splits} if splits else {"": discover(root, None)}
    pairs = [p for ps in by_split.values() for p in ps]
    rng = random.Random(params.seed)
    if params.max_pairs is not None and len(pairs) > params.max_pairs:
        pairs = sorted(rng.sample(pairs, params.max_pairs))
    check_integrity(pairs)
    chosen = {p.id for p in pairs}
    for pair in pairs:
        # Files keep their stem so ids stay traceable to the source; suffixes keep their encoding.
        for sub, path in (("images", pair.image), ("masks", pair.mask)):
            (staging / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, staging / sub / path.name)
    if "test" in by_split and "train" in by_split:
        split = {name: sorted(p.id for p in by_split[name] if p.id in chosen) for name in ("train", "test")}
        if split["train"] and split["test"]:
            return split
    return _random_split(sorted(chosen), params)


def _random_split(ids: list[str], params: PrepareParams) -> dict[str, list[str]]:
    order = list(ids)
    random.Random(params.seed).shuffle(order)
    n_test = min(len(order) - 1, max(1, round(params.test_fraction * len(order))))
    return {"train": sorted(order[n_test:]), "test": sorted(order[:n_test])}


def prepare(params: PrepareParams, out_dir: str | os.PathLike[str]) -> int:
    """Build the dataset in a staging folder and swap it into ``out_dir``; returns the number of pairs."""
    from ml.data import synthetic
    from ml.fsutil import atomic_dir, atomic_write_json

    with atomic_dir(out_dir) as staging:
        source = os.path.expandvars(params.source).strip()
        if source:
            split = _copy_source(params, Path(source), staging)
        else:
            ids = synthetic.generate(
                params.n_synthetic, staging, size=(params.height, params.width), seed=params.seed
            )
            split = _random_split(ids, params)
        atomic_write_json(staging / "split.json", split)
    return sum(len(v) for v in split.values())
