"""A tiny HTTP file server on 127.0.0.1 with Range support and scripted misbehaviour, for download tests."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    """Files to serve and how to misbehave; ``requests`` records (path, Range header) of every GET."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: list[int] = field(
        default_factory=list
    )  # send only this many body bytes, then drop the connection
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    script: Script

    def do_GET(self) -> None:
        script = self.server.script  # type: ignore[attr-defined]
        range_header = self.headers.get("Range")
        script.requests.append((self.path, range_header))
        data = script.files.get(self.path)
        if data is None:
            self.send_error(404, "no such file")
            return
        start = 0
        if range_header and not script.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-", range_header)
            start = int(match.group(1)) if match else 0
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if script.cut_after:
            self.wfile.write(body[: script.cut_after.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(script: Script) -> Iterator[str]:
    """Serve ``script`` on a free loopback port; yields the base URL and stops the server afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.script = script  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
