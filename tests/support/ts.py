"""The TypeScript SDK server and client of tests/ts (e2e/test_e2e_ts_sdk.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from support import TESTS, harness

TS_DIR = TESTS / "ts"


def ts_node() -> str:
    """Node.js, once `make e2e` has installed tests/ts/node_modules (npm ci)."""
    path = shutil.which("node")
    if path is None or not (TS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        pytest.fail("Node.js and tests/ts/node_modules are needed: run `make e2e` (it runs npm ci in tests/ts)")
    return path


class TsServer(NamedTuple):
    proc: harness.Process
    port: int
    log_file: Path

    def received(self) -> list[dict[str, Any]]:
        """The JSON-RPC messages the server received (method, id, name or uri), one per line of its log."""
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text(encoding="utf-8").splitlines() if line]
