#!/usr/bin/env python3
"""Write the seed corpus of the fuzz targets: fuzz/corpus/<target>/.

Valid MCP messages of every method of every protocol version (the methods
are read from the schemas in /work/shared/mcp-spec, or --spec), plus tricky
inputs (parser differentials, transport tricks, name games). The same files
run as a regression test on stable Rust (crates/core/tests/fuzz_corpus.rs) and seed
`make fuzz`. The input formats are described in crates/core/src/fuzzing.rs and
docs/hardening.md.

    python3 tools/gen_fuzz_corpus.py [--spec DIR] [--out fuzz/corpus]

Deterministic: running it again rewrites the same files (names are content
hashes, so inputs the fuzzer found and that were added by hand stay).
"""

import argparse
import base64
import hashlib
import json
import os
import struct

VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]
MODERN = "2026-07-28"

# Params for the requests and notifications a client sends.
PARAMS = {
    "initialize": lambda v: {
        "protocolVersion": v,
        "capabilities": {"roots": {"listChanged": True}},
        "clientInfo": {"name": "fuzz", "version": "1"},
    },
    "ping": lambda v: None,
    "tools/list": lambda v: {"cursor": "c1"},
    "tools/call": lambda v: {"name": "add", "arguments": {"a": 1, "b": 2}},
    "prompts/list": lambda v: {},
    "prompts/get": lambda v: {"name": "greet", "arguments": {"who": "x"}},
    "resources/list": lambda v: {},
    "resources/templates/list": lambda v: {},
    "resources/read": lambda v: {"uri": "file:///workspace/a.txt"},
    "resources/subscribe": lambda v: {"uri": "file:///workspace/a.txt"},
    "resources/unsubscribe": lambda v: {"uri": "file:///workspace/a.txt"},
    "completion/complete": lambda v: {
        "ref": {"type": "ref/prompt", "name": "greet"},
        "argument": {"name": "who", "value": "a"},
    },
    "logging/setLevel": lambda v: {"level": "info"},
    "tasks/get": lambda v: {"taskId": "t1"},
    "tasks/result": lambda v: {"taskId": "t1"},
    "tasks/cancel": lambda v: {"taskId": "t1"},
    "tasks/list": lambda v: {},
    "server/discover": lambda v: {},
    "subscriptions/listen": lambda v: {},
    "notifications/initialized": lambda v: None,
    "notifications/cancelled": lambda v: {"requestId": 1, "reason": "x"},
    "notifications/progress": lambda v: {"progressToken": "p", "progress": 1},
    "notifications/roots/list_changed": lambda v: None,
}
# Requests a server sends; the client answers them (a client-sent response).
SERVER_REQUESTS = {"sampling/createMessage", "roots/list", "elicitation/create"}


def methods(spec, version):
    path = os.path.join(spec, version, "schema.json")
    try:
        with open(path) as f:
            s = json.load(f)
    except OSError:
        return sorted(PARAMS)
    defs = s.get("definitions") or s.get("$defs") or {}
    out = set()
    for d in defs.values():
        m = d.get("properties", {}).get("method", {})
        if "const" in m:
            out.add(m["const"])
    return sorted(out)


def message(method, version, ident):
    p = PARAMS[method](version)
    if version == MODERN and not method.startswith("notifications/"):
        p = dict(p or {})
        p["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientInfo": {"name": "fuzz", "version": "1"},
        }
    m = {"jsonrpc": "2.0", "method": method}
    if not method.startswith("notifications/"):
        m["id"] = ident
    if p is not None:
        m["params"] = p
    return m


def routing_headers(m, version):
    h = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
    if version == MODERN:
        h.append(("mcp-protocol-version", version))
        h.append(("mcp-method", m["method"]))
        name = (m.get("params") or {}).get("name") or (m.get("params") or {}).get("uri")
        if name and m["method"] in ("tools/call", "prompts/get", "resources/read"):
            h.append(("mcp-name", name))
    elif m["method"] != "initialize":
        h.append(("mcp-protocol-version", version))
        h.append(("mcp-session-id", "s-" + version))
    return h


def http(headers, body, method="POST"):
    lines = [f":method: {method}", ":path: /mcp", ":authority: 127.0.0.1:10000", ":scheme: http"]
    lines += [f"{k}: {v}" for k, v in headers]
    head = ("\n".join(lines) + "\n\n").encode()
    return head + (body if isinstance(body, bytes) else body.encode())


