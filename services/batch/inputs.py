"""Which photos a batch run covers: files, folders (recursive) and glob patterns, each with a relative path that
names its outputs (``masks/<rel>.png``, ``overlays/<rel>.jpg``)."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
_MAGIC = frozenset("*?[")


class InputError(ValueError):
    """The command line names no photo, or a path that does not exist."""


@dataclass(frozen=True)
class Photo:
    path: Path
    rel: str  # POSIX relative path of the input

    @property
    def key(self) -> str:
        """The relative path without its suffix: names the outputs (``masks/<key>.png``), unique in a run."""
        return Path(self.rel).with_suffix("").as_posix()


def _glob_root(pattern: str) -> Path:
    """The folder a glob's matches are named relative to: its leading part without wildcards."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if _MAGIC & set(p)), len(parts))]]
    return Path(*fixed) if fixed else Path(".")


def _is_photo(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES and not path.name.startswith(".")


def find_photos(paths: list[str], exclude: Path | None = None) -> list[Photo]:
    """Expand ``paths`` into photos, sorted by relative path.

    A file is taken whatever its suffix (a corrupt or odd file becomes a row with its error); folders and globs
    keep the photo suffixes only. ``exclude`` (the output folder) is never read as input.

    Raises:
        InputError: a path matches nothing, or two inputs would write the same output name.
    """
    found: dict[str, Photo] = {}
    skip = exclude.resolve() if exclude is not None else None

    def add(path: Path, rel: str) -> None:
        if skip is not None and path.resolve().is_relative_to(skip):
            return
        photo = Photo(path=path, rel=rel)
        other = found.get(photo.key)
        if other is not None and other.path.resolve() != path.resolve():
            raise InputError(
                f"{path} and {other.path} would both be written as masks/{photo.key}.png: "
                "rename one or run them separately"
            )
        found[photo.key] = photo

    for raw in paths:
        path = Path(raw)
        if _MAGIC & set(raw):
            root = _glob_root(raw)
            matches = [Path(m) for m in glob.glob(raw, recursive=True)]
            photos = [m for m in matches if _is_photo(m)]
            if not photos:
                raise InputError(f"no photo matches {raw}")
            for m in photos:
                add(m, m.relative_to(root).as_posix())
        elif path.is_dir():
            photos = sorted(p for p in path.rglob("*") if _is_photo(p))
            for p in photos:
                add(p, p.relative_to(path).as_posix())
        elif path.is_file():
            add(path, path.name)
        else:
            raise InputError(f"{raw} does not exist")
    if not found:
        raise InputError(f"no photos found in {', '.join(paths)}")
    return [found[key] for key in sorted(found)]
