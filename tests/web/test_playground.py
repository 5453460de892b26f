"""The playground (docs/playground.md) in headless Chromium, driven over the
W3C WebDriver protocol by Debian's chromedriver (plain HTTP: no client
library): the page loads the web build, decides a recorded session as the
CLI does (crates/web/tests/corpus/expected.json, which
crates/cli/tests/web_corpus.rs checks against the CLI), marks a broken
policy's line in the editor, decides an audit log next to its recorded
decisions, and filters a tools/list answer; the editor highlights, numbers
lines, indents with Tab and decides on Ctrl+Enter, typed as keys. Needs
`make web` (playground/pkg/) and chromium-driver.
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

    def element(self, css):
        found = self.call("POST", f"/session/{self.session}/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def keys(self, css, text):
        """Type into an element as a user would (WebDriver key codes: \ue004 Tab, \ue009 Ctrl, \ue007 Enter)."""
        self.call("POST", f"/session/{self.session}/element/{self.element(css)}/value", {"text": text})

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


def cli_eval(policy: str, session: list[str], last: str, work: pathlib.Path) -> dict:
    """`mcp-policy eval --format json --session` (the CLI, built from this
    tree) on the same policy text and recorded files the page is given."""
    subprocess.run(["cargo", "build", "-q", "-p", "mcp-policy-cli", "--bin", "mcp-policy"], cwd=ROOT,
                   check=True, timeout=900)
    (work / "default.rego").write_text(policy)
    (work / "session.json").write_text(json.dumps([json.loads((FIXTURES / f).read_text()) for f in session]))
    out = subprocess.run([str(ROOT / "target/debug/mcp-policy"), "eval", "--format", "json",
                          "--session", "session.json", "default.rego", str(FIXTURES / last)],
                         cwd=work, capture_output=True, text=True, timeout=60)
    assert out.stdout, out.stderr
    return json.loads(out.stdout)


def test_an_edited_policy_decides_a_session_as_the_cli_does(browser, page_url, tmp_path):
    """A real edit (a new deny rule) changes a decision of the session; the
    page and the CLI, given the same policy text and files, agree on every
    decision and on the reasons of the message decided last."""
    browser.get(page_url)
    browser.wait_status("first decision")
    policy = (ROOT / "policies/default.rego").read_text() + (
        '\ndeny contains "echo is paused for this test" if input.mcp.tool.name == "echo"\n')
    session = "[" + ",".join((FIXTURES / f).read_text() for f in SESSION) + "]"
    browser.js("const t = document.querySelector('.module textarea'); t.value = arguments[0];"
               "t.dispatchEvent(new Event('input'));"
               "document.getElementById('form').value = 'session';"
               "document.getElementById('messages').value = arguments[1];"
               "document.getElementById('decide').click();", policy, session)
    page = browser.js("return [...document.querySelectorAll('#results .result > div:first-child > span')].map(s => s.textContent)")
    cli = cli_eval(policy, SESSION[:-1], SESSION[-1], tmp_path)
    assert page == [s["decision"] for s in cli["session"]] + [cli["decision"]], (page, cli["session"])
    # The edit mattered: echo, allowed by the shipped policy, is now denied.
    before = EXPECTED["session"]
    assert page != [s["decision"] for s in before["session"]] + [before["decision"]]
    text = browser.js("return document.getElementById('results').textContent")
    assert "echo is paused for this test" in text
    for reason in cli["messages"][0]["reasons"]:
        assert reason in text


def test_a_broken_policy_shows_its_line(browser, page_url):
    browser.get(page_url)
    browser.wait_status("first decision")
    browser.js("document.querySelector('.module textarea').value = 'package mcp\\n\\nallow if {\\n\\tinput.mcp.method ==\\n}\\n';"
               "document.getElementById('decide').click();")
    errors = browser.js("return document.getElementById('compile').textContent")
    assert "default.rego:5:1" in errors and "error" in errors
    assert browser.js("return document.activeElement === document.querySelector('.module textarea')")
    # The line is marked in the editor: its number in the gutter (the
    # message on hover) and the line itself; the textarea says it is invalid.
    gutter = browser.js("return [...document.querySelectorAll('.module .gutter div')].map(d => [d.textContent, d.className, d.title])")
    marked = [g for g in gutter if g[1] == "error"]
    assert [g[0] for g in marked] == ["5"] and marked[0][2].startswith("5:1: ")
    assert browser.js("return document.querySelectorAll('.module .hl .l')[4].classList.contains('error')")
    assert browser.js("return document.querySelector('.module textarea').getAttribute('aria-invalid')") == "true"
    assert "default.rego:5:1" in browser.js("return document.querySelector('.module .problems').textContent")
    # Fixed: the mark goes.
    browser.js("document.querySelector('.module textarea').value = 'package mcp\\n\\ndefault allow := true\\n';"
               "document.getElementById('decide').click();")
    assert browser.js("return document.querySelectorAll('.module .gutter .error').length") == 0


def test_the_editor_highlights_numbers_lines_indents_and_decides_on_ctrl_enter(browser, page_url):
    browser.get(page_url)
    browser.wait_status("first decision")
    text = browser.js("return document.querySelector('.module textarea').value")
    assert browser.js("return document.querySelectorAll('.module .gutter div').length") == text.count("\n") + 1
    kinds = browser.js("const o = {}; for (const s of document.querySelectorAll('.module .hl span[class]:not(.l)'))"
                       " (o[s.className] ||= []).push(s.textContent); return o")
    assert {"package", "import", "default", "if", "contains"} <= set(kinds["k"])
    assert "blocked_tools" in kinds["r"] and "deny" in kinds["r"]
    assert any(c.startswith("#") for c in kinds["c"]) and '"delete_record"' in kinds["s"]
    assert "sprintf" in kinds["f"]
    # The highlighted text is the textarea's, line for line.
    assert browser.js("return document.querySelector('.module .hl').textContent.length") >= len(text) - text.count("\n")
    # Keys as a user types them: at the very start, Tab indents; then
    # Ctrl+Enter decides (the results come back).
    browser.js("const t = document.querySelector('.module textarea'); t.focus(); t.setSelectionRange(0, 0);"
               "document.getElementById('results').replaceChildren();")
    browser.keys(".module textarea", "\ue004# typed\n")
    assert browser.js("return document.querySelector('.module textarea').value").startswith("\t# typed\n# The default")
    assert browser.js("return document.querySelector('.module .hl .l .c').textContent") == "# typed"
    browser.keys(".module textarea", "\ue009\ue007")
    assert browser.js("return document.querySelectorAll('#results .result').length") >= 1


def choose_input(browser, key):
    browser.js("const s = document.getElementById('message-example'); s.value = arguments[0];"
               "s.dispatchEvent(new Event('change'));", key)


def test_an_audit_log_is_decided_next_to_its_recorded_decisions(browser, page_url):
    browser.get(page_url)
    browser.wait_status("first decision")
    key = browser.js("return document.querySelector('#message-example optgroup[label=\"audit logs\"] option').value")
    choose_input(browser, key)
    assert browser.js("return document.getElementById('form').value") == "audit"
    summary = browser.js("return document.getElementById('audit-summary').textContent")
    # 9 events (a plain log line skipped): the server's answer and the
    # rejection cannot be decided again; the default policy blocks what the
    # recorded policy let through.
    assert summary.startswith("9 audit events: 7 decided again, 2 changed, 2 not decidable"), summary
    changed = browser.js("return [...document.querySelectorAll('#results .result.changed')].map(r => r.textContent)")
    assert len(changed) == 2
    assert 'tool "delete_record" is blocked by policy' in changed[0] and "recorded allow" in changed[0]
    assert "eve@elsewhere.test" in changed[1]
    unchanged = browser.js("return [...document.querySelectorAll('#results .result:not(.changed):not(.skipped)')].map(r => r.textContent)")
    assert len(unchanged) == 5 and all("→ unchanged" in u for u in unchanged)
    assert "arguments: only the revealed ones" in unchanged[-1]
    skipped = browser.js("return [...document.querySelectorAll('#results .result.skipped')].map(r => r.textContent)")
    assert "server sent" in skipped[0] and "refused before the policy ran (rejected)" in skipped[1]
    # "show only the changed ones" hides the rest.
    browser.js("document.getElementById('only-changed').click()")
    shown = browser.js("return [...document.querySelectorAll('#results .result')].filter(r => r.offsetParent !== null).length")
    assert shown == 2


def test_a_tools_list_answer_is_filtered_for_the_caller(browser, page_url):
    browser.get(page_url)
    browser.wait_status("first decision")
    choose_input(browser, "message:tools_list.json")
    browser.js("document.getElementById('tools-example').click()")
    text = browser.js("return document.querySelector('#results .list').textContent")
    assert "hidden from this caller: delete_record" in text
    assert "shown: echo, read_file, send_email" in text
    answer = json.loads(browser.js("return document.querySelector('#results .list pre').textContent"))
    assert answer["id"] == 2 and [t["name"] for t in answer["result"]["tools"]] == ["echo", "read_file", "send_email"]