def dumps(m):
    return json.dumps(m, separators=(",", ":"))


# Bodies that proxies and servers have read differently.
TRICKY_BODIES = [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping","params":{"name":"rm"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","name":"rm"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"},"params":{"name":"rm"}}',
    b'{"jsonrpc":"2.0","id":12345678901234567890123,"method":"tools/call","params":{"name":"add","arguments":{"a":9007199254740993}}}',
    b'{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":NaN}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":Infinity}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1e400}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":-1e-400}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1e999999999}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":17976931348623159e292}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":' + b"9" * 4301 + b'}}}',
    b'{"jsonrpc":"2.0","id":' + b"9" * 4300 + b',"method":"ping"}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"s":"\\"1e999999999"}}',
    # Issue 17: costly exponents whatever the mantissa, digits, and the checks
    # in members the wire model does not name.
    b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":0e20000000}}',
    b'{"jsonrpc":"2.0","id":2,"method":"ping","unknown":[-0.0E+1001]}',
    b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":1e-1000,"y":0e1000}}',
    b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":0.' + b"1" * 4300 + b'}}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping","unknown":' + b"[" * 200 + b"]" * 200 + b'}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":' + b'{"a":' * 130 + b"1" + b"}" * 130 + b'}}',
    b'[{"jsonrpc":"2.0","id":1,"method":"ping","x":' + b"[" * 125 + b"]" * 125 + b'}]',
    b'[{"jsonrpc":"2.0","id":1,"method":"ping","x":' + b"[" * 126 + b"]" * 126 + b'}]',
    b'{"jsonrpc":"2.0","id":1,"method":"ping","unknown":"\\ud800"}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping","unknown":{"\\udfff":1}}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping","x":"\\ud800\\u0041"}',
    b'{"jsonrpc":"2.0","id":1.0,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":null,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":true,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\u0072m"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"rm"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\ud800"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\udc00\\ud800"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\ud83d\\ude00"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"r\xffm"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\xed\xa0\x80"}}',
    b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping"} x',
    b'{"jsonrpc":"2.0","id":1,"method":"ping"}\x00',
    b' \r\n\t{"jsonrpc":"2.0","id":1,"method":"tools/list"} \n',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"RM"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":" rm"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm\\u0000"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"rm"}}',
    b'{"jsonrpc":"2.0","id":1,"method":" tools/call","params":{"name":"rm"}}',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\u0433m"}}'.encode(),
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"r\u200bm"}}'.encode(),
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\uff52\uff4d"}}'.encode(),
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":[1]}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}',
    b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":null}}',
    b'{"jsonrpc":"1.0","id":1,"method":"ping"}',
    b'{"id":1,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}',
    b'{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}',
    b'{"jsonrpc":"2.0","id":"s1","result":{"roots":[]}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":{"limit":5000,"big":123456789012345678901234567890}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":{"limit":1e3}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":null}}',
    b"[]",
    b"[[]]",
    b"[1,2]",
    b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm"}}]',
    b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","method":"notifications/initialized"}]',
    b'[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query","arguments":{"limit":500}}}]',
    b'[[{"jsonrpc":"2.0","id":1,"method":"ping"}]]',
    b"[" + b",".join([b'{"jsonrpc":"2.0","id":%d,"method":"tools/list"}' % i for i in range(64)]) + b"]",
    b"[" * 200 + b"]" * 200,
    b'{"a":' * 130 + b"1" + b"}" * 130,
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":' + b'{"a":' * 120 + b"1" + b"}" * 120 + b"}}",
    b"",
    b"null",
    b'"x"',
    b"{",
]


def sse_streams():
    ok = dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "add", "inputSchema": {"type": "object"}}]}})
    return [
        f"event: message\r\ndata: {ok}\r\n\r\n".encode(),
        f"event: message\ndata: {ok}\n\n".encode(),
        f"event: message\rdata: {ok}\r\r".encode(),
        b": keep-alive\n\nid: 7\nretry: 1500\ndata: {\"a\":\ndata: 1}\n\n",
        b"data\n\ndata:\n\ndata: x\ndata\n\n",
        b"\xef\xbb\xbfdata: bom\n\n",
        b"data: \xff\n\n",
        b"data: " + b"x" * 5000 + b"\n\n",
        b"id: a\x00b\ndata: nul in id\n\n",
        b"retry: 99999999999999999999999\ndata: r\n\n",
        b"data: no end",
        "data: caf\u00e9 \U0001f600\n\n".encode(),
    ]


