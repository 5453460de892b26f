"""The documentation's command-line examples, run: every fenced block in
README.md and docs/*.md whose first line is `$ mcp-policy …` is a command and
the output it prints, and must stay what the real CLI prints.

How a block is compared with the real output, line by line:
* a line that is only `…` stands for any number of lines;
* `…` inside a line stands for any text (a long hash cut short, a count that
  changes as the library grows);
* durations such as `(1.5 ms)` match any duration.

Paths in an example are relative to the repository, except examples about
made-up directories (`bad/`, `broken/`), which run in tests/fixtures/doc-examples/."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from support import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FIXTURES = REPO / "tests" / "fixtures" / "doc-examples"
FENCE = re.compile(r"^```[a-z]*\n(\$ mcp-policy [^\n]*)\n(.*?)^```", re.M | re.S)
DURATION = re.compile(r"\(\d+(\.\d+)? ms\)")


def examples() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 2
            found.append((f"{doc.relative_to(REPO)}:{line}", m.group(1)[2:], m.group(2)))
    return found


EXAMPLES = examples()


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` fits ``expected`` (a lone `…` line matches any run of lines)."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "…":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    if not actual:
        return False
    got = DURATION.sub("(N ms)", actual[0])
    want = DURATION.sub("(N ms)", head)
    pattern = re.compile(".*".join(re.escape(p) for p in want.split("…")) + r"\Z")
    return bool(pattern.match(got)) and matches(rest, actual[1:])


@pytest.fixture(scope="module")
def cli() -> Path:
    subprocess.run(["cargo", "build", "--quiet", "--bin", "mcp-policy"], cwd=REPO, check=True, timeout=900)
    binary = REPO / "target" / "debug" / "mcp-policy"
    assert binary.is_file(), binary
    return binary


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 5, EXAMPLES


@pytest.mark.parametrize("where, command, output", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_documented_output_is_what_the_cli_prints(cli: Path, where: str, command: str, output: str) -> None:
    args = shlex.split(command)[1:]
    paths = [a for a in args if not a.startswith("-")][1:]
    cwd = FIXTURES if paths and not (REPO / paths[0]).exists() else REPO
    r = subprocess.run([str(cli), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    actual = r.stdout.rstrip("\n").split("\n")
    expected = output.rstrip("\n").split("\n")
    assert matches(expected, actual), f"{where}: `{command}` printed:\n" + "\n".join(actual)


def test_the_readme_states_the_module_size(wasm_path: Path) -> None:
    m = re.search(r"The release module is currently about (\d+\.\d) MB", (REPO / "README.md").read_text(encoding="utf-8"))
    assert m, "README.md no longer states the module size"
    actual = wasm_path.stat().st_size / 1e6
    assert abs(float(m.group(1)) - actual) <= 0.2, f"README says about {m.group(1)} MB; the module is {actual:.2f} MB"
