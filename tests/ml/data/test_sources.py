import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from typer.testing import CliRunner

from ml.data.datasets import check_integrity, discover
from ml.data.fetch import ChecksumError
from ml.data.imageio import read_image, read_mask
from ml.data.sources import ArchiveFormatError, convert_crackforest, fetch, get_source
from services.cli import app
from tests.ml.data.http_server import Script, serve

H, W = 12, 16


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def segmentation(seed: int) -> np.ndarray:
    """Labels as in CrackForest: 1 pavement, 2 crack, 3 pavement enclosed by a crack loop."""
    seg = np.ones((H, W), np.uint8)
    seg[seed % H, :] = 2
    seg[:, seed % W] = 2
    seg[0:2, 0:2] = 3
    return seg


def mat_bytes(seg: np.ndarray, cell: bool = False) -> bytes:
    struct = {"Segmentation": seg, "Boundaries": (seg == 2).astype(np.uint8)}
    buf = io.BytesIO()
    savemat(buf, {"groundTruth": np.array([struct], dtype=object) if cell else struct})
    return buf.getvalue()


CF_IDS = ["001", "004", "005", "009"]  # 004 and 005 are test ids


def crackforest_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("CrackForest-dataset-master/README.md", "CrackForest")
        zf.writestr("CrackForest-dataset-master/image/", "")
        for k, sample_id in enumerate(CF_IDS):
            zf.writestr(f"CrackForest-dataset-master/image/{sample_id}.jpg", jpeg(k))
            zf.writestr(
                f"CrackForest-dataset-master/groundTruth/{sample_id}.mat",
                mat_bytes(segmentation(k), cell=k == 3),
            )
        zf.writestr("CrackForest-dataset-master/seg/001.seg", "unused")
        zf.writestr("__MACOSX/CrackForest-dataset-master/image/._001.jpg", "resource fork")
    return buf.getvalue()


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def deepcrack_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for split, ids in (("train", ["11111", "11112", "11113"]), ("test", ["11125-1", "11126"])):
            for k, sample_id in enumerate(ids):
                zf.writestr(f"{split}_img/{sample_id}.jpg", jpeg(k))
                lab = np.zeros((H, W), np.uint8)
                lab[k, :] = 255
                # One label saved as RGB, as some DeepCrack labels are.
                zf.writestr(f"{split}_lab/{sample_id}.png", png(np.stack([lab] * 3, -1) if k == 1 else lab))
    return buf.getvalue()


@pytest.fixture
def server():
    script = Script(files={"/cf.zip": crackforest_zip(), "/dc.zip": deepcrack_zip(), "/bad.zip": _bad_zip()})
    with serve(script) as url:
        yield script, url


def _bad_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("something/else.txt", "not a dataset")
    return buf.getvalue()


def test_crackforest_fetch_and_conversion(tmp_path, server):
    script, url = server
    result = fetch("crackforest", tmp_path, url=f"{url}/cf.zip", backoff=0)
    root = tmp_path / "crackforest"
    assert result.root == root
    assert result.counts == {"train": 2, "test": 2}
    assert result.sha256 == hashlib.sha256(script.files["/cf.zip"]).hexdigest()
    assert json.loads((root / "split.json").read_text()) == {"train": ["001", "009"], "test": ["004", "005"]}
    source = json.loads((root / "SOURCE.json").read_text())
    assert source["sha256"] == result.sha256 and source["sha256_enforced"] is False
    assert source["counts"] == {"train": 2, "test": 2} and source["url"] == f"{url}/cf.zip"
    pairs = discover(root)
    assert [p.id for p in pairs] == CF_IDS
    check_integrity(pairs)
    for k, pair in enumerate(pairs):
        # Crack is label 2 only; label 3 (enclosed pavement) is background. JPEGs are copied byte for byte.
        assert np.array_equal(read_mask(pair.mask), segmentation(k) == 2)
        assert pair.image.read_bytes() == jpeg(k)
    assert set(np.unique(np.asarray(Image.open(pairs[0].mask))).tolist()) == {0, 255}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".downloads", "crackforest"]


def test_second_fetch_needs_force_and_reuses_the_archive(tmp_path, server):
    script, url = server
    fetch("crackforest", tmp_path, url=f"{url}/cf.zip")
    with pytest.raises(ValueError, match="already exists; pass --force"):
        fetch("crackforest", tmp_path, url=f"{url}/cf.zip")
    n_requests = len(script.requests)
    digest = hashlib.sha256(script.files["/cf.zip"]).hexdigest()
    result = fetch("crackforest", tmp_path, url=f"{url}/cf.zip", sha256=digest, force=True)
    assert len(script.requests) == n_requests
    assert result.counts == {"train": 2, "test": 2}
    assert json.loads((tmp_path / "crackforest/SOURCE.json").read_text())["sha256_enforced"] is True


