"""Same decisions under OPA: the shipped policies evaluate identically under
regorus (the filter's engine) and under a real OPA.

OPA is OPA 1.20, embedded by the PyPI package ``opa-golib-python-bindings``
(install: ``pip install --ignore-requires-python opa-golib-python-bindings``;
it declares Python >= 3.12 but works on 3.11).

The regorus side is the ``mcp-policy`` CLI, so the inputs are exactly what
the filter builds: every message in a corpus (the recorded messages in
``tests/fixtures/messages/`` plus generated ones, both protocol eras) goes
through ``mcp-policy eval --format json --print-input``, which runs the
filter's request path and prints, per message, the input the policy saw, the
RVM's decision (``result``: allow == true, deny set) and the interpreter's
raw ``data.mcp.allow`` / ``data.mcp.deny`` (``values``). Each input is then
given to OPA, and all three must agree. The Rego ``test_`` rules must pass
under OPA too.

Known divergences are pinned by tests at the end (see docs/policy.md,
"Differences from OPA"): if regorus changes, they fail and the document must
be updated.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

try:
    from opa_bindings import OpaEngine, OpaError, OpaUndefinedError
except ImportError as e:  # pragma: no cover - a setup problem, not a test result
    raise ImportError(
        "tests/tooling/test_opa_parity.py needs OPA: "
        "pip install --ignore-requires-python opa-golib-python-bindings (make setup)"
    ) from e

ROOT = Path(__file__).resolve().parent.parent.parent
POLICIES = ROOT / "policies"
FIXTURES = ROOT / "tests" / "fixtures" / "messages"

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "parity", "version": "1.0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.fixture(scope="session")
def cli() -> Path:
    """The mcp-policy binary, built from this tree."""
    subprocess.run(
        ["cargo", "build", "--quiet", "--bin", "mcp-policy"], cwd=ROOT, check=True, timeout=900
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug" / "mcp-policy"
    assert binary.is_file(), binary
    return binary


def run_cli(cli: Path, *args: str) -> tuple[int, dict]:
    p = subprocess.run(
        [str(cli), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert p.returncode in (0, 1), f"mcp-policy {' '.join(args)}: exit {p.returncode}\n{p.stderr}"
    return p.returncode, json.loads(p.stdout)


def policy_modules(folder: Path, tests: bool) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text()
        for p in sorted(folder.rglob("*.rego"))
        if tests or not p.name.endswith("_test.rego")
    }


def policy_data(folder: Path):
    f = folder / "data.json"
    return json.loads(f.read_text()) if f.is_file() else None


def opa_engine(folder: Path, tests: bool = False) -> OpaEngine:
    e = OpaEngine()
    for name, source in policy_modules(folder, tests).items():
        e.add_policy(name, source)
    data = policy_data(folder)
    if data is not None:
        e.add_data(data)
    return e


def opa_value(e: OpaEngine, path: str, inp):
    """The document's value, or the string "<undefined>"."""
    try:
        return e.eval_document(path, inp)
    except OpaUndefinedError:
        return "<undefined>"


