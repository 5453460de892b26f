"""The playground's weight and time to first decision (docs/playground.md,
"Weight"): the sizes of what the page loads (raw and gzip -9), then, in
headless Chromium over WebDriver, the time from navigation to the first
decision on a cold load (a new browser profile: nothing cached) and a cached
one (the same page loaded again), as the page's status line reports it.
Not a test: a measurement, run by hand after `make web`:

    .venv/bin/python tests/web/weigh.py [PLAYGROUND_DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import pathlib
import re
import statistics
import sys
import threading

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import test_playground as tp  # noqa: E402  (the Browser and helpers of the page's tests)

FILES = ["pkg/mcp_policy_web_bg.wasm", "pkg/mcp_policy_web.js", "app.js", "editor.js", "index.html", "pkg/examples.json"]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def first_decision_ms(browser: tp.Browser, url: str) -> float:
    browser.get(url)
    status = browser.wait_status("first decision", timeout=60)
    return float(re.search(r"first decision (\d+) ms", status).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=str(tp.PLAYGROUND))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    root = pathlib.Path(args.dir)
    for f in FILES:
        data = (root / f).read_bytes()
        print(f"{f:32} {len(data):>10,} bytes {len(gzip.compress(data, 9)):>10,} gzip -9")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", tp.free_port()), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    cold, cached = [], []
    try:
        for _ in range(args.runs):
            b = tp.Browser()  # a new session: a new, empty profile
            try:
                cold.append(first_decision_ms(b, url))
                cached.append(first_decision_ms(b, url))
            finally:
                b.close()
    finally:
        server.shutdown()
    for name, xs in (("cold", cold), ("cached", cached)):
        print(f"first decision, {name:6}: median {statistics.median(xs):.0f} ms (runs: {', '.join(f'{x:.0f}' for x in xs)})")


if __name__ == "__main__":
    main()
