"""The playground (docs/playground.md) in headless Chromium, driven over the
W3C WebDriver protocol by Debian's chromedriver (plain HTTP: no client
library): the page loads the web build, decides a recorded session as the
CLI does (crates/web/tests/corpus/expected.json, which
crates/cli/tests/web_corpus.rs checks against the CLI), and shows a broken
policy's line. Needs `make web` (playground/pkg/) and chromium-driver.
"""

from __future__ import annotations

import functools
import http.server
import json
import pathlib
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAYGROUND = ROOT / "playground"
FIXTURES = ROOT / "tests/fixtures/messages"
EXPECTED = json.loads((ROOT / "crates/web/tests/corpus/expected.json").read_text())
SESSION = [
    "legacy_initialize.json",
    "legacy_notification_initialized.json",
    "legacy_tools_call_echo.json",
    "legacy_read_file_outside_workspace.json",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_url():
    if not (PLAYGROUND / "pkg/mcp_policy_web_bg.wasm").exists():
        pytest.fail("playground/pkg/ is missing: run `make web`")
    subprocess.run(["python3", str(ROOT / "tools/playground_examples.py")], check=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(PLAYGROUND))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class Browser:
    def __init__(self):
        driver = shutil.which("chromedriver")
        if not driver:
            pytest.fail("chromedriver is missing: apt-get install chromium chromium-driver (make web-test installs it)")
        self.port = free_port()
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self.call("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": shutil.which("chromium") or "chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method, data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["value"]

    def js(self, script, *args):
        return self.call("POST", f"/session/{self.session}/execute/sync", {"script": script, "args": list(args)})

    def get(self, url):
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def wait_status(self, needle, timeout=30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            status = self.js("return document.getElementById('status').textContent")
            if needle in status:
                return status
            time.sleep(0.1)
        raise AssertionError(f"status never said {needle!r}: {status!r}")

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def test_a_session_is_decided_as_the_cli_decides_it(browser, page_url):
    browser.get(page_url)
    browser.wait_status("first decision")
    # The default example (policies/default.rego), edited: a comment added.
    browser.js("const t = document.querySelector('.module textarea'); t.value = '# edited\\n' + t.value;")
    session = "[" + ",".join((FIXTURES / f).read_text() for f in SESSION) + "]"
    browser.js("document.getElementById('form').value = 'session';"
               "document.getElementById('messages').value = arguments[0];"
               "document.getElementById('decide').click();", session)
    decisions = browser.js("return [...document.querySelectorAll('#results .result > div:first-child > span')].map(s => s.textContent)")
    expected = EXPECTED["session"]
    assert decisions == [s["decision"] for s in expected["session"]] + [expected["decision"]]
    text = browser.js("return document.getElementById('results').textContent")
    for reason in expected["messages"][0]["reasons"]:
        assert reason in text
    # The rule's line moved down by the comment.
    line = int(expected["messages"][0]["rules"][0]["location"].split(":")[1])
    assert f"default.rego:{line + 1}:" in text


def test_a_broken_policy_shows_its_line(browser, page_url):
    browser.get(page_url)
    browser.wait_status("first decision")
    browser.js("document.querySelector('.module textarea').value = 'package mcp\\n\\nallow if {\\n\\tinput.mcp.method ==\\n}\\n';"
               "document.getElementById('decide').click();")
    errors = browser.js("return document.getElementById('compile').textContent")
    assert "default.rego:5:1" in errors and "error" in errors
    assert browser.js("return document.activeElement === document.querySelector('.module textarea')")
