"""Downloading files over HTTP(S) with resume and checksum verification.

:func:`download` streams into ``<target>.part``, resumes it with an HTTP ``Range`` request after an interrupted
transfer (restarting from zero when the server answers ``200`` instead of ``206``), verifies the sha256 and only
then renames the file into place, so ``target`` is either absent or complete and verified.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ml.fsutil import sha256_file

Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(RuntimeError):
    """The file could not be downloaded (HTTP error, too many interruptions)."""


class ChecksumError(ValueError):
    """The downloaded bytes do not have the expected sha256; the partial file has been deleted."""


def _validate_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"sha256 must be 64 hexadecimal characters, got {value!r}")
    return value


def _transfer(client: httpx.Client, url: str, part: Path, progress: Progress | None) -> bool:
    """One request that appends to ``part`` (resuming when it exists). Returns True when the file is complete."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and offset:
            # The partial file is no prefix of what the server has now (or already all of it): start over.
            part.unlink()
            return False
        if response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
            if not match or int(match.group(1)) != offset:
                raise DownloadError(
                    f"{url}: asked for bytes from {offset}, server sent {response.headers.get('content-range')!r}"
                )
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode = "ab"
        elif response.status_code == 200:
            # The server ignored the Range header (or there was none): the body is the whole file.
            offset, mode = 0, "wb"
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
        written = offset
        with part.open(mode) as f:
            for chunk in response.iter_bytes():  # no chunk_size: a buffer would lose bytes on a cut
                f.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(written, total)
            f.flush()
            os.fsync(f.fileno())
        return total is None or written >= total


def download(
    url: str,
    target: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    attempts: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: Progress | None = None,
    client: httpx.Client | None = None,
) -> str:
    """Download ``url`` to ``target`` (resuming a previous ``target.part``) and return the file's sha256.

    Args:
        url: ``http://`` or ``https://`` URL; redirects are followed.
        target: Final path; written only once the download is complete and verified.
        sha256: Expected hex digest; ``None`` accepts any content (the digest is returned to be recorded).
        attempts: Requests to try before giving up; each retry resumes where the previous one stopped.
        timeout: Seconds without progress before a request fails.
        backoff: Seconds to wait before the first retry, doubling after each.
        progress: Called with ``(bytes so far, total or None)`` as data arrives.
        client: An ``httpx.Client`` to use (tests, proxies); one is created otherwise.

    Raises:
        ValueError: a malformed URL or checksum.
        ChecksumError: the content does not match ``sha256`` (the partial download is deleted).
        DownloadError: HTTP errors, or still incomplete after ``attempts`` requests.
    """
    if not re.match(r"https?://[^/\s]+", url):
        raise ValueError(f"URL must start with http:// or https://, got {url!r}")
    expected = _validate_sha256(sha256)
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    own_client = client is None
    http = client or httpx.Client(follow_redirects=True, timeout=timeout)
    try:
        complete = False
        last_error: Exception | None = None
        for attempt in range(attempts):
            try:
                complete = _transfer(http, url, part, progress)
            except (httpx.TransportError, httpx.DecodingError) as e:
                last_error = e  # interrupted: the next attempt resumes from what reached the disk
            if complete:
                break
            if attempt + 1 < attempts:
                time.sleep(backoff * 2**attempt)
        if not complete:
            raise DownloadError(
                f"{url}: download incomplete after {attempts} attempt(s) ({part} kept for resuming)"
                + (f": {last_error}" if last_error else "")
            ) from last_error
    finally:
        if own_client:
            http.close()
    actual = sha256_file(part)
    if expected is not None and actual != expected:
        part.unlink()
        raise ChecksumError(
            f"{url}: sha256 mismatch: expected {expected}, got {actual}; the download was deleted. "
            "Check the URL, or the checksum you passed."
        )
    os.replace(part, target)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return actual
