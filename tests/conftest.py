"""Shared pytest fixtures for the mcp-policy Python tests (the harness: tests/support/).

Fixtures
  wasm_path       Path of the built module (``$MCP_POLICY_WASM`` or the release
                  build); fails the test with "run `make build`" if missing.
  policy_config   factory: ``policy_config(policy_source, data=None, **kw) -> dict``.
  demo_server     a running tests/support/demo_server.py (harness.DemoServer: .proc,
                  .port, .log_file, .url, .received()).  SSE responses by default;
                  parametrise indirectly for others::

                      @pytest.mark.parametrize("demo_server", ["sse", "json"], indirect=True)
                      @pytest.mark.parametrize("demo_server", [{"json_response": True, "stateless": True}],
                                               indirect=True)

  stack           module-scoped: the stack the test module describes in ``STACK =
                  support.stack.StackSpec(...)`` (the demo server behind one Envoy
                  with the module and the module's policy), started once per module.
  jwt_keys        module-scoped: RSA keys and JWKS for tokens (support/jwt_util.py).
  envoy_factory   factory: ``envoy_factory(plugin_config, upstream_port=None, **kw) -> EnvoyHandle``;
                  ``upstream_port`` defaults to the ``demo_server`` fixture's port,
                  ``wasm_path`` to the ``wasm_path`` fixture (not needed with
                  ``wasm=False``); other keywords go to harness.start_envoy /
                  envoy_config.render.  Every Envoy is stopped at teardown.

On a failed test the fixtures print the log tails of their processes, which
pytest shows under "Captured stdout teardown".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from support import harness
from support.jwt_util import make_keys
from support.stack import DEMO_MODES, Stack, StackSpec, open_stack
from support.ts import TS_DIR, TsServer, ts_node


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"_mcp_rep_{report.when}", report)
    return report


def _test_failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"_mcp_rep_{when}", None), "failed", False) for when in ("setup", "call")
    )


@pytest.fixture(scope="session")
def wasm_path() -> Path:
    path = Path(os.environ.get("MCP_POLICY_WASM") or harness.DEFAULT_WASM)
    if not path.is_file():
        pytest.fail(f"wasm module {path} not found: run `make build` first", pytrace=False)
    return path.resolve()


@pytest.fixture
def policy_config() -> Callable[..., dict[str, Any]]:
    """Factory for the plugin configuration.

    ``policy_source`` is one Rego module (stored as ``policy.rego``) or a
    mapping ``{file name: source}``; ``data`` becomes ``policy.data``; other
    keywords become top-level plugin options. None values are omitted.
    """

    def make(policy_source: str | Mapping[str, str], data: Any = None, **kw: Any) -> dict[str, Any]:
        if isinstance(policy_source, str):
            modules = {"policy.rego": policy_source}
        else:
            modules = dict(policy_source)
        policy: dict[str, Any] = {"modules": modules}
        if data is not None:
            policy["data"] = data
        config: dict[str, Any] = {"policy": policy}
        config.update({k: v for k, v in kw.items() if v is not None})
        return config

    return make


@pytest.fixture
def demo_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[harness.DemoServer]:
    param = getattr(request, "param", "sse")
    if isinstance(param, str):
        try:
            options = DEMO_MODES[param]
        except KeyError:
            raise ValueError(f"demo_server param must be one of {sorted(DEMO_MODES)} or a dict") from None
    else:
        options = dict(param)
    server = harness.start_demo_server(tmp_path, **options)
    try:
        yield server
    finally:
        if _test_failed(request):
            print(server.proc.log_tail())
        server.proc.stop()


@pytest.fixture
def envoy_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., harness.EnvoyHandle]]:
    started: list[harness.EnvoyHandle] = []

    def make(plugin_config: Mapping[str, Any] | str | None = None, upstream_port: int | None = None,
             **kw: Any) -> harness.EnvoyHandle:
        if kw.get("wasm", True) and kw.get("wasm_path") is None:
            kw["wasm_path"] = request.getfixturevalue("wasm_path")
        if upstream_port is None:
            upstream_port = request.getfixturevalue("demo_server").port
        handle = harness.start_envoy(tmp_path, plugin_config=plugin_config, upstream_port=upstream_port, **kw)
        started.append(handle)
        return handle

    try:
        yield make
    finally:
        failed = _test_failed(request)
        for handle in started:
            if failed:
                print(handle.proc.log_tail())
            handle.stop()


@pytest.fixture(scope="module")
def jwt_keys() -> dict[str, Any]:
    return make_keys()


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          wasm_path: Path) -> Iterator[Stack]:
    """The module's stack (``STACK = StackSpec(...)`` in the test module); see support/stack.py."""
    spec = getattr(request.module, "STACK", None)
    if not isinstance(spec, StackSpec):
        raise TypeError(f"{request.module.__name__} uses the stack fixture without STACK = StackSpec(...)")
    keys = request.getfixturevalue("jwt_keys") if spec.jwt else None
    with open_stack(spec, tmp_path_factory.mktemp(spec.name), wasm_path, keys=keys) as s:
        yield s


# --- the TypeScript SDK server (tests/ts/, e2e/test_e2e_ts_sdk.py) -----------


@pytest.fixture
def ts_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TsServer]:
    """tests/ts/server.mjs on 127.0.0.1; param: sse | json | sse-stateless | json-stateless,
    or {"mode": …, "extra": [more server.mjs flags]}."""
    param = getattr(request, "param", "sse")
    mode, extra = (param, []) if isinstance(param, str) else (param["mode"], list(param.get("extra", [])))
    log_dir = tmp_path / "ts-server"
    log_dir.mkdir()
    log_file = log_dir / "received.jsonl"
    proc = harness.Process(
        [ts_node(), str(TS_DIR / "server.mjs"), "--port", "0", "--mode", mode, "--log-file", str(log_file),
         "--lifetime", "300", *extra],
        name="ts_server", log_dir=log_dir, cwd=TS_DIR,
    ).start()
    try:
        match = proc.wait_for_line(r"^READY (\d+)\s*$", timeout=30)
        yield TsServer(proc, int(match.group(1)), log_file)
    finally:
        if _test_failed(request):
            print(proc.log_tail())
        proc.stop()
