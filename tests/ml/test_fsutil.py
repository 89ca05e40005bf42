import json

import pytest

from ml.fsutil import atomic_dir, atomic_open, atomic_write_bytes, atomic_write_json


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


def test_atomic_dir_replaces_the_whole_folder(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as staging:
        assert staging.parent == tmp_path and staging != target
        (staging / "new.txt").write_text("new")
        assert (target / "old.txt").exists()  # readers see the old folder until the end
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    assert target.stat().st_mode & 0o777 == 0o755


def test_atomic_dir_failure_keeps_the_old_folder_and_no_staging(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("crash mid-way")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_sha256_file_matches_hashlib_on_more_than_one_chunk(tmp_path):
    import hashlib

    from ml.fsutil import sha256_file

    data = bytes(range(256)) * 5000  # 1.28 MB: several of file_digest's reads
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_a_new_file_gets_the_umask_mode_not_mkstemps_private_one(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "config.json", {"threshold": 0.5})
    finally:
        os.umask(old)
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o644


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "secret.json"
    target.write_text("{}")
    target.chmod(0o600)
    atomic_write_json(target, {"x": 1})
    assert target.stat().st_mode & 0o777 == 0o600
    target.chmod(0o640)
    atomic_write_bytes(target, b"y")
    assert target.stat().st_mode & 0o777 == 0o640
