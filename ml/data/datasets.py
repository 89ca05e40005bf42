"""Image/mask folder datasets: discovery by file stem, integrity checks and a content hash.

Three layouts are understood (``root`` is what the user passes):

* ``root/split.json`` + ``root/images/`` + ``root/masks/``: a split file ``{"train": [ids], "test": [ids]}``
  names the ids of each split (CrackForest as converted by ``crackseg data fetch``).
* ``root/images/`` + ``root/masks/``: one flat folder; it has no splits, so any ``split`` asks for all of it.
* ``root/<split>/images/`` + ``root/<split>/masks/``: one folder per split (DeepCrack's ``train``/``test``).

Images and masks are matched by file stem (``images/001.jpg`` ↔ ``masks/001.png``). Discovery never decodes
files and never drops one silently: an image without a mask (or the reverse) becomes a :class:`Pair` whose missing
side points at a path that does not exist, and :func:`check_integrity` reports it with everything else that is
wrong, in one error.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.data.imageio import ImageDecodeError, read_image, read_mask

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
MASK_SUFFIXES = frozenset({".png", ".bmp", ".tif", ".tiff"})
SPLIT_FILE = "split.json"


@dataclass(frozen=True, order=True)
class Pair:
    """One training example: an image file and its mask file, sharing the file stem ``id``.

    Attributes:
        id: The shared file stem (``"001"``).
        image: Path of the image; it may not exist when discovery found only the mask.
        mask: Path of the mask (0/255 or 0/1 PNG); it may not exist when discovery found only the image.
    """

    id: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Problem:
    """One offending file and what is wrong with it."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class DatasetIntegrityError(ValueError):
    """A dataset has missing, unreadable or mismatched files; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem], n_pairs: int) -> None:
        self.problems = problems
        self.n_pairs = n_pairs
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"dataset integrity check failed: {len(problems)} problem(s) in {n_pairs} pair(s):\n{lines}"
        )


@dataclass(frozen=True)
class IntegrityReport:
    """What :func:`check_integrity` measured while decoding every pair.

    Attributes:
        n_pairs: Number of pairs checked.
        crack_pixels: Mask pixels that are crack, summed over the dataset.
        total_pixels: All mask pixels, summed over the dataset.
        sizes: How many pairs have each ``(height, width)``.
    """

    n_pairs: int
    crack_pixels: int
    total_pixels: int
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)

    @property
    def crack_fraction(self) -> float:
        """Pooled fraction of crack pixels (0.0 for an empty dataset)."""
        return self.crack_pixels / self.total_pixels if self.total_pixels else 0.0


def _files_by_stem(folder: Path, suffixes: frozenset[str]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        # Hidden files include macOS "._001.jpg" resource forks, which look like images but are not.
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        found.setdefault(path.stem, []).append(path)
    return found


def _pairs_in(folder: Path, ids: list[str] | None = None) -> list[Pair]:
    """Match ``folder/images`` with ``folder/masks`` by stem; restrict to ``ids`` when given."""
    images_dir, masks_dir = folder / "images", folder / "masks"
    images = _files_by_stem(images_dir, IMAGE_SUFFIXES)
    masks = _files_by_stem(masks_dir, MASK_SUFFIXES)
    wanted = sorted(set(images) | set(masks)) if ids is None else sorted(set(ids))
    pairs: list[Pair] = []
    for stem in wanted:
        # A missing side points at a path that cannot exist (no suffix), so check_integrity reports it.
        image_paths = images.get(stem) or [images_dir / stem]
        mask_paths = masks.get(stem) or [masks_dir / stem]
        # Two files with one stem (001.jpg and 001.png) stay separate pairs; check_integrity flags the duplicate.
        for image in image_paths:
            for mask in mask_paths:
                pairs.append(Pair(id=stem, image=image, mask=mask))
    return pairs


def read_split_file(path: Path) -> dict[str, list[str]]:
    """Load and validate a ``split.json``: an object of split name → list of ids, no id in two splits."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read split file {path}: {e}") from e
    if not isinstance(raw, dict) or not all(
        isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in raw.values()
    ):
        raise ValueError(
            f'{path} must be a JSON object of split name → list of string ids, like {{"train": ["001"]}}'
        )
    owner: dict[str, str] = {}
    for name, ids in raw.items():
        for sample_id in ids:
            if sample_id in owner and owner[sample_id] != name:
                raise ValueError(
                    f"{path}: id {sample_id!r} is in both splits {owner[sample_id]!r} and {name!r}"
                )
            owner[sample_id] = name
    return {str(name): list(ids) for name, ids in raw.items()}


def available_splits(root: str | Path) -> list[str]:
    """The split names ``root`` offers (empty for a flat ``images/`` + ``masks/`` folder)."""
    root = Path(root)
    if (root / SPLIT_FILE).is_file():
        return list(read_split_file(root / SPLIT_FILE))
    if (root / "images").is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "images").is_dir()) if root.is_dir() else []


