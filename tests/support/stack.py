"""A stack: the demo MCP server behind one Envoy with the module and a policy.

Test modules describe the stack they need with a module-level ``STACK =
StackSpec(...)`` and take the ``stack`` fixture (tests/conftest.py), which starts
it once per module with :func:`open_stack` and stops it after the module's last
test. A module that needs more than the shared :class:`Stack` helpers subclasses
it and names the subclass in ``StackSpec.cls``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support import harness

__all__ = ["DEMO_MODES", "Stack", "StackSpec", "open_stack"]

#: The demo server's modes by name (also the ``demo_server`` fixture's params).
DEMO_MODES: dict[str, dict[str, bool]] = {
    "sse": {},
    "json": {"json_response": True},
    "sse-stateless": {"stateless": True},
    "json-stateless": {"json_response": True, "stateless": True},
}


class Stack:
    """A running demo server (``server``) behind a running Envoy (``envoy``), with an
    ``httpx.Client`` on the proxy (``http``) and, for JWT stacks, the signing ``keys``."""

    def __init__(self, server: harness.DemoServer, envoy: harness.EnvoyHandle, *, timeout: float = 15,
                 keys: Mapping[str, Any] | None = None, tmp: Path | None = None) -> None:
        self.server = server
        self.envoy = envoy
        self.keys = keys
        self.tmp = tmp  # the stack's temporary directory (certificates of mesh stacks …)
        self.host, self.port = "127.0.0.1", envoy.port
        self.http = self.client(timeout)

    def client(self, timeout: float) -> httpx.Client:
        """The HTTP client on the proxy (a subclass may change the scheme or the TLS trust)."""
        return httpx.Client(base_url=self.envoy.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    # -- the upstream ------------------------------------------------------ #

    def received(self) -> list[dict[str, Any]]:
        """The JSON-RPC messages the demo server has received so far."""
        return self.server.received()

    def received_ids(self) -> set[Any]:
        return {m.get("id") for m in self.server.received()}

    # -- the proxy's records ----------------------------------------------- #

    def access_entry(self, path: str) -> dict[str, Any]:
        """The access-log entry of the request to ``path`` (waits for it, bounded)."""
        return self.envoy.wait_for_access_log(lambda e: e.get("path") == path)

    def audit(self, decision_id: str, timeout: float = 10) -> dict[str, Any]:
        """The audit event of ``decision_id`` from the proxy log (waits for it, bounded)."""

        def find() -> dict[str, Any] | None:
            return next((e for e in self.envoy.audit_events() if e.get("decision_id") == decision_id), None)

        event = harness.poll(find, lambda e: e is not None, timeout=timeout)
        assert event is not None, f"no audit event for {decision_id}"
        return event

    # -- identity ---------------------------------------------------------- #

    def token(self, sub: str, **claims: Any) -> str:
        """A token signed with the stack's JWT keys (``StackSpec(jwt=True)``)."""
        from support.jwt_util import token

        assert self.keys is not None, "not a JWT stack: StackSpec(jwt=True)"
        return token(dict(self.keys), sub=sub, **claims)


@dataclass(frozen=True)
class StackSpec:
    """What a module's stack is made of.

    plugin_config  the module's configuration (policy modules, data, options)
    server         a DEMO_MODES name, or demo_server keyword arguments
    envoy          more keyword arguments for harness.start_envoy (concurrency …)
    bootstrap      instead of plugin_config: ``bootstrap(tmp, upstream_port, wasm_path) -> dict``,
                   a whole bootstrap (mesh configurations) started with start_envoy_bootstrap
    jwt            an Envoy jwt_authn filter in front of the module, with the keys of the
                   ``jwt_keys`` fixture (Stack.keys, Stack.token)
    cls            the Stack class to build
    timeout        the HTTP client's timeout, in seconds
    name           the temporary directory's name
    """

    plugin_config: Mapping[str, Any] | None = None
    server: str | Mapping[str, Any] = "json-stateless"
    envoy: Mapping[str, Any] = field(default_factory=dict)
    bootstrap: Callable[[Path, int, Path], Mapping[str, Any]] | None = None
    jwt: bool = False
    cls: type[Stack] = Stack
    timeout: float = 15
    name: str = "stack"


@contextlib.contextmanager
def open_stack(spec: StackSpec, tmp: Path, wasm_path: Path, *,
               keys: Mapping[str, Any] | None = None) -> Iterator[Stack]:
    """Start the server, then Envoy, then the Stack; stop them in reverse order (also on failure)."""
    from support.jwt_util import jwt_filter

    options = DEMO_MODES[spec.server] if isinstance(spec.server, str) else dict(spec.server)
    server = harness.start_demo_server(tmp, **options)
    try:
        if spec.bootstrap is not None:
            config = json.loads(json.dumps(spec.bootstrap(tmp, server.port, wasm_path)))
            envoy = harness.start_envoy_bootstrap(tmp, config, name=spec.name, **dict(spec.envoy))
        else:
            envoy_kw = dict(spec.envoy)
            if spec.jwt:
                assert keys is not None, "a JWT stack needs keys"
                envoy_kw["extra_http_filters_before"] = [jwt_filter(dict(keys)["jwks"]),
                                                         *envoy_kw.get("extra_http_filters_before", [])]
            envoy = harness.start_envoy(tmp, plugin_config=spec.plugin_config, upstream_port=server.port,
                                        wasm_path=wasm_path, **envoy_kw)
        try:
            stack = spec.cls(server, envoy, timeout=spec.timeout, keys=keys, tmp=tmp)
            try:
                yield stack
            finally:
                stack.close()
        finally:
            envoy.stop()
    finally:
        server.proc.stop()