def tools_inputs():
    lst = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [
        {"name": "add", "description": "adds", "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}}}},
        {"name": "rm", "inputSchema": {"type": "object"}, "annotations": {"destructiveHint": True}},
    ]}}
    j = dumps(lst).encode()
    return [
        b"application/json\n1\n\n" + j,
        b"text/event-stream\n1\n\nevent: message\ndata: " + j + b"\n\n",
        b"text/event-stream; charset=utf-8\n1\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\ndata: " + j + b"\n\n",
        b"application/json\n2\n\n" + j,
        b'application/json\n"1"\n\n' + j,
        b"application/json\n1\n\n" + j[:-5],
        b'application/json\n1\n\n{"jsonrpc":"2.0","id":1,"result":{"tools":[1,"x",null,{"name":5},{"name":"a"},{"name":"a"}]}}',
        b"text/html\n1\n\n" + j,
        b"application/json\nnot json\n\n" + j,
    ]


def pb_varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_field(num, wire, payload):
    key = pb_varint((num << 3) | wire)
    if wire == 2:
        return key + pb_varint(len(payload)) + payload
    return key + payload


def pb_value(v):
    # google.protobuf.Value: 1 null, 2 number (double), 3 string, 4 bool, 5 struct, 6 list
    if v is None:
        return pb_field(1, 0, pb_varint(0))
    if isinstance(v, bool):
        return pb_field(4, 0, pb_varint(int(v)))
    if isinstance(v, (int, float)):
        return pb_field(2, 1, struct.pack("<d", float(v)))
    if isinstance(v, str):
        return pb_field(3, 2, v.encode())
    if isinstance(v, dict):
        return pb_field(5, 2, pb_struct(v))
    if isinstance(v, list):
        return pb_field(6, 2, b"".join(pb_field(1, 2, pb_value(x)) for x in v))
    raise TypeError(v)


def pb_struct(d):
    return b"".join(pb_field(1, 2, pb_field(1, 2, k.encode()) + pb_field(2, 2, pb_value(v))) for k, v in d.items())


def pb_metadata(ns):
    return b"".join(pb_field(1, 2, pb_field(1, 2, k.encode()) + pb_field(2, 2, pb_struct(v))) for k, v in ns.items())


def attribute_inputs():
    claims = {"sub": "alice", "aud": ["a", "b"], "exp": 1.7e9, "admin": True, "x": None, "nested": {"k": {"k": "v"}}}
    deep = {"v": 1}
    for _ in range(70):
        deep = {"d": deep}
    return [
        pb_struct(claims),
        pb_metadata({"envoy.filters.http.jwt_authn": {"jwt_payload": claims}}),
        pb_metadata({"envoy.filters.http.jwt_authn": {"p": claims}, "other": {"a": 1}}),
        pb_struct(deep),
        b"\x00", b"\x01", b"true", b"false", b"",
        b"\x0a\xff\xff\xff\xff\x0f",  # length far beyond the input
        b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # overlong varint
        b"\x0b\x0c",  # groups
        b"\x0d\x00\x00",  # truncated fixed32
        pb_field(1, 2, pb_field(1, 2, b"\xff\xfe") + pb_field(2, 2, pb_value("x"))),
        pb_struct({"k": "v"}) + b"\x0a",
    ]


def config_inputs():
    pol = 'package mcp\nimport rego.v1\ndefault allow := true\ndeny contains "x" if input.mcp.tool.name == "rm"\n'
    good = {"policy": {"modules": {"p.rego": pol}}}
    return [
        dumps(good).encode(),
        dumps({**good, "max_body_bytes": 1024, "deny_code": -31000, "max_instructions": 1000, "max_eval_ms": 5,
               "hold_headers": False, "mode": "audit", "sessions": {"slots": 1, "slot_records": 1},
               "audit": {"log": True}}).encode(),
        dumps({**good, "max_body_bytes": 0}).encode(),
        dumps({**good, "deny_code": -32000}).encode(),
        dumps({**good, "unknown": 1}).encode(),
        dumps({**good, "sessions": {"slots": 0}}).encode(),
        dumps({"policy": {"modules": {"p.rego": "package mcp\nallow if {"}}}).encode(),
        dumps({"policy": {"modules": {}}}).encode(),
        dumps({"policy": {"modules": {"p.rego": "package other\nallow := true"}}}).encode(),
        dumps({"policy": {"modules": {"p.rego": pol}, "data": {"a": [1, 2]}}}).encode(),
        b'{"policy":{"modules":{"p.rego":"package mcp"}},"max_body_bytes":1e400}',
        b'{"policy":{"modules":{"p.rego":"package mcp"}},"max_body_bytes":99999999999999999999999}',
        b"{}",
        b"[]",
    ]


