"""The public datasets ``crackseg data fetch`` knows, and their conversion to our folder layout.

* ``crackforest``: CrackForest (Shi et al. 2016), the GitHub archive of ``cuilimeng/CrackForest-dataset``:
  ``image/*.jpg`` and ``groundTruth/*.mat`` (a MATLAB struct ``groundTruth`` whose ``Segmentation`` labels crack
  as 2; 1 and 3, pavement and pavement enclosed by crack loops, are background) → ``crackforest/{images, masks,
  split.json}``.
* ``deepcrack``: DeepCrack (Liu et al. 2019), ``dataset/DeepCrack.zip`` of ``yhlleo/DeepCrack``: ``train_img``,
  ``train_lab``, ``test_img``, ``test_lab`` → ``deepcrack/{train, test}/{images, masks}``.

The upstream files have no published checksums, so the registry stores ``None``: the sha256 of what was
downloaded is printed and written to ``<dest>/<name>/SOURCE.json``; pass ``--sha256`` to enforce one.
Both datasets are licensed for non-commercial research only; they are downloaded on the user's machine, never
shipped with crackseg.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import numpy as np

from ml.data.datasets import check_integrity, discover
from ml.data.fetch import download
from ml.data.imageio import ImageDecodeError, encode_png, read_image, read_mask
from ml.fsutil import atomic_dir, atomic_write_bytes, atomic_write_json, sha256_file

# The 46 CrackForest test ids of the team's reference copy (72 train / 46 test, the partition used in the
# CrackForest literature). The repository itself has no split file; every id not listed here is training data,
# so the split stays deterministic if upstream ever adds images.
CRACKFOREST_TEST_IDS = frozenset(
    f"{i:03d}"
    for i in (
        4,
        5,
        6,
        7,
        12,
        19,
        20,
        21,
        22,
        27,
        31,
        33,
        34,
        35,
        36,
        37,
        39,
        50,
        51,
        58,
        60,
        61,
        63,
        66,
        67,
        68,
        70,
        74,
        75,
        76,
        82,
        83,
        84,
        86,
        92,
        95,
        96,
        101,
        102,
        103,
        105,
        107,
        108,
        110,
        113,
        118,
    )
)
CRACK_LABEL = 2
# Upper bound on one archive member: a defence against zip bombs (real members are < 1 MB).
MAX_MEMBER_BYTES = 64 << 20


@dataclass(frozen=True)
class Source:
    """A downloadable dataset.

    Attributes:
        name: CLI name and output folder.
        url: Download URL of the archive.
        archive: File name of the archive in the download cache.
        sha256: Expected archive digest, or ``None`` where upstream publishes none.
        convert: ``convert(archive, out_dir)`` writes our layout into ``out_dir``.
        licence: Licence terms to show the user.
    """

    name: str
    url: str
    archive: str
    sha256: str | None
    convert: Callable[[Path, Path], None]
    licence: str


class ArchiveFormatError(ValueError):
    """The archive does not have the structure of the dataset it should contain."""


def _members_by_folder(
    zf: zipfile.ZipFile, folder: str, suffixes: tuple[str, ...]
) -> dict[str, zipfile.ZipInfo]:
    """Files directly inside a folder called ``folder`` (at any depth, e.g. under ``Repo-master/``), by stem."""
    found: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        path = PurePosixPath(info.filename)
        if info.is_dir() or path.parent.name != folder or path.name.startswith("."):
            continue
        if "__MACOSX" in path.parts or path.suffix.lower() not in suffixes:
            continue
        if info.file_size > MAX_MEMBER_BYTES:
            raise ArchiveFormatError(
                f"{info.filename} is {info.file_size} bytes; refusing members over 64 MiB"
            )
        found[path.stem] = info
    return found


def _crackforest_segmentation(raw: bytes, name: str) -> np.ndarray:
    """The ``groundTruth.Segmentation`` label image of a CrackForest ``.mat`` file."""
    from scipy.io import loadmat  # scipy is only needed here

    try:
        data = loadmat(io.BytesIO(raw), squeeze_me=True, struct_as_record=False)
    except (ValueError, TypeError, OSError, NotImplementedError) as e:
        raise ArchiveFormatError(f"{name}: not a readable MATLAB file: {e}") from e
    obj = data.get("groundTruth")
    # The struct may come wrapped in a cell array (BSDS style); take the first annotation.
    while isinstance(obj, np.ndarray) and obj.dtype == object and obj.size:
        obj = obj.flat[0]
    seg = getattr(obj, "Segmentation", None)
    if seg is None and isinstance(obj, np.ndarray) and obj.dtype.names and "Segmentation" in obj.dtype.names:
        seg = obj["Segmentation"].flat[0]
    if not isinstance(seg, np.ndarray) or seg.ndim != 2:
        raise ArchiveFormatError(f"{name}: expected a struct groundTruth with a 2-D Segmentation label image")
    return seg


def convert_crackforest(archive: Path, out_dir: Path) -> None:
    """CrackForest repository zip → ``out_dir/{images, masks, split.json}`` (JPEGs copied byte for byte)."""
    with zipfile.ZipFile(archive) as zf:
        images = _members_by_folder(zf, "image", (".jpg", ".jpeg", ".png"))
        labels = _members_by_folder(zf, "groundTruth", (".mat",))
        if not images or not labels:
            raise ArchiveFormatError(
                f"{archive}: expected image/*.jpg and groundTruth/*.mat (CrackForest layout)"
            )
        ids = sorted(set(images) & set(labels))
        unmatched = sorted(set(images) ^ set(labels))
        if unmatched:
            raise ArchiveFormatError(
                f"{archive}: images and ground truth do not match for ids {', '.join(unmatched)}"
            )
        for sample_id in ids:
            image_bytes = zf.read(images[sample_id])
            seg = _crackforest_segmentation(zf.read(labels[sample_id]), labels[sample_id].filename)
            try:
                height, width = read_image(image_bytes).shape[:2]
            except ImageDecodeError as e:
                raise ArchiveFormatError(f"{images[sample_id].filename}: {e}") from e
            if seg.shape != (height, width):
                raise ArchiveFormatError(
                    f"{labels[sample_id].filename}: Segmentation is {seg.shape}, image is {(height, width)}"
                )
            suffix = PurePosixPath(images[sample_id].filename).suffix.lower()
            atomic_write_bytes(out_dir / "images" / f"{sample_id}{suffix}", image_bytes)
            atomic_write_bytes(out_dir / "masks" / f"{sample_id}.png", encode_png(seg == CRACK_LABEL))
    split = {
        "train": [i for i in ids if i not in CRACKFOREST_TEST_IDS],
        "test": [i for i in ids if i in CRACKFOREST_TEST_IDS],
    }
    atomic_write_json(out_dir / "split.json", split)


def convert_deepcrack(archive: Path, out_dir: Path) -> None:
    """DeepCrack zip → ``out_dir/{train, test}/{images, masks}`` (masks re-encoded as 0/255 PNG)."""
    with zipfile.ZipFile(archive) as zf:
        found_any = False
        for split in ("train", "test"):
            images = _members_by_folder(zf, f"{split}_img", (".jpg", ".jpeg", ".png"))
            labels = _members_by_folder(zf, f"{split}_lab", (".png", ".jpg", ".bmp"))
            if not images and not labels:
                continue
            found_any = True
            unmatched = sorted(set(images) ^ set(labels))
            if unmatched:
                raise ArchiveFormatError(
                    f"{archive}: {split}_img and {split}_lab differ for ids {', '.join(unmatched)}"
                )
            for sample_id in sorted(images):
                info = images[sample_id]
                suffix = PurePosixPath(info.filename).suffix.lower()
                try:
                    mask = read_mask(zf.read(labels[sample_id]))
                except ImageDecodeError as e:
                    raise ArchiveFormatError(f"{labels[sample_id].filename}: {e}") from e
                atomic_write_bytes(out_dir / split / "images" / f"{sample_id}{suffix}", zf.read(info))
                atomic_write_bytes(out_dir / split / "masks" / f"{sample_id}.png", encode_png(mask))
        if not found_any:
            raise ArchiveFormatError(
                f"{archive}: expected train_img/ + train_lab/ folders (DeepCrack layout)"
            )


SOURCES: dict[str, Source] = {
    "crackforest": Source(
        name="crackforest",
        url="https://github.com/cuilimeng/CrackForest-dataset/archive/refs/heads/master.zip",
        archive="CrackForest-dataset-master.zip",
        sha256=None,
        convert=convert_crackforest,
        licence="non-commercial research purposes only (CrackForest README)",
    ),
    "deepcrack": Source(
        name="deepcrack",
        url="https://github.com/yhlleo/DeepCrack/raw/master/dataset/DeepCrack.zip",
        archive="DeepCrack.zip",
        sha256=None,
        convert=convert_deepcrack,
        licence="non-commercial research and education only (DeepCrack authors)",
    ),
}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(SOURCES))}") from None


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch` produced."""

    root: Path
    sha256: str
    counts: dict[str, int]


