import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.data.datasets import (
    DatasetIntegrityError,
    Pair,
    available_splits,
    check_integrity,
    dataset_hash,
    discover,
)


def write_pair(
    folder: Path, stem: str, size=(6, 4), mask_value=255, image_ext=".jpg", crack_pixels=3
) -> None:
    """An image (width x height = size) and a mask with ``crack_pixels`` crack pixels in the first row."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    w, h = size
    Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(folder / "images" / f"{stem}{image_ext}")
    mask = np.zeros((h, w), np.uint8)
    mask.flat[:crack_pixels] = mask_value
    Image.fromarray(mask).save(folder / "masks" / f"{stem}.png")


def test_flat_folder_matches_by_stem_and_ignores_other_files(tmp_path):
    write_pair(tmp_path, "b")
    write_pair(tmp_path, "a", image_ext=".png", mask_value=1)
    (tmp_path / "images" / "._a.jpg").write_bytes(b"macOS resource fork")
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    pairs = discover(tmp_path)
    assert pairs == [
        Pair("a", tmp_path / "images" / "a.png", tmp_path / "masks" / "a.png"),
        Pair("b", tmp_path / "images" / "b.jpg", tmp_path / "masks" / "b.png"),
    ]
    # A flat folder has no splits: asking for one returns the whole folder.
    assert discover(tmp_path, split="test") == pairs
    assert available_splits(tmp_path) == []


def test_split_json_selects_ids(tmp_path):
    for stem in ("1", "2", "3"):
        write_pair(tmp_path, stem)
    (tmp_path / "split.json").write_text(json.dumps({"train": ["3", "1"], "test": ["2"]}))
    assert [p.id for p in discover(tmp_path, "train")] == ["1", "3"]
    assert [p.id for p in discover(tmp_path, "test")] == ["2"]
    assert [p.id for p in discover(tmp_path)] == ["1", "2", "3"]
    assert available_splits(tmp_path) == ["train", "test"]
    with pytest.raises(ValueError, match=r"split 'val' is not in .*available: train, test"):
        discover(tmp_path, "val")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read split file"),
        ('["001"]', "must be a JSON object"),
        ('{"train": [1, 2]}', "must be a JSON object"),
        ('{"train": ["1"], "test": ["1"]}', "id '1' is in both splits 'train' and 'test'"),
    ],
)
def test_malformed_split_json_is_rejected(tmp_path, content, message):
    write_pair(tmp_path, "1")
    (tmp_path / "split.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        discover(tmp_path, "train")


def test_split_folders_layout(tmp_path):
    write_pair(tmp_path / "train", "t1")
    write_pair(tmp_path / "train", "t2")
    write_pair(tmp_path / "test", "s1")
    assert [p.id for p in discover(tmp_path, "train")] == ["t1", "t2"]
    assert discover(tmp_path, "test") == [
        Pair("s1", tmp_path / "test/images/s1.jpg", tmp_path / "test/masks/s1.png")
    ]
    assert [p.id for p in discover(tmp_path)] == ["s1", "t1", "t2"]
    assert available_splits(tmp_path) == ["test", "train"]
    with pytest.raises(ValueError, match=r"split 'val' not found .*available: test, train"):
        discover(tmp_path, "val")


def test_not_a_dataset(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        discover(tmp_path / "missing")
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ValueError, match="is not a dataset"):
        discover(tmp_path)


def test_integrity_report_counts_crack_pixels(tmp_path):
    write_pair(tmp_path, "a", size=(6, 4), crack_pixels=3)
    write_pair(tmp_path, "b", size=(6, 4), mask_value=1, crack_pixels=5)
    report = check_integrity(discover(tmp_path))
    assert report.n_pairs == 2
    assert (report.crack_pixels, report.total_pixels) == (8, 48)
    assert report.crack_fraction == pytest.approx(8 / 48)
    assert report.sizes == {(4, 6): 2}


def test_integrity_error_lists_every_offending_file(tmp_path):
    write_pair(tmp_path, "good")
    write_pair(tmp_path, "nomask")
    (tmp_path / "masks" / "nomask.png").unlink()
    write_pair(tmp_path, "noimage")
    (tmp_path / "images" / "noimage.jpg").unlink()
    write_pair(tmp_path, "mismatch")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "masks" / "mismatch.png")
    write_pair(tmp_path, "badimage")
    (tmp_path / "images" / "badimage.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    write_pair(tmp_path, "badmask")
    (tmp_path / "masks" / "badmask.png").write_bytes(b"not a png")
    write_pair(tmp_path, "dup")
    write_pair(tmp_path, "dup", image_ext=".png")

    with pytest.raises(DatasetIntegrityError) as excinfo:
        check_integrity(discover(tmp_path))
    err = excinfo.value
    by_path = {p.path.relative_to(tmp_path).as_posix(): p.reason for p in err.problems}
    assert set(by_path) == {
        "images/nomask.jpg",
        "masks/noimage.png",
        "masks/mismatch.png",
        "images/badimage.jpg",
        "masks/badmask.png",
        "images/dup.jpg",
    }
    assert by_path["images/nomask.jpg"].startswith("image without mask")
    assert by_path["masks/noimage.png"].startswith("mask without image")
    assert (
        by_path["masks/mismatch.png"]
        == "size mismatch: mask is 5x5, image mismatch.jpg is 6x4 (width x height)"
    )
    assert by_path["images/badimage.jpg"].startswith("unreadable image")
    assert by_path["masks/badmask.png"].startswith("unreadable mask")
    assert "id 'dup' is ambiguous: 2 pairs" in by_path["images/dup.jpg"]
    assert err.n_pairs == 8
    message = str(err)
    assert message.startswith("dataset integrity check failed: 6 problem(s) in 8 pair(s)")
    for name in ("nomask.jpg", "noimage.png", "mismatch.png", "badimage.jpg", "badmask.png", "dup.jpg"):
        assert name in message


def test_split_id_without_files_is_reported(tmp_path):
    write_pair(tmp_path, "1")
    (tmp_path / "split.json").write_text(json.dumps({"train": ["1", "ghost"]}))
    with pytest.raises(DatasetIntegrityError, match="id 'ghost' has neither an image nor a mask"):
        check_integrity(discover(tmp_path, "train"))


def test_empty_dataset_fails_integrity(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    assert discover(tmp_path) == []
    with pytest.raises(DatasetIntegrityError, match="no image/mask pairs found"):
        check_integrity([])


def test_dataset_hash_is_stable_and_content_sensitive(tmp_path):
    write_pair(tmp_path / "one", "a")
    write_pair(tmp_path / "one", "b")
    write_pair(tmp_path / "two", "a")
    write_pair(tmp_path / "two", "b")
    pairs = discover(tmp_path / "one")
    h = dataset_hash(pairs)
    assert len(h) == 64 and int(h, 16) >= 0
    assert dataset_hash(list(reversed(pairs))) == h
    # The same content in another folder hashes the same.
    assert dataset_hash(discover(tmp_path / "two")) == h
    assert dataset_hash(pairs[:1]) != h
    mask = tmp_path / "one" / "masks" / "b.png"
    arr = np.asarray(Image.open(mask)).copy()
    arr[-1, -1] = 255
    Image.fromarray(arr).save(mask)
    assert dataset_hash(pairs) != h


def test_real_crackforest_layout(datasets_root):
    root = datasets_root / "crackforest"
    train, test = discover(root, "train"), discover(root, "test")
    assert (len(train), len(test)) == (72, 46)
    assert not {p.id for p in train} & {p.id for p in test}
    assert len(discover(root)) == 118
    report = check_integrity(test)
    assert report.sizes == {(320, 480): 46}
    assert 0.01 < report.crack_fraction < 0.05


def test_real_deepcrack_layout(datasets_root):
    root = datasets_root / "deepcrack"
    train = discover(root, "train")
    assert len(train) == 300
    assert all(p.image.suffix == ".jpg" and p.mask.suffix == ".png" for p in train)
    report = check_integrity(train[:20])
    assert report.sizes == {(384, 544): 20}
