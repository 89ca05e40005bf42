import hashlib

import pytest

from ml.data.fetch import ChecksumError, DownloadError, download
from tests.ml.data.http_server import Script, serve

DATA = bytes(range(256)) * 40  # 10 240 bytes
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def script():
    return Script(files={"/file.zip": DATA})


@pytest.fixture
def base_url(script):
    with serve(script) as url:
        yield url


def test_plain_download(tmp_path, script, base_url):
    seen = []
    digest = download(
        f"{base_url}/file.zip", tmp_path / "out.zip", progress=lambda done, total: seen.append((done, total))
    )
    assert digest == DIGEST
    assert (tmp_path / "out.zip").read_bytes() == DATA
    assert [p.name for p in tmp_path.iterdir()] == ["out.zip"]
    assert seen[-1] == (len(DATA), len(DATA))
    assert script.requests == [("/file.zip", None)]


def test_resumes_after_an_interrupted_transfer(tmp_path, script, base_url):
    script.cut_after = [3000]
    digest = download(f"{base_url}/file.zip", tmp_path / "out.zip", sha256=DIGEST, backoff=0)
    assert digest == DIGEST
    assert (tmp_path / "out.zip").read_bytes() == DATA
    assert script.requests == [("/file.zip", None), ("/file.zip", "bytes=3000-")]


def test_resumes_a_part_file_left_by_an_earlier_run(tmp_path, script, base_url):
    (tmp_path / "out.zip.part").write_bytes(DATA[:1234])
    assert download(f"{base_url}/file.zip", tmp_path / "out.zip") == DIGEST
    assert script.requests == [("/file.zip", "bytes=1234-")]
    assert not (tmp_path / "out.zip.part").exists()


def test_restarts_when_the_server_ignores_range(tmp_path, script, base_url):
    script.ignore_range = True
    # A stale prefix that is not even part of the file: the 200 answer must replace it, not be appended to it.
    (tmp_path / "out.zip.part").write_bytes(b"stale bytes")
    assert download(f"{base_url}/file.zip", tmp_path / "out.zip", sha256=DIGEST) == DIGEST
    assert (tmp_path / "out.zip").read_bytes() == DATA
    assert script.requests == [("/file.zip", "bytes=11-")]


def test_restarts_when_the_part_file_is_longer_than_the_file(tmp_path, script, base_url):
    (tmp_path / "out.zip.part").write_bytes(b"x" * (len(DATA) + 5))
    assert download(f"{base_url}/file.zip", tmp_path / "out.zip", backoff=0) == DIGEST
    assert script.requests == [("/file.zip", f"bytes={len(DATA) + 5}-"), ("/file.zip", None)]


def test_checksum_mismatch_deletes_the_download(tmp_path, base_url):
    wrong = "ab" * 32
    with pytest.raises(
        ChecksumError, match=f"sha256 mismatch: expected {wrong}, got {DIGEST}; the download was deleted"
    ):
        download(f"{base_url}/file.zip", tmp_path / "out.zip", sha256=wrong.upper())
    assert list(tmp_path.iterdir()) == []


def test_gives_up_after_the_attempts_and_keeps_the_part(tmp_path, script, base_url):
    script.cut_after = [100, 100]
    with pytest.raises(DownloadError, match="incomplete after 2 attempt"):
        download(f"{base_url}/file.zip", tmp_path / "out.zip", attempts=2, backoff=0)
    assert (tmp_path / "out.zip.part").read_bytes() == DATA[:200]
    assert not (tmp_path / "out.zip").exists()
    # The next run picks up from there.
    assert download(f"{base_url}/file.zip", tmp_path / "out.zip") == DIGEST
    assert script.requests[-1] == ("/file.zip", "bytes=200-")


def test_http_errors_are_reported(tmp_path, base_url):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{base_url}/missing.zip", tmp_path / "out.zip")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("ftp://127.0.0.1/file.zip", {}, "must start with http"),
        ("http://127.0.0.1/file.zip", {"sha256": "xyz"}, "64 hexadecimal"),
        ("http://127.0.0.1/file.zip", {"attempts": 0}, "attempts must be at least 1"),
    ],
)
def test_invalid_arguments(tmp_path, url, kwargs, message):
    with pytest.raises(ValueError, match=message):
        download(url, tmp_path / "out.zip", **kwargs)