def fetch(
    name: str,
    dest: str | Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    **download_kwargs: object,
) -> FetchResult:
    """Download dataset ``name`` into ``dest/.downloads/`` and convert it to ``dest/<name>/``.

    The archive is kept, so a second run converts without downloading again (after re-checking ``sha256``).
    The converted folder appears atomically (built next to it, then renamed) and is integrity-checked first.

    Raises:
        ValueError: unknown name, ``dest/<name>`` already exists without ``force``, or a malformed archive.
        ChecksumError, DownloadError: see :func:`ml.data.fetch.download`.
    """
    source = get_source(name)
    dest = Path(dest)
    out = dest / source.name
    if out.exists() and not force:
        raise ValueError(f"{out} already exists; pass --force to download and convert again")
    expected = sha256 or source.sha256
    archive = dest / ".downloads" / source.archive
    if archive.is_file() and (expected is None or sha256_file(archive) == expected.lower()):
        digest = sha256_file(archive)
    else:
        archive.unlink(missing_ok=True)
        digest = download(url or source.url, archive, sha256=expected, progress=progress, **download_kwargs)  # type: ignore[arg-type]
    with atomic_dir(out) as staging:
        try:
            source.convert(archive, staging)
        except zipfile.BadZipFile as e:
            # A cached archive that is not a zip would fail the same way forever: drop it.
            archive.unlink(missing_ok=True)
            raise ArchiveFormatError(
                f"{archive} is not a zip archive ({e}); it was deleted, fetch again"
            ) from e
        splits = [
            s for s in ("train", "test") if (staging / s).is_dir() or (staging / "split.json").is_file()
        ]
        counts = {s: len(discover(staging, s)) for s in splits}
        check_integrity(discover(staging))
        atomic_write_json(
            staging / "SOURCE.json",
            {
                "name": source.name,
                "url": url or source.url,
                "archive": source.archive,
                "sha256": digest,
                "sha256_enforced": expected is not None,
                "licence": source.licence,
                "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "counts": counts,
            },
        )
    return FetchResult(root=out, sha256=digest, counts=counts)
