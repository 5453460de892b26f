"""The shared harness of the Python tests (tests/e2e, tests/mesh, tests/tooling).

Modules
  harness      processes (Process), the demo MCP server, the one Envoy start path
               (start_envoy from a plugin configuration, start_envoy_bootstrap from
               a whole bootstrap), EnvoyHandle
  mesh         mesh helpers on top of harness: envoy --mode validate, pq-client,
               the input-field probe, Kubernetes manifests against CRD schemas
  stack        Stack (a demo server behind one Envoy) and open_stack, behind the
               ``stack`` fixture of tests/conftest.py
  rpc          JSON-RPC bodies and answers: call(), error_of(), text_of(), headers
  http2        one HTTP/2 cleartext request with DATA frames and trailers (PyPI h2)
  ts           the TypeScript SDK server (tests/ts)
  jwt_util     keys, tokens and the jwt_authn filter for the identity tests
  demo_server  the MCP server the tests put behind Envoy (a script; also tools/run_demo.py)
  bundle_server  an HTTP server of policy bundles

tests/ is on sys.path (pytest.ini ``pythonpath``), so tests import ``support.…``;
tools/ is put on sys.path here as well (envoy_config, mesh_config, gen_certs …) for
users outside pytest such as tools/soak.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
TESTS = REPO / "tests"
TOOLS = REPO / "tools"
FIXTURES = TESTS / "fixtures"

if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