def rewrite_inputs():
    call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"q","arguments":{"limit":5000,"big":123456789012345678901,"filter":{"a":[1,2]}}}}'
    return [
        b'{"limit":100}\n' + call,
        b'{"/filter/tenant":"t1","/filter/a/1":0}\n' + call,
        b'{"/filter/a/9":0}\n' + call,
        b'{"/filter/a/x":0}\n' + call,
        b'{"/limit/x":0}\n' + call,
        b'{"/a~1b/~0c":1,"/":2,"//":3}\n' + call,
        b'{"new":{"deep":[1,{"x":null}]}}\n' + call,
        b'{"a":1}\n{"jsonrpc":"2.0","id":1,"method":"ping"}',
        b'{"a":1}\n{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"q","arguments":null}}',
        b'{"a":1}\n{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"q","arguments":[1]}}',
        b'{"a":1}\nnot json',
    ]


def routing_inputs():
    call = dumps(message("tools/call", MODERN, 1))
    enc = base64.b64encode("caf\u00e9".encode()).decode()
    cases = [
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "add")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "=?base64?YWRk?=")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", f"=?base64?{enc}?=")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "=?base64?!!?=")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "=?base64?/w==?=")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "rm")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "ping"), ("mcp-name", "add")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("Mcp-Method", "tools/call"), ("mcp-name", "add")],
        [("mcp-protocol-version", MODERN), ("MCP-METHOD", "tools/call"), ("mcp-name", "add")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call "), ("mcp-name", "add")],
        [("mcp-protocol-version", "2025-06-18"), ("mcp-method", "tools/call"), ("mcp-name", "add")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "add"), ("mcp-param-a", "1"), ("mcp-param-a", "1")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "add"), ("mcp-param-", "1")],
        [("mcp-protocol-version", MODERN), ("mcp-method", "tools/call"), ("mcp-name", "add\x7f")],
        [("mcp-session-id", "a"), ("mcp-session-id", "b")],
        [],
    ]
    out = []
    for hs in cases:
        head = "".join(f"{k}: {v}\n" for k, v in hs).encode()
        out.append(head + b"\n" + call.encode())
    out.append(b"mcp-method: tools/call\nmcp-name: \xc3\xa9\n\n" + call.encode())
    out.append(b"mcp-protocol-version: 2026-07-28\n\n" + b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]')
    return out


def request_inputs(spec):
    out = []
    for v in VERSIONS:
        for i, m in enumerate(methods(spec, v)):
            if m in PARAMS:
                msg = message(m, v, i + 1)
                out.append(http(routing_headers(msg, v), dumps(msg)))
    msg = message("tools/call", "2025-06-18", 1)
    std = routing_headers(msg, "2025-06-18")

    def call(name, args=None, sub=None, extra=()):
        m = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args or {}}}
        hs = list(std) + list(extra)
        if sub:
            hs.append(("x-fuzz-sub", sub))
        return http(hs, dumps(m))

    out += [
        call("rm"), call("delete_record"), call("read_db", sub="alice"), call("send_email", sub="alice"),
        call("query", {"limit": 5000}), call("query", {"limit": 5}), call("hammer", sub="bob"),
        call("operator_clear", sub="bob"), call("x\ny"), call("add", extra=[("content-encoding", "gzip")]),
        call("add", extra=[("content-length", "99999999")]),
        call("add", extra=[("content-type", "text/plain")]),
        http([("accept", "text/event-stream"), ("mcp-session-id", "s1")], b"", method="GET"),
        http([("mcp-session-id", "s1"), ("x-fuzz-sub", "alice")], b"", method="DELETE"),
        http([("mcp-session-id", "s1"), ("mcp-session-id", "s2")], b"", method="GET"),
        http([("mcp-method", "tools/call"), ("mcp-method", "ping")], b"", method="GET"),
        http([], b"", method="OPTIONS"),
        # Issue 17: a DELETE or GET is decided as itself, never as its body.
        http([("content-type", "application/json"), ("mcp-session-id", "s1")],
             b'{"jsonrpc":"2.0","id":1,"method":"ping"}', method="DELETE"),
        http([("content-type", "application/json"), ("content-length", "40")],
             b'{"jsonrpc":"2.0","id":1,"method":"ping"}', method="GET"),
        http([("content-length", "0"), ("mcp-session-id", "s1")], b"", method="DELETE"),
        http([("content-type", "application/json")], b""),
        http([("content-type", "application/json; charset=utf-8")], b"[]"),
        http([("content-type", "application/json")], b"x" * 70000),
    ]
    for body in TRICKY_BODIES:
        out.append(http(std, body))
    # 2026-07-28 routing headers against the body.
    modern = message("tools/call", MODERN, 1)
    out.append(http(routing_headers(modern, MODERN) + [("mcp-name", "other")], dumps(modern)))
    out.append(http([("content-type", "application/json"), ("mcp-protocol-version", MODERN), ("mcp-method", "ping")], dumps(modern)))
    out.append(http([("content-type", "application/json"), ("mcp-protocol-version", MODERN)],
                    dumps([modern, message("tools/list", MODERN, 2)])))
    return out


