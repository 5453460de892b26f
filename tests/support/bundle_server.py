"""A small policy bundle server for the tests: serves one tar.gz (OPA's bundle
layout, built here from a {path: content} mapping) on 127.0.0.1, with an ETag
and 304 answers to a matching If-None-Match, and can be switched to another
bundle, to garbage, to an HTTP error, or taken down and brought back up on
the same port. Every request is recorded (path, If-None-Match, status).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple


def targz(files: Mapping[str, str | bytes], revision: str | None = None, roots: list[str] | None = None) -> bytes:
    """A gzipped tar of ``files`` (path -> content), plus a ``.manifest`` when
    ``revision`` or ``roots`` is given."""
    import json

    entries = dict(files)
    if revision is not None or roots is not None:
        manifest: dict[str, Any] = {}
        if revision is not None:
            manifest["revision"] = revision
        if roots is not None:
            manifest["roots"] = roots
        entries[".manifest"] = json.dumps(manifest)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, content in sorted(entries.items()):
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name=path)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


class Hit(NamedTuple):
    path: str
    if_none_match: str | None
    status: int
    at: float


class BundleServer:
    """Serves ``bundle`` (bytes) at any path. ``status`` (default 200) forces
    an error status instead; ``set_bundle`` / ``set_garbage`` switch content."""

    def __init__(self, bundle: bytes | None = None) -> None:
        self.lock = threading.Lock()
        self.hits: list[Hit] = []
        self.body = b""
        self.etag = ""
        self.status = 200
        # Set: answer; cleared: hold every request unanswered (a source that
        # accepts connections but never answers).
        self.answering = threading.Event()
        self.answering.set()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        if bundle is not None:
            self.set_bundle(bundle)
        self.start()

    # --- content ---------------------------------------------------------

    def set_bundle(self, body: bytes) -> str:
        """Serve ``body`` from now on; returns its ETag."""
        with self.lock:
            self.body = body
            self.etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            self.status = 200
            return self.etag

    def set_garbage(self, body: bytes = b"\x1f\x8b this is not a bundle") -> str:
        return self.set_bundle(body)

    def set_status(self, status: int) -> None:
        with self.lock:
            self.status = status
        self.answering.set()

    def hang(self) -> None:
        """Accept requests but answer none (until set_status/stop)."""
        self.answering.clear()

    # --- observation -----------------------------------------------------

    def requests(self) -> list[Hit]:
        with self.lock:
            return list(self.hits)

    def count(self, status: int | None = None, since: float = 0.0) -> int:
        with self.lock:
            return sum(1 for h in self.hits if h.at >= since and (status is None or h.status == status))

    # --- lifecycle -------------------------------------------------------

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            # One request per connection: once the server is stopped, every
            # poll meets a refused connection (no keep-alive connection
            # outlives it).
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802
                outer.answering.wait(timeout=30)
                inm = self.headers.get("if-none-match")
                with outer.lock:
                    status, body, etag = outer.status, outer.body, outer.etag
                    if status == 200 and inm is not None and inm == etag:
                        status = 304
                    outer.hits.append(Hit(self.path, inm, status, time.monotonic()))
                if status == 304:
                    self.send_response(304)
                    self.send_header("etag", etag)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if status != 200:
                    msg = b"bundle server error"
                    self.send_response(status)
                    self.send_header("content-length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                self.send_response(200)
                self.send_header("content-type", "application/gzip")
                self.send_header("etag", etag)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Take the server down (connections to its port are refused)."""
        self.answering.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