def test_fetch_with_a_wrong_checksum_leaves_nothing(tmp_path, server):
    _, url = server
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        fetch("deepcrack", tmp_path, url=f"{url}/dc.zip", sha256="0" * 64)
    assert not (tmp_path / "deepcrack").exists()
    assert list((tmp_path / ".downloads").iterdir()) == []


def test_deepcrack_fetch_and_conversion(tmp_path, server):
    _, url = server
    result = fetch("deepcrack", tmp_path, url=f"{url}/dc.zip")
    root = tmp_path / "deepcrack"
    assert result.counts == {"train": 3, "test": 2}
    assert [p.id for p in discover(root, "train")] == ["11111", "11112", "11113"]
    assert [p.id for p in discover(root, "test")] == ["11125-1", "11126"]
    for pair in discover(root):
        k = (
            ["11111", "11112", "11113"].index(pair.id)
            if pair.id.startswith("1111")
            else ["11125-1", "11126"].index(pair.id)
        )
        expected = np.zeros((H, W), bool)
        expected[k, :] = True
        assert np.array_equal(read_mask(pair.mask), expected)
        assert read_image(pair.image).shape == (H, W, 3)


def test_an_archive_of_the_wrong_shape_is_rejected(tmp_path, server):
    _, url = server
    with pytest.raises(ArchiveFormatError, match="DeepCrack layout"):
        fetch("deepcrack", tmp_path, url=f"{url}/bad.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".downloads"]


def test_a_download_that_is_not_a_zip_is_rejected_and_dropped(tmp_path, server):
    script, url = server
    script.files["/html.zip"] = b"<html>rate limited</html>"
    with pytest.raises(ArchiveFormatError, match="is not a zip archive"):
        fetch("crackforest", tmp_path, url=f"{url}/html.zip")
    assert list((tmp_path / ".downloads").iterdir()) == []
    assert not (tmp_path / "crackforest").exists()


def test_crackforest_size_mismatch_and_unmatched_ids(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("r/image/001.jpg", jpeg(0))
        zf.writestr("r/groundTruth/001.mat", mat_bytes(np.ones((H + 1, W), np.uint8)))
    (tmp_path / "a.zip").write_bytes(buf.getvalue())
    with pytest.raises(ArchiveFormatError, match=r"Segmentation is \(13, 16\), image is \(12, 16\)"):
        convert_crackforest(tmp_path / "a.zip", tmp_path / "out1")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("r/image/001.jpg", jpeg(0))
        zf.writestr("r/image/002.jpg", jpeg(1))
        zf.writestr("r/groundTruth/001.mat", mat_bytes(segmentation(0)))
        zf.writestr("r/groundTruth/003.mat", b"not a mat file")
    (tmp_path / "b.zip").write_bytes(buf.getvalue())
    with pytest.raises(ArchiveFormatError, match="do not match for ids 002, 003"):
        convert_crackforest(tmp_path / "b.zip", tmp_path / "out2")


def test_unknown_source():
    with pytest.raises(ValueError, match="unknown dataset 'cfd'; available: crackforest, deepcrack"):
        get_source("cfd")


def test_cli_fetch(tmp_path, server):
    script, url = server
    runner = CliRunner()
    result = runner.invoke(
        app, ["data", "fetch", "deepcrack", "--dest", str(tmp_path), "--url", f"{url}/dc.zip"]
    )
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(script.files["/dc.zip"]).hexdigest()
    assert f"sha256 {digest}" in result.output
    assert "train: 3, test: 2" in result.output
    result = runner.invoke(
        app, ["data", "fetch", "deepcrack", "--dest", str(tmp_path), "--url", f"{url}/dc.zip"]
    )
    assert result.exit_code == 1 and "already exists" in result.output
    result = runner.invoke(app, ["data", "fetch", "nope", "--dest", str(tmp_path)])
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.output
    args = [
        "data",
        "fetch",
        "crackforest",
        "--dest",
        str(tmp_path),
        "--url",
        f"{url}/cf.zip",
        "--sha256",
        "1" * 64,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "sha256 mismatch" in result.output
