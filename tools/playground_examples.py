#!/usr/bin/env python3
"""The playground's one-click examples (docs/playground.md): playground/pkg/examples.json.

policies: policies/default.rego alone, then each library policy of
policies/library/ next to it (tests left out, as the filter never loads them);
messages: the recorded messages of tests/fixtures/messages/ (the files
`mcp-policy eval` reads), as text, and a tools/list request;
audit_logs: an Envoy log of the filter's audit events (docs/audit.md), recorded
under a policy that allowed every tool, to decide again with a stricter one;
tools: a tools/list answer (the server's tool definitions) to filter.
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "playground/pkg/examples.json"
default = (root / "policies/default.rego").read_text()
policies = {"default": {"modules": {"default.rego": default}, "data": {}}}
for p in sorted((root / "policies/library").glob("*.rego")):
    if p.name.endswith("_test.rego"):
        continue
    policies[f"library/{p.stem}"] = {
        "modules": {"default.rego": default, f"library/{p.name}": p.read_text()},
        "data": {},
    }
messages = {p.name: p.read_text() for p in sorted((root / "tests/fixtures/messages").glob("*.json"))}
messages["tools_list.json"] = '{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}\n'


def tool(name, description, props):
    return {"name": name, "description": description,
            "inputSchema": {"type": "object", "properties": {p: {"type": "string"} for p in props}}}


tools = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [
    tool("echo", "Echo the text back", ["text"]),
    tool("read_file", "Read a file", ["path"]),
    tool("send_email", "Send an email", ["to", "body"]),
    tool("delete_record", "Delete a record by id", ["id"]),
]}}

# Envoy's log as `make run` writes it (docs/audit.md, "Envoy's log"): the
# events of one session under a policy that blocked nothing.
REVISION = "sha256:" + "0" * 63 + "1"


def event(n, kind, method, decision="allow", reasons=(), **extra):
    e = {"decision": decision, "decision_id": f"{n:032x}", "direction": "request", "eval_us": 80,
         "identity": {"subject": "alice"}, "kind": kind, "labels": [], "method": method, "mode": "enforce",
         "policy_revision": REVISION, "protocol_version": "2025-06-18", "reasons": list(reasons),
         "session_id": "7f3a9c", "time": f"2026-11-22T05:17:{n:02}.311Z", "upstream": "127.0.0.1:10000", **extra}
    line = json.dumps(dict(sorted(e.items())), separators=(",", ":"))
    return (f"[2026-11-22 05:17:{n:02}.311][16807][info][wasm] [source/extensions/common/wasm/context.cc:1151] "
            f"wasm log mcp_policy mcp_policy mcp_policy: mcp-policy audit {line}")


digest = "sha256:" + "ab" * 32
audit_log = "\n".join([
    event(1, "request", "initialize"),
    event(2, "notification", "notifications/initialized"),
    event(3, "request", "tools/list"),
    event(4, "response", "tools/list", direction="response", hidden=[]),
    event(5, "request", "tools/call", tool="echo", arguments={"digest": digest}),
    event(6, "request", "tools/call", tool="read_file", arguments={"digest": digest, "revealed": {"path": "/workspace/notes.md"}}),
    event(7, "request", "tools/call", tool="delete_record", arguments={"digest": digest, "revealed": {"id": 4}}),
    "[2026-11-22 05:17:07.312][16807][info][wasm] wasm log mcp_policy: mcp-policy: allowed tools/call delete_record",
    event(8, "request", "tools/call", tool="send_email", arguments={"digest": digest, "revealed": {"to": "eve@elsewhere.test"}}),
    event(9, "rejected", "", decision="deny", reasons=["request body is not valid JSON: EOF while parsing"], http_status=400),
]) + "\n"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps({"policies": policies, "messages": messages,
                           "audit_logs": {"envoy.log (a session under a policy that blocked nothing)": audit_log},
                           "tools": json.dumps(tools, indent=1)}, indent=1) + "\n")
print(f"wrote {out}: {len(policies)} policies, {len(messages)} messages, 1 audit log, 1 tools/list answer")
