"""JSON-RPC bodies and answers for the tests: one ``call()`` and the readers of what comes back.

``call`` builds a ``tools/call`` request (the body every test sends most);
``post`` sends a body (a dict or list is JSON-encoded; bytes/str go as they are)
without proxies, bounded; ``error_of`` and ``text_of`` read answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "ACCEPT",
    "DENY_CODE",
    "JSON_HEADERS",
    "LEGACY",
    "MODERN",
    "call",
    "error_of",
    "no_upstream",
    "post",
    "text_of",
]

#: The protocol revisions the tests speak: the session era and the stateless era.
LEGACY = "2025-06-18"
MODERN = "2026-07-28"
#: The JSON-RPC error code of a policy denial.
DENY_CODE = -31403
ACCEPT = "application/json, text/event-stream"
JSON_HEADERS = {"content-type": "application/json", "accept": ACCEPT}


def call(tool: str, ident: Any, args: Mapping[str, Any] | None = None, *,
         meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``tools/call`` request for ``tool`` with id ``ident`` (arguments ``{}`` when none;
    ``meta`` becomes ``params._meta``)."""
    params: dict[str, Any] = {"name": tool, "arguments": dict(args) if args else {}}
    if meta is not None:
        params["_meta"] = dict(meta)
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}


def post(url: str, body: Any, headers: Mapping[str, str] | None = None, *, timeout: float = 15,
         **kw: Any) -> httpx.Response:
    """POST ``body`` to ``url`` (JSON headers unless ``headers`` are given)."""
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(url, content=content, headers=dict(JSON_HEADERS if headers is None else headers),
                      timeout=timeout, **kw)


def error_of(answer: bytes | httpx.Response) -> dict[str, Any]:
    """The ``error`` member of a JSON answer (a response, or its body), asserting there is one."""
    if isinstance(answer, httpx.Response):
        assert answer.headers["content-type"].startswith("application/json"), \
            (answer.status_code, answer.headers, answer.text)
        answer = answer.content
    body = json.loads(answer)
    assert "error" in body, body
    return body["error"]


def text_of(result: Any) -> str:
    """The text of an SDK tool result (its text content items joined)."""
    return "".join(getattr(c, "text", "") for c in result.content)


def no_upstream(entry: Mapping[str, Any]) -> bool:
    """An access-log entry of a request that reached no upstream host."""
    return entry.get("upstream_host") in (None, "", "-")
