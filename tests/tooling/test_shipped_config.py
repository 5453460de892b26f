"""The shipped configuration: envoy/envoy.yaml (`make run` renders the same
configuration, plus the live bundle source, at start-up); it
must load in a real Envoy 1.40 (which also runs the module's on_configure,
so the embedded default policy must compile) and match policies/."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import harness

REPO = Path(__file__).resolve().parent.parent.parent


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


def _cli() -> Path:
    """The mcp-policy binary, built from this tree (debug: quicker to build)."""
    subprocess.run(["cargo", "build", "--quiet", "--bin", "mcp-policy"], cwd=REPO, check=True, timeout=900)
    binary = REPO / "target" / "debug" / "mcp-policy"
    assert binary.is_file(), binary
    return binary


def _render(policy_dir: Path, out: Path, cli: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [harness.sys.executable, str(REPO / "tools" / "envoy_config.py"), "--policy-dir", str(policy_dir),
         "--wasm", "mcp_policy.wasm", "--mcp-policy", str(cli), "-o", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )


def test_envoy_config_refuses_a_broken_policy(tmp_path: Path) -> None:
    """`make envoy-config` runs `mcp-policy check` first: a policy with an
    error, or with a typo in an input path, leaves the config untouched."""
    cli = _cli()
    out = tmp_path / "envoy.yaml"
    out.write_text("previous\n", encoding="utf-8")
    cases = {
        "syntax": "package mcp\nimport rego.v1\nallow if {\n",
        "typo": "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains \"x\" if input.mcp.tool.nmae == \"rm\"\n",
        "unknown_function": "package mcp\nimport rego.v1\nallow if yaml.is_valid(input.mcp.method)\n",
    }
    for name, source in cases.items():
        d = tmp_path / name
        d.mkdir()
        (d / "p.rego").write_text(source, encoding="utf-8")
        r = _render(d, out, cli)
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        assert "nothing written" in r.stderr, (name, r.stderr)
        assert out.read_text(encoding="utf-8") == "previous\n", name
    assert "p.rego:4:37: warning: input.mcp.tool.nmae is not in the documented input" in _render(
        tmp_path / "typo", out, cli).stderr
    good = tmp_path / "good"
    good.mkdir()
    (good / "p.rego").write_text((REPO / "policies" / "default.rego").read_text(encoding="utf-8"), encoding="utf-8")
    r = _render(good, out, cli)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mcp-policy" in out.read_text(encoding="utf-8")
