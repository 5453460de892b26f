"""One HTTP/2 cleartext (prior knowledge) request, built on PyPI's ``h2``, for the
tests that need what the usual Python HTTP clients cannot send: the body in
several DATA frames of chosen sizes, and request trailers (a HEADERS frame that
ends the stream) -- the classic way to end a body the filter must still decide.

One request per connection on stream 1; flow control is honoured (a chunk waits
for window when the peer has not opened enough yet), the response's ``:status``
and whole body are returned, and a reset stream or a GOAWAY shows as
``reset=True``. Bounded by the socket timeout: every read either gets bytes or
raises ``TimeoutError``.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

import h2.config
import h2.connection
import h2.events
import h2.exceptions

__all__ = ["Response", "request"]

STREAM = 1


class Response(NamedTuple):
    status: int | None
    body: bytes
    reset: bool


class _Reader:
    """Feeds the socket's bytes to the connection and collects stream 1's answer."""

    def __init__(self, sock: socket.socket, conn: h2.connection.H2Connection) -> None:
        self.sock = sock
        self.conn = conn
        self.status: int | None = None
        self.body = b""
        self.reset = False
        self.done = False

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def read(self) -> None:
        """One recv (bounded by the socket timeout) and the events it carries."""
        data = self.sock.recv(65535)
        if not data:
            raise ConnectionError("connection closed before the response ended")
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.ConnectionTerminated):
                self.reset = self.done = True
            elif getattr(event, "stream_id", STREAM) != STREAM:
                continue
            elif isinstance(event, h2.events.ResponseReceived):
                self.status = _status(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
                # Keep the windows open for larger answers.
                self.conn.acknowledge_received_data(event.flow_controlled_length, STREAM)
            elif isinstance(event, h2.events.StreamReset):
                self.reset = self.done = True
            elif isinstance(event, h2.events.StreamEnded):
                self.done = True
        self.flush()


def _status(headers: list[tuple[bytes, bytes]] | list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name in (b":status", ":status"):
            text = value.decode() if isinstance(value, bytes) else value
            return int(text) if text.isdigit() else None
    return None


def request(host: str, port: int, *, path: str, headers: list[tuple[str, str]], chunks: list[bytes],
            trailers: list[tuple[str, str]] | None = None, timeout: float = 10.0,
            method: str = "POST") -> Response:
    """Send ``chunks`` (one DATA frame each; ``[b""]`` is one empty frame) on
    stream 1 with ``method`` (POST by default); end the stream with ``trailers``
    when given, else with the last DATA frame. Returns when the response ends or
    the stream is reset (also when that happens before the whole body was sent)."""
    pseudo = [(":method", method), (":scheme", "http"), (":authority", f"{host}:{port}"), (":path", path)]
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = _Reader(sock, conn)
        conn.initiate_connection()
        conn.send_headers(STREAM, pseudo + headers, end_stream=not chunks and trailers is None)
        pending = list(chunks)
        while pending and not reader.done:
            chunk = pending[0]
            if len(chunk) > conn.max_outbound_frame_size:
                raise ValueError(f"a chunk of {len(chunk)} bytes exceeds the peer's maximum frame size "
                                 f"({conn.max_outbound_frame_size}): send smaller pieces")
            if conn.local_flow_control_window(STREAM) < len(chunk):
                reader.flush()
                reader.read()  # the peer's SETTINGS / WINDOW_UPDATE, or its early answer
                continue
            pending.pop(0)
            try:
                conn.send_data(STREAM, chunk, end_stream=not pending and trailers is None)
            except h2.exceptions.StreamClosedError:
                break
        if trailers is not None and not reader.done:
            conn.send_headers(STREAM, trailers, end_stream=True)
        reader.flush()
        while not reader.done:
            reader.read()
        return Response(reader.status, reader.body, reader.reset)