def _tar(files):
    """A plain tar of (name, bytes) pairs, written deterministically."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def bundle_inputs():
    """Policy bundles (crates/core/src/fuzzing.rs `bundle`): gzipped tars, and `T` + a
    plain tar (gzipped by the target)."""
    import gzip

    main = b"package mcp\nimport rego.v1\ndefault allow := true\n"
    sets = [
        [("policy/main.rego", main)],
        [("./.manifest", b'{"revision": "r1", "roots": ["mcp", "library"]}'), ("./main.rego", main),
         ("./library/data.json", b'{"killswitch": {"principals": {"sub:x": "y"}}}')],
        [("main.rego", main), ("a/b/data.json", b'{"c": [1, 2]}'), ("data.json", b'{"a": {"d": true}}')],
        [("main.rego", main), ("data.json", b'{"k": 1}'), ("k/data.json", b"{}")],
        [("main.rego", main), ("x/data.yaml", b"a: 1")],
        [("../escape.rego", main)],
        [("/abs/main.rego", main), ("main_test.rego", b"package mcp_test\n")],
        [(".manifest", b'{"roots": ["other"]}'), ("main.rego", main)],
        [("main.rego", main), ("policy.wasm", b"\0asm")],
        [("main.rego", main), ("patch.json", b"{}")],
        [("main.rego", main), (".signatures.json", b"{}"), ("README.md", b"hello")],
        [("d" * 120 + "/long.rego", main)],
        [("main.rego", b"\xff\xfe not utf-8")],
    ]
    out = []
    for files in sets:
        tar = _tar(files)
        out.append(gzip.compress(tar, mtime=0))
        out.append(b"T" + tar)
    out.append(b"not gzip")
    out.append(gzip.compress(b"\x07" * 600, mtime=0))
    full = gzip.compress(_tar(sets[1]), mtime=0)
    out.append(full[: len(full) // 2])
    return out


def write(out_dir, target, inputs):
    d = os.path.join(out_dir, target)
    os.makedirs(d, exist_ok=True)
    for data in inputs:
        name = hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return len(inputs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="/work/shared/mcp-spec")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus"))
    a = ap.parse_args()
    mcp = []
    for v in VERSIONS:
        for i, m in enumerate(methods(a.spec, v)):
            if m in PARAMS:
                mcp.append(dumps(message(m, v, i + 1)).encode())
            elif m in SERVER_REQUESTS:
                mcp.append(dumps({"jsonrpc": "2.0", "id": f"srv-{i}", "result": {}}).encode())
    mcp.append(dumps({"jsonrpc": "2.0", "id": 3, "error": {"code": -1, "message": "declined"}}).encode())
    mcp += TRICKY_BODIES
    counts = {
        "mcp": write(a.out, "mcp", mcp),
        "sse": write(a.out, "sse", sse_streams()),
        "tools": write(a.out, "tools", tools_inputs()),
        "routing": write(a.out, "routing", routing_inputs()),
        "attributes": write(a.out, "attributes", attribute_inputs()),
        "config": write(a.out, "config", config_inputs()),
        "rewrite": write(a.out, "rewrite", rewrite_inputs()),
        "request": write(a.out, "request", request_inputs(a.spec)),
        "bundle": write(a.out, "bundle", bundle_inputs()),
    }
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
