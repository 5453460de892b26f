"""The shipped configuration: envoy/envoy.yaml is what `make run` uses; it
must load in a real Envoy 1.40 (which also runs the module's on_configure,
so the embedded default policy must compile) and match policies/."""

from __future__ import annotations

import subprocess
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parent.parent


def test_shipped_envoy_config_validates(wasm_path: Path) -> None:
    r = subprocess.run(
        [harness.find_envoy(), "--mode", "validate", "-c", str(REPO / "envoy" / "envoy.yaml"),
         "--disable-hot-restart", "--log-level", "info", "--component-log-level", "wasm:info"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "mcp-policy: configured" in out and "default.rego" in out, out


def test_shipped_envoy_config_is_up_to_date() -> None:
    r = subprocess.run(
        [harness.sys.executable, str(REPO / "tools" / "envoy_config.py"), "--policy-dir", "policies",
         "--wasm", "target/wasm32-wasip1/release/mcp_policy.wasm", "--listen-port", "10000",
         "--upstream-port", "8000", "--admin-port", "9901", "--check", "envoy/envoy.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