def generated_messages() -> list[tuple[str, object]]:
    """Bodies that exercise every rule of the shipped policy, in both eras."""
    calls = [
        ("echo", {"text": "hi"}),
        ("delete_record", {"id": 42}),
        ("delete_record", {}),
        ("read_file", {"path": "/workspace/notes.txt"}),
        ("read_file", {"path": "/workspace/../etc/passwd"}),
        ("read_file", {"path": "/etc/passwd"}),
        ("read_file", {"path": 7}),
        ("read_file", {"path": None}),
        ("read_file", {}),
        ("send_email", {"to": "ops@example.com", "body": "x"}),
        ("send_email", {"to": "Ops@EXAMPLE.com", "body": "x"}),
        ("send_email", {"to": "attacker@evil.test", "body": "x"}),
        ("send_email", {"to": ["ops@example.com"]}),
        ("send_email", {}),
        ("café_tool", {"n": 9007199254740993}),
        ("", {}),
    ]
    out: list[tuple[str, object]] = []
    for i, (name, args) in enumerate(calls):
        out.append((f"legacy-call-{i}", {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {"name": name, "arguments": args}}))
        out.append((f"modern-call-{i}", {"jsonrpc": "2.0", "id": f"m{i}", "method": "tools/call", "params": {"name": name, "arguments": args, "_meta": MODERN_META}}))
    out += [
        ("no-arguments", {"jsonrpc": "2.0", "id": 50, "method": "tools/call", "params": {"name": "read_file"}}),
        ("null-arguments", {"jsonrpc": "2.0", "id": 51, "method": "tools/call", "params": {"name": "send_email", "arguments": None}}),
        ("tools-list", {"jsonrpc": "2.0", "id": 52, "method": "tools/list"}),
        ("prompts-get", {"jsonrpc": "2.0", "id": 53, "method": "prompts/get", "params": {"name": "greet", "arguments": {"name": "Ada"}, "_meta": MODERN_META}}),
        ("resources-read", {"jsonrpc": "2.0", "id": 54, "method": "resources/read", "params": {"uri": "demo://readme"}}),
        ("completion", {"jsonrpc": "2.0", "id": 55, "method": "completion/complete", "params": {"ref": {"type": "ref/prompt", "name": "greet"}, "argument": {"name": "name", "value": "A"}}}),
        ("ping", {"jsonrpc": "2.0", "id": 56, "method": "ping"}),
        ("progress", {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 0.5}}),
        ("sampling-response", {"jsonrpc": "2.0", "id": "s-1", "result": {"role": "assistant", "content": {"type": "text", "text": "x"}}}),
        ("error-response", {"jsonrpc": "2.0", "id": 57, "error": {"code": -1, "message": "no"}}),
        (
            "batch",
            [
                {"jsonrpc": "2.0", "id": 60, "method": "tools/call", "params": {"name": "echo", "arguments": {}}},
                {"jsonrpc": "2.0", "id": 61, "method": "tools/call", "params": {"name": "read_file", "arguments": {"path": "/tmp/x"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
            ],
        ),
    ]
    return out


@pytest.fixture(scope="session")
def corpus(cli: Path, tmp_path_factory) -> list[tuple[str, dict]]:
    """(label, message report) for every message the policy decided."""
    files = sorted(FIXTURES.glob("*.json"))
    tmp = tmp_path_factory.mktemp("parity")
    for label, body in generated_messages():
        f = tmp / f"{label}.json"
        f.write_text(json.dumps(body, ensure_ascii=False))
        files.append(f)
    out = []
    for f in files:
        _, report = run_cli(cli, "eval", "--format", "json", "--print-input", str(POLICIES), str(f))
        for m in report["messages"]:
            if "input" in m:
                out.append((f"{f.name}[{m['index']}]", m))
    assert len(out) >= 60, f"corpus too small: {len(out)}"
    return out


def test_corpus_decisions_match_opa(corpus):
    e = opa_engine(POLICIES)
    mismatches = []
    for label, m in corpus:
        inp = m["input"]
        allow = opa_value(e, "mcp.allow", inp)
        deny = opa_value(e, "mcp.deny", inp)
        opa_deny = sorted(deny) if isinstance(deny, list) else deny
        rvm = m["result"]
        interp = m.get("values", {})
        checks = {
            "RVM allow": (rvm["allow"], allow is True),
            "RVM deny": (sorted(rvm["deny"]), opa_deny if deny != "<undefined>" else []),
            "interpreter allow": (interp.get("allow", "<undefined>"), allow),
            "interpreter deny": (sorted(interp["deny"]) if "deny" in interp else "<undefined>", opa_deny),
        }
        for what, (ours, theirs) in checks.items():
            if ours != theirs:
                mismatches.append(f"{label}: {what}: regorus {ours!r}, OPA {theirs!r}")
    assert not mismatches, "\n".join(mismatches)


def test_corpus_covers_every_rule(corpus):
    """The corpus makes each deny rule fire and each one stay quiet."""
    reasons = {r for _, m in corpus for r in m["result"]["deny"]}
    for fragment in ("is blocked by policy", "may only read under /workspace/", "may only send to @example.com"):
        assert any(fragment in r for r in reasons), fragment
    assert any(not m["result"]["deny"] for _, m in corpus)


def test_rego_tests_pass_under_opa(cli):
    _, report = run_cli(cli, "test", "--format", "json", str(POLICIES))
    names = [t["name"] for t in report["tests"]]
    assert len(names) >= 10 and report["failed"] == 0, report
    e = opa_engine(POLICIES, tests=True)
    failed = []
    for name in names:
        value = opa_value(e, name.removeprefix("data."), None)
        if value is not True:
            failed.append(f"{name}: {value!r}")
    assert not failed, "Rego tests that fail under OPA:\n" + "\n".join(failed)


# --- known divergences (docs/policy.md, "Differences from OPA") -------------

CONFLICT_POLICY = """package mcp

import rego.v1

default allow := true

level := 1 if input.mcp.method == "ping"

level := 2 if input.mcp.method == "ping"

deny contains "no level" if not level
"""


def test_conflicting_complete_rule_is_an_error_everywhere(cli, tmp_path):
    """Two definitions of a complete rule with different values.

    OPA raises eval_conflict_error; so do regorus' interpreter and, with the
    project's patch (vendor/regorus/PATCHES.md), the RVM: the filter denies.
    """
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "p.rego").write_text(CONFLICT_POLICY)
    inp = {"mcp": {"kind": "request", "method": "ping"}}
    (tmp_path / "in.json").write_text(json.dumps(inp))

    e = opa_engine(tmp_path / "p")
    with pytest.raises(OpaError) as err:
        e.eval_document("mcp.deny", inp)
    assert "eval_conflict_error" in err.value.message
    with pytest.raises(OpaError):
        e.eval_document("mcp.level", inp)

    _, report = run_cli(cli, "eval", "--format", "json", str(tmp_path / "p"), "--input", str(tmp_path / "in.json"))
    m = report["messages"][0]
    assert report["policy"]["engine"] == "rvm"
    # RVM: an error, as in OPA (it was undefined before the patch).
    assert m["result"]["error"].startswith("conflict error at p.rego:"), m