def discover(root: str | Path, split: str | None = None) -> list[Pair]:
    """List the image/mask pairs of a dataset root, sorted by id.

    Args:
        root: A dataset root in one of the three layouts of this module.
        split: A split name (``"train"``, ``"test"``); ``None`` means every pair of the dataset. A flat
            ``images/`` + ``masks/`` folder has no splits, so it returns all its pairs for any ``split``.

    Returns:
        The pairs; unmatched files are included with their missing side pointing at a non-existent path.

    Raises:
        ValueError: ``root`` is not a dataset in a known layout, ``split`` does not exist, or ``split.json`` is
            malformed.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset root {root} is not a directory")
    split_file = root / SPLIT_FILE
    if split_file.is_file():
        splits = read_split_file(split_file)
        if split is None:
            return _pairs_in(root)
        if split not in splits:
            raise ValueError(
                f"split {split!r} is not in {split_file}; available: {', '.join(splits) or 'none'}"
            )
        return _pairs_in(root, splits[split])
    if (root / "images").is_dir() or (root / "masks").is_dir():
        return _pairs_in(root)
    split_dirs = available_splits(root)
    if not split_dirs:
        raise ValueError(
            f"{root} is not a dataset: expected images/ + masks/, a split.json with images/ + masks/, "
            "or <split>/images + <split>/masks folders"
        )
    if split is None:
        return sorted(pair for name in split_dirs for pair in _pairs_in(root / name))
    if split not in split_dirs:
        raise ValueError(f"split {split!r} not found under {root}; available: {', '.join(split_dirs)}")
    return _pairs_in(root / split)


def check_integrity(pairs: list[Pair]) -> IntegrityReport:
    """Decode every image and mask and check that they belong together.

    Reports, all at once: images without a mask, masks without an image, unreadable files, image/mask size
    mismatches and ids that occur twice.

    Returns:
        Counts and the crack pixel fraction measured on the way.

    Raises:
        DatasetIntegrityError: listing every offending file; also when ``pairs`` is empty.
    """
    if not pairs:
        raise DatasetIntegrityError([Problem(Path("."), "no image/mask pairs found")], 0)
    problems: list[Problem] = []
    id_counts = Counter(pair.id for pair in pairs)
    for sample_id, count in sorted(id_counts.items()):
        if count > 1:
            files = sorted(
                {str(p.image) for p in pairs if p.id == sample_id}
                | {str(p.mask) for p in pairs if p.id == sample_id}
            )
            problems.append(
                Problem(
                    Path(files[0]), f"id {sample_id!r} is ambiguous: {count} pairs from {', '.join(files)}"
                )
            )
    crack = total = 0
    sizes: Counter[tuple[int, int]] = Counter()
    for pair in pairs:
        has_image, has_mask = pair.image.is_file(), pair.mask.is_file()
        if not has_image and not has_mask:
            problems.append(Problem(pair.image, f"id {pair.id!r} has neither an image nor a mask"))
            continue
        if not has_mask:
            problems.append(
                Problem(pair.image, f"image without mask (expected {pair.mask.parent}/{pair.id}.png)")
            )
            continue
        if not has_image:
            problems.append(
                Problem(pair.mask, f"mask without image (expected {pair.image.parent}/{pair.id}.*)")
            )
            continue
        image_shape = mask = None
        try:
            image_shape = read_image(pair.image).shape[:2]
        except ImageDecodeError as e:
            problems.append(Problem(pair.image, f"unreadable image: {e}"))
        try:
            mask = read_mask(pair.mask)
        except ImageDecodeError as e:
            problems.append(Problem(pair.mask, f"unreadable mask: {e}"))
        if image_shape is None or mask is None:
            continue
        if image_shape != mask.shape:
            problems.append(
                Problem(
                    pair.mask,
                    f"size mismatch: mask is {mask.shape[1]}x{mask.shape[0]}, "
                    f"image {pair.image.name} is {image_shape[1]}x{image_shape[0]} (width x height)",
                )
            )
            continue
        crack += int(np.count_nonzero(mask))
        total += mask.size
        sizes[(int(mask.shape[0]), int(mask.shape[1]))] += 1
    if problems:
        raise DatasetIntegrityError(problems, len(pairs))
    return IntegrityReport(n_pairs=len(pairs), crack_pixels=crack, total_pixels=total, sizes=dict(sizes))


def dataset_hash(pairs: list[Pair]) -> str:
    """A stable sha256 (hex) over the ids and the bytes of every image and mask, independent of list order.

    File names other than the id and the folder the dataset lives in do not change it; any changed byte does.
    """
    digest = hashlib.sha256()
    for pair in sorted(pairs):
        digest.update(pair.id.encode("utf-8") + b"\0")
        for path in (pair.image, pair.mask):
            file_digest = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    file_digest.update(chunk)
            digest.update(file_digest.digest())
    return digest.hexdigest()
