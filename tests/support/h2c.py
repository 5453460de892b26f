"""A minimal HTTP/2 cleartext (prior knowledge) client for the adversarial
tests: one request per connection, with the body in several DATA frames and
optionally request trailers (a HEADERS frame that ends the stream), which no
Python HTTP client installed here can send.

Only what the tests need is implemented: header blocks are sent as HPACK
literals (no Huffman, no dynamic table); of the response, the body (DATA
frames) is returned whole and the `:status` is decoded (indexed, or a literal
whose value is plain or Huffman-coded digits). Bounded by a socket timeout.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20

# HPACK static table entries 8-14 are :status 200 204 206 304 400 404 500.
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
# RFC 7541 Appendix B, the codes of the ten digits.
HUFFMAN_DIGITS = {
    (0b00000, 5): "0", (0b00001, 5): "1", (0b00010, 5): "2", (0b011001, 6): "3", (0b011010, 6): "4",
    (0b011011, 6): "5", (0b011100, 6): "6", (0b011101, 6): "7", (0b011110, 6): "8", (0b011111, 6): "9",
}


class Response(NamedTuple):
    status: int | None
    body: bytes
    reset: bool


def _int(value: int, prefix: int, first: int = 0) -> bytes:
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_headers(headers: list[tuple[str, str]]) -> bytes:
    block = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        block += b"\x00" + _int(len(n), 7) + n + _int(len(v), 7) + v  # literal, not indexed
    return block


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _read_int(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
    limit = (1 << prefix) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        b = data[pos]
        pos += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _huffman_digits(data: bytes) -> str | None:
    bits = "".join(f"{b:08b}" for b in data)
    out, cur = "", ""
    for bit in bits:
        cur += bit
        d = HUFFMAN_DIGITS.get((int(cur, 2), len(cur)))
        if d is not None:
            out += d
            cur = ""
        elif len(cur) > 6:
            return None
    return out if set(cur) <= {"1"} else None  # padding: a prefix of EOS (all ones)


def decode_status(block: bytes) -> int | None:
    """The `:status` of a response header block, when it comes first (it does
    for Envoy: pseudo-headers precede regular ones)."""
    if not block:
        return None
    b = block[0]
    if b & 0x80:
        index, _ = _read_int(block, 0, 7)
        return STATIC_STATUS.get(index)
    prefix = 6 if b & 0x40 else 4
    index, pos = _read_int(block, 0, prefix)
    if index not in STATIC_STATUS:
        return None
    huffman = bool(block[pos] & 0x80)
    length, pos = _read_int(block, pos, 7)
    raw = block[pos:pos + length]
    text = _huffman_digits(raw) if huffman else raw.decode("ascii", "replace")
    return int(text) if text and text.isdigit() else None


def request(host: str, port: int, *, path: str, headers: list[tuple[str, str]], chunks: list[bytes],
            trailers: list[tuple[str, str]] | None = None, timeout: float = 10.0,
            method: str = "POST") -> Response:
    """Send `chunks` (one DATA frame each; `[b""]` is one empty frame) on
    stream 1 with `method` (POST by default); end the stream with `trailers`
    when given, else with the last DATA frame."""
    pseudo = [(":method", method), (":scheme", "http"), (":authority", f"{host}:{port}"), (":path", path)]
    with socket.create_connection((host, port), timeout=timeout) as s:
        out = PREFACE + frame(SETTINGS, 0, 0, b"")
        out += frame(HEADERS, END_HEADERS, 1, encode_headers(pseudo + headers))
        for i, c in enumerate(chunks):
            last = i == len(chunks) - 1 and trailers is None
            out += frame(DATA, END_STREAM if last else 0, 1, c)
        if trailers is not None:
            out += frame(HEADERS, END_HEADERS | END_STREAM, 1, encode_headers(trailers))
        s.sendall(out)
        return _read_response(s)


def _read_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = s.recv(n - len(buf))
        if not part:
            raise ConnectionError("connection closed mid-frame")
        buf += part
    return buf


def _read_response(s: socket.socket) -> Response:
    status: int | None = None
    body = b""
    block = b""
    while True:
        head = _read_exact(s, 9)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        payload = _read_exact(s, length)
        if kind == SETTINGS and not flags & ACK:
            s.sendall(frame(SETTINGS, ACK, 0, b""))
        elif kind == PING and not flags & ACK:
            s.sendall(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            return Response(status, body, reset=True)
        elif stream != 1:
            continue
        elif kind == RST_STREAM:
            return Response(status, body, reset=True)
        elif kind in (HEADERS, CONTINUATION):
            if kind == HEADERS:
                pad = payload[0] if flags & PADDED else 0
                start = (1 if flags & PADDED else 0) + (5 if flags & PRIORITY else 0)
                payload = payload[start:len(payload) - pad]
            block += payload
            if flags & END_HEADERS:
                if status is None:
                    status = decode_status(block)
                block = b""
            if flags & END_STREAM:
                return Response(status, body, reset=False)
        elif kind == DATA:
            pad = payload[0] if flags & PADDED else 0
            body += payload[(1 if flags & PADDED else 0):len(payload) - pad]
            if length:
                # Keep the windows open for larger answers.
                inc = struct.pack(">I", length)
                s.sendall(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, 1, inc))
            if flags & END_STREAM:
                return Response(status, body, reset=False)
