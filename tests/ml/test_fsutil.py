import json

import pytest

from ml.fsutil import atomic_open, atomic_write_bytes, atomic_write_json


def test_atomic_write_creates_parents_and_content(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"hello")
    atomic_write_json(tmp_path / "c.json", {"x": 1})
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"hello"
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": 1}


def test_failure_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_only_write_modes_are_allowed(tmp_path):
    with pytest.raises(ValueError, match="supports"), atomic_open(tmp_path / "x", "a"):
        pass
