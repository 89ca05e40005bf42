"""A training mixture of several datasets, with a fixed validation split carved from their training data.

The default model learns from real photos (DeepCrack, CrackForest) and from the synthetic generator in
hard-negative mode, each drawn with its own probability per crop so that a small dataset is not drowned by a large
one. Validation pairs come only from the ``val`` ids of the split file (``ml/data/splits/default.json``), which were
carved from the public *training* sets: public test splits are never read here.

A recipe's data section (``ml/recipes/default.yaml``) looks like::

    splits: ml/data/splits/default.json
    sources:
      - {name: deepcrack, path: deepcrack/train, weight: 0.45}
      - {name: crackforest, path: crackforest, weight: 0.35}
      - {name: synthetic, synthetic: 400, weight: 0.2}

``path`` is relative to the datasets root (``CRACKSEG_DATASETS``). Pair ids become ``"<source>/<id>"``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ml.data.datasets import Pair, discover

DEFAULT_SPLITS = Path(__file__).with_name("splits") / "default.json"


class Source(BaseModel):
    """One dataset in the mixture: a real dataset (``path``) or generated samples (``synthetic``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    weight: float = Field(gt=0, description="probability mass of this source per training crop")
    path: str | None = Field(None, description="dataset folder, relative to the datasets root")
    synthetic: int | None = Field(None, ge=1, description="number of hard-negative synthetic samples")

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        if (self.path is None) == (self.synthetic is None):
            raise ValueError(f"source {self.name!r}: give exactly one of 'path' or 'synthetic'")
        return self


class MixtureSpec(BaseModel):
    """The data section of a training recipe."""

    model_config = ConfigDict(extra="forbid")

    splits: str = str(DEFAULT_SPLITS)
    sources: list[Source] = Field(min_length=1)
    synthetic_size: tuple[int, int] = (384, 384)
    synthetic_seed: int = 7


@dataclass
class Mixture:
    """Resolved pairs: ``train`` with a sampling ``weights`` entry each, and ``val``."""

    train: list[Pair]
    weights: list[float]
    val: list[Pair]
    counts: dict[str, dict[str, int]]


def read_splits(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """``{source name: {"train": [...ids], "val": [...ids]}}`` from a split file; keys starting with ``_`` are notes."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read split file {path}: {e}") from e
    out: dict[str, dict[str, list[str]]] = {}
    for name, entry in raw.items():
        if name.startswith("_"):
            continue
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), list) for k in ("train", "val")):
            raise ValueError(f"{path}: entry {name!r} needs 'train' and 'val' id lists")
        overlap = set(entry["train"]) & set(entry["val"])
        if overlap:
            raise ValueError(f"{path}: {name!r} has ids in both train and val: {sorted(overlap)[:5]}")
        out[name] = {"train": list(entry["train"]), "val": list(entry["val"])}
    return out


def _prefixed(pairs: list[Pair], source: str) -> list[Pair]:
    return [Pair(id=f"{source}/{p.id}", image=p.image, mask=p.mask) for p in pairs]


def _by_ids(pairs: list[Pair], ids: list[str], source: str, root: Path) -> list[Pair]:
    index = {p.id: p for p in pairs}
    missing = [i for i in ids if i not in index]
    if missing:
        raise ValueError(
            f"{source}: {len(missing)} id(s) of the split file are not in {root} (first: {missing[:3]}); "
            "is CRACKSEG_DATASETS pointing at the right datasets?"
        )
    return [index[i] for i in ids]


def build_mixture(
    spec: MixtureSpec, datasets_root: str | os.PathLike[str], synthetic_dir: str | os.PathLike[str] | None
) -> Mixture:
    """Resolve every source to pairs and per-pair sampling weights (source weight / source size).

    Args:
        spec: the recipe's data section.
        datasets_root: where ``Source.path`` folders live (``CRACKSEG_DATASETS``).
        synthetic_dir: a folder with generated ``images/`` + ``masks/`` for synthetic sources (see
            :func:`ml.data.synthetic.generate`); required when the spec has one.

    Raises:
        ValueError: a missing dataset, an id in the split file that is not on disk, or a real source with no
            entry in the split file (a real dataset must never train without a validation carve-out).
    """
    root = Path(datasets_root)
    splits = read_splits(spec.splits)
    train: list[Pair] = []
    weights: list[float] = []
    val: list[Pair] = []
    counts: dict[str, dict[str, int]] = {}
    for source in spec.sources:
        if source.synthetic is not None:
            if synthetic_dir is None:
                raise ValueError(f"source {source.name!r} is synthetic but no synthetic_dir was given")
            pairs = discover(Path(synthetic_dir))[: source.synthetic]
            if len(pairs) < source.synthetic:
                raise ValueError(
                    f"{synthetic_dir} holds {len(pairs)} synthetic pairs, the recipe asks for {source.synthetic}"
                )
            src_train, src_val = pairs, []
        else:
            folder = root / str(source.path)
            if not folder.is_dir():
                raise ValueError(f"dataset {source.name!r} not found at {folder}: set CRACKSEG_DATASETS")
            if source.name not in splits:
                raise ValueError(
                    f"{spec.splits} has no entry for {source.name!r}: carve a validation split first"
                )
            everything = discover(folder, None)
            src_train = _by_ids(everything, splits[source.name]["train"], source.name, folder)
            src_val = _by_ids(everything, splits[source.name]["val"], source.name, folder)
        train += _prefixed(src_train, source.name)
        weights += [source.weight / len(src_train)] * len(src_train)
        val += _prefixed(src_val, source.name)
        counts[source.name] = {"train": len(src_train), "val": len(src_val)}
    if not val:
        raise ValueError("the mixture has no validation pairs: add a real source with a split entry")
    return Mixture(train=train, weights=weights, val=val, counts=counts)
