"""Which photos a batch run covers and the names of their outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.batch.inputs import InputError, find_photos


def test_folder_is_recursive_and_keeps_photos_only(photos: Path) -> None:
    found = find_photos([str(photos)])
    assert [p.rel for p in found] == ["a.jpg", "c.jpg", "site/b.jpg", "site/broken.jpg"]
    assert [p.key for p in found] == ["a", "c", "site/b", "site/broken"]


def test_files_and_globs(photos: Path) -> None:
    found = find_photos([str(photos / "a.jpg"), str(photos / "site" / "*.jpg")])
    assert [p.rel for p in found] == ["a.jpg", "b.jpg", "broken.jpg"]
    deep = find_photos([str(photos / "**" / "b.jpg")])
    assert [p.rel for p in deep] == ["site/b.jpg"]
    # A file named explicitly is taken whatever its suffix: it becomes a row with its error.
    assert [p.rel for p in find_photos([str(photos / "notes.txt")])] == ["notes.txt"]


def test_output_folder_inside_the_input_is_not_read(photos: Path) -> None:
    out = photos / "out"
    (out / "overlays").mkdir(parents=True)
    (out / "overlays" / "a.jpg").write_bytes(b"x")
    assert "out/overlays/a.jpg" not in [p.rel for p in find_photos([str(photos)], exclude=out)]


def test_missing_empty_and_colliding_inputs(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.jpg does not exist"):
        find_photos([str(tmp_path / "nope.jpg")])
    with pytest.raises(InputError, match="no photo matches"):
        find_photos([str(photos / "*.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no photos found"):
        find_photos([str(tmp_path / "empty")])
    (photos / "a.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"masks/a\.png"):
        find_photos([str(photos)])
