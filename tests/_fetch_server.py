"""A small HTTP server on 127.0.0.1 for the fetcher tests.

It serves byte strings registered by path, honours single ``Range: bytes=a-b``
requests (206, or 416 beyond the end), counts every request, and can be told to
break a transfer (send the headers of the whole file, part of the body, then close
the connection) or to ignore ``Range`` as some servers do.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class FixtureServer:
    """Serve ``files`` (path -> bytes) on an ephemeral port of 127.0.0.1.

    Attributes
    ----------
    files : dict of str to bytes
        What is served, by URL path (e.g. ``"/MSDL_rois.zip"``).
    log : list of (path, range header or None, status)
        Every request, in order.
    cut_after : dict of str to int
        One-shot: the next request of that path sends only this many body bytes
        (after announcing the full length) and then drops the connection.
    ignore_range : bool
        Answer 200 with the whole file even when ``Range`` is asked for.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str | None, int]] = []
        self.cut_after: dict[str, int] = {}
        self.ignore_range = False
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str | None = None) -> int:
        """Number of requests (of ``path``, or of all paths)."""
        with self._lock:
            return sum(1 for p, _, _ in self.log if path is None or p == path)

    def ranges(self, path: str) -> list[str | None]:
        """The Range header of each request of ``path`` (None when absent)."""
        with self._lock:
            return [r for p, r, _ in self.log if p == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def _record(self, path: str, rng: str | None, status: int) -> None:
        with self._lock:
            self.log.append((path, rng, status))

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        rng = handler.headers.get("Range")
        body = self.files.get(path)
        if body is None:
            self._record(path, rng, 404)
            handler.send_error(404, "Not Found")
            return
        size = len(body)
        status, start, end = 200, 0, size - 1
        match = _RANGE.match(rng or "")
        if match and not self.ignore_range:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else size - 1
            if start >= size:
                self._record(path, rng, 416)
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{size}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            end = min(end, size - 1)
            status = 206
        payload = body[start:end + 1]
        self._record(path, rng, status)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Accept-Ranges", "bytes")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        handler.end_headers()
        with self._lock:
            cut = self.cut_after.pop(path, None)
        if cut is not None:
            # Announce everything, deliver part of it, then drop the connection.
            handler.wfile.write(payload[:cut])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(payload)
