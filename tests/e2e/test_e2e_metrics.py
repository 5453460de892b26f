"""Metrics through Envoy's own stats: decisions by method, tool and outcome,
denials by identity, protocol rejections by reason, evaluation time, and
configuration loads, as a real Envoy exports them at /stats/prometheus —
and every metric the shipped Grafana dashboard queries exists there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import harness, rpc

REPO = Path(__file__).resolve().parent.parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "mcp-policy-dashboard.json"
POLICY = """package mcp
import rego.v1
default allow := true
deny contains "blocked" if input.mcp.tool.name == "delete_record"
dry_run contains "soon blocked" if input.mcp.tool.name == "send_email"
"""
HEADERS = rpc.JSON_HEADERS


def prometheus(envoy: harness.EnvoyHandle) -> str:
    code, body = envoy.admin_get("/stats/prometheus")
    assert code == 200
    return body.decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.parametrize("demo_server", ["json-stateless"], indirect=True)
def test_stats_and_dashboard(demo_server: harness.DemoServer, envoy_factory: Any) -> None:
    envoy = envoy_factory({"policy": {"modules": {"m.rego": POLICY}}})

    def call(name: str, id_: int) -> None:
        body = rpc.call(name, id_)
        httpx.post(envoy.url, content=json.dumps(body), headers=HEADERS, timeout=15)

    for i, name in enumerate(["echo", "echo", "delete_record", "send_email"]):
        call(name, i)
    httpx.post(envoy.url, content=b"{bad", headers=HEADERS, timeout=15)
    text = prometheus(envoy)
    assert sample(text, "mcp_policy_decisions", mcp_method="tools_call", mcp_tool="echo", mcp_outcome="allow") == 2
    assert sample(text, "mcp_policy_decisions", mcp_tool="delete_record", mcp_outcome="deny") == 1
    assert sample(text, "mcp_policy_decisions", mcp_tool="send_email", mcp_outcome="dry_run") == 1
    assert sample(text, "mcp_policy_denials", mcp_principal="anonymous") == 1
    assert sample(text, "mcp_policy_rejections", mcp_reason="not_json") == 1
    assert (sample(text, "mcp_policy_config_loads") or 0) >= 1
    assert "# TYPE mcp_policy_eval_us histogram" in text

    # Every metric the dashboard queries is exported by this Envoy.
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {re.sub(r"_(bucket|sum|count)$", "", n) for e in exprs
             for n in re.findall(r"\b((?:mcp_policy|envoy)_[a-z0-9_]+)\b", e)}
    assert names, exprs
    exported = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    missing = sorted(n for n in names if n not in exported)
    assert not missing, f"dashboard queries metrics Envoy does not export: {missing}"
    # ...and the labels it groups by exist on them.
    labels = {lab for e in exprs for lab in re.findall(r"by \(([a-z_]+)\)", e)} - {"le"}
    for lab in labels:
        assert f'{lab}="' in text, lab
