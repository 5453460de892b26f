#!/usr/bin/env python3
"""A summary of mcp-policy audit events (schema: docs/audit.md).

Reads any mix of:

* Envoy's own log (the proxy log): every line that contains
  ``mcp-policy audit {json}`` carries one event; other lines are skipped.
  Envoy's JSON application-log format works too (the marker is then inside a
  string field of the line).
* JSON lines of events, e.g. extracted from the proxy log with
  ``grep -o 'mcp-policy audit {.*' envoy.log | cut -c18-``.
* An Envoy access log in JSON format with an ``mcp_audit`` field
  (``%FILTER_STATE(wasm.mcp_policy.audit:PLAIN)%``), which holds the events
  of one HTTP request separated by newlines.

Files ending in ``.gz`` are decompressed; ``-`` reads standard input. An event
seen twice (the same decision id, e.g. from the proxy log and the access log)
is counted once.

    tools/audit_report.py envoy.log
    tools/audit_report.py --since 24h --format json access.log
    tools/audit_report.py --since 2026-11-22T00:00:00Z --until 2026-11-23T00:00:00Z envoy.log.gz
    tools/audit_report.py --digest '{"id": 42}'

Only the Python standard library is used. Exit status: 0 when the report
was written (also when no event matched), 2 for a file that cannot be read
or an invalid option.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import decimal
import gzip
import hashlib
import io
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

MARKER = "mcp-policy audit "
KILLED_PREFIX = "session killed: "
#: Kinds of events for messages refused before any policy ran.
REJECTED_KINDS = frozenset({"rejected", "invalid"})
ANONYMOUS = "anonymous"
DEFAULT_TEXT_TOP = 10

_UTC = dt.timezone.utc
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?)?$"
)


class ReportError(Exception):
    """A problem the user must fix (unreadable file, bad option value)."""


# --------------------------------------------------------------------------- #
# Times
# --------------------------------------------------------------------------- #


def parse_rfc3339(text: str) -> dt.datetime | None:
    """An aware UTC datetime from RFC 3339 text (``2026-11-22T05:17:51.205Z``,
    ``…+01:00``); a date alone is midnight UTC, and a time without an offset
    is taken as UTC. None if the text is not such a time."""
    m = _RFC3339.match(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, offset = m.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    tz = _UTC
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        t = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                        int(second or 0), micros, tzinfo=tz)
    except ValueError:
        return None
    return t.astimezone(_UTC)


def parse_time_option(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``/``--until``: RFC 3339, or a duration before ``now``
    (``90s``, ``15m``, ``1h``, ``2d``, ``1w``)."""
    m = _RELATIVE.match(text)
    if m:
        now = now or dt.datetime.now(_UTC)
        return now - dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])
    t = parse_rfc3339(text)
    if t is None:
        raise ReportError(
            f"invalid time {text!r}: use RFC 3339 (2026-11-22T05:00:00Z) or a duration before now (30m, 1h, 7d)"
        )
    return t


def format_time(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- #
# Reading events
# --------------------------------------------------------------------------- #


def _is_event(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("decision"), str) and "decision_id" in v


def _after_marker(text: str) -> dict[str, Any] | None:
    """The event after the first ``mcp-policy audit `` in ``text``."""
    i = text.find(MARKER)
    if i < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text, i + len(MARKER))
    except ValueError:
        return None
    return value if _is_event(value) else None


def events_from_line(line: str) -> tuple[list[dict[str, Any]], int]:
    """The events a line carries, and how many it seemed to carry but could
    not be read (malformed)."""
    stripped = line.strip()
    if not stripped:
        return [], 0
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            if "decision" in obj and "decision_id" in obj:
                return ([obj], 0) if _is_event(obj) else ([], 1)
            if "mcp_audit" in obj:
                return _access_log_events(obj["mcp_audit"])
            # Envoy's JSON application log: the message is a string field
            # (a batch of audit lines is one message, a line each).
            for v in obj.values():
                if isinstance(v, str) and MARKER in v:
                    parts = [_after_marker(part) for part in v.splitlines() if MARKER in part]
                    found = [e for e in parts if e is not None]
                    return found, len(parts) - len(found)
            return [], 0
    if MARKER in stripped:
        e = _after_marker(stripped)
        return ([e], 0) if e is not None else ([], 1)
    return [], 0


def _access_log_events(value: Any) -> tuple[list[dict[str, Any]], int]:
    """The ``mcp_audit`` field: events separated by newlines; ``null``, ``""``
    or ``-`` when the filter decided nothing for the request."""
    if not isinstance(value, str) or value.strip() in ("", "-"):
        return [], 0
    out, bad = [], 0
    for part in value.split("\n"):
        part = part.strip()
        if not part:
            continue
        try:
            e = json.loads(part)
        except ValueError:
            bad += 1
            continue
        if _is_event(e):
            out.append(e)
        else:
            bad += 1
    return out, bad


def _open_text(path: str) -> io.TextIOBase:
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115


def _lines(path: str) -> Iterator[str]:
    try:
        f = _open_text(path)
    except OSError as e:
        raise ReportError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        with f:
            yield from f
    except (OSError, EOFError) as e:  # e.g. a truncated or corrupt .gz
        raise ReportError(f"cannot read {path}: {e}") from None


class Collected:
    """Events read from the inputs, with what was skipped."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.sources: list[str] = []
        self.duplicates = 0
        self.malformed = 0
        self._seen: set[str] = set()

    def add(self, e: dict[str, Any]) -> None:
        key = e.get("decision_id")
        if isinstance(key, str) and key:
            if key in self._seen:
                self.duplicates += 1
                return
            self._seen.add(key)
        self.events.append(e)


def read_events(paths: Iterable[str]) -> Collected:
    c = Collected()
    for path in paths:
        c.sources.append(path)
        for line in _lines(path):
            events, bad = events_from_line(line)
            c.malformed += bad
            for e in events:
                c.add(e)
    return c


# --------------------------------------------------------------------------- #
# The report
# --------------------------------------------------------------------------- #


def identity_of(e: dict[str, Any]) -> str:
    """The JWT subject, else the TLS peer principal, else ``anonymous``."""
    ident = e.get("identity")
    if isinstance(ident, dict):
        for key in ("subject", "principal"):
            v = ident.get(key)
            if isinstance(v, str) and v:
                return v
    return ANONYMOUS


def _reasons(e: dict[str, Any], key: str = "reasons") -> list[str]:
    v = e.get(key)
    return [str(r) for r in v] if isinstance(v, list) else []


def _ranked(counter: collections.Counter[str], key: str) -> list[dict[str, Any]]:
    return [{key: k, "count": n} for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


def rejection_category(e: dict[str, Any], reason: str) -> str:
    """Rejections carry details (line and column, header values); group them
    by what precedes the first ``: ``."""
    if e.get("kind") == "invalid":
        return "invalid JSON-RPC message"
    return reason.split(": ", 1)[0]


def select(
    events: Iterable[dict[str, Any]],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    mode: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Events in ``[since, until)`` (and of ``mode``), and how many were left out."""
    out, skipped = [], 0
    for e in events:
        if mode is not None and e.get("mode") != mode:
            skipped += 1
            continue
        if since is not None or until is not None:
            t = parse_rfc3339(str(e.get("time", "")))
            if t is None or (since is not None and t < since) or (until is not None and t >= until):
                skipped += 1
                continue
        out.append(e)
    return out, skipped


def summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The report on ``events`` as a JSON-ready dict (every ranking complete,
    highest count first)."""
    totals = {"decisions": 0, "allowed": 0, "denied": 0, "rejected": 0}
    by_mode: dict[str, dict[str, int]] = {}
    by_kind: collections.Counter[str] = collections.Counter()
    deny_identity: collections.Counter[str] = collections.Counter()
    deny_tool: collections.Counter[str] = collections.Counter()
    deny_reason: collections.Counter[str] = collections.Counter()
    talkers: collections.Counter[str] = collections.Counter()
    talkers_denied: collections.Counter[str] = collections.Counter()
    dry_run: collections.Counter[str] = collections.Counter()
    rejections: collections.Counter[str] = collections.Counter()
    rejection_example: dict[str, str] = {}
    killed: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    times: list[dt.datetime] = []
    policy_denials = 0

    for e in events:
        allowed = e.get("decision") == "allow"
        kind = str(e.get("kind", ""))
        mode = str(e.get("mode", "enforce"))
        who = identity_of(e)
        reasons = _reasons(e)
        t = parse_rfc3339(str(e.get("time", "")))
        if t is not None:
            times.append(t)

        totals["decisions"] += 1
        totals["allowed" if allowed else "denied"] += 1
        m = by_mode.setdefault(mode, {"decisions": 0, "allowed": 0, "denied": 0})
        m["decisions"] += 1
        m["allowed" if allowed else "denied"] += 1
        by_kind[kind] += 1
        talkers[who] += 1
        for r in _reasons(e, "dry_run"):
            dry_run[r] += 1

        if allowed:
            continue
        talkers_denied[who] += 1
        if kind in REJECTED_KINDS:
            totals["rejected"] += 1
            for r in reasons or [""]:
                cat = rejection_category(e, r)
                rejections[cat] += 1
                rejection_example.setdefault(cat, r)
            continue
        policy_denials += 1
        deny_identity[who] += 1
        if isinstance(e.get("tool"), str):
            deny_tool[e["tool"]] += 1
        for r in reasons:
            deny_reason[r] += 1
        kills = [r[len(KILLED_PREFIX):] for r in reasons if r.startswith(KILLED_PREFIX)]
        if kills:
            session = e.get("session_id") if isinstance(e.get("session_id"), str) else None
            # A kill without a session id is on the principal's record.
            k = killed.setdefault((session, None if session else who), {
                "session_id": session, "identities": set(), "kill_reasons": set(),
                "refused": 0, "first": None, "last": None,
            })
            k["identities"].add(who)
            k["kill_reasons"].update(kills)
            k["refused"] += 1
            if t is not None:
                k["first"] = t if k["first"] is None else min(k["first"], t)
                k["last"] = t if k["last"] is None else max(k["last"], t)

    top_talkers = [
        {"identity": who, "decisions": n, "denied": talkers_denied[who]}
        for who, n in sorted(talkers.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    killed_rows = sorted(
        ({**k, "identities": sorted(k["identities"]), "kill_reasons": sorted(k["kill_reasons"]),
          "first": format_time(k["first"]), "last": format_time(k["last"])} for k in killed.values()),
        key=lambda k: (-k["refused"], k["session_id"] or "", k["identities"]),
    )
    rejection_rows = [
        {"reason": row["reason"], "count": row["count"], "example": rejection_example[row["reason"]]}
        for row in _ranked(rejections, "reason")
    ]
    return {
        "range": {"first": format_time(min(times)) if times else None,
                  "last": format_time(max(times)) if times else None},
        "totals": {**totals, "by_mode": dict(sorted(by_mode.items())), "by_kind": dict(sorted(by_kind.items()))},
        "denials": {
            "total": policy_denials,
            "by_identity": _ranked(deny_identity, "identity"),
            "by_tool": _ranked(deny_tool, "tool"),
            "by_reason": _ranked(deny_reason, "reason"),
        },
        "top_talkers": top_talkers,
        "killed_sessions": killed_rows,
        "dry_run": _ranked(dry_run, "reason"),
        "rejections": rejection_rows,
    }


# --------------------------------------------------------------------------- #
# Text output
# --------------------------------------------------------------------------- #


def _clip(s: str, width: int = 90) -> str:
    return s if len(s) <= width else s[: width - 3] + "..."


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int]) -> list[str]:
    if not rows:
        return ["  (none)"]
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def fmt(r: list[str]) -> str:
        parts = [r[i].rjust(widths[i]) if i in numeric else r[i].ljust(widths[i]) for i in range(len(r))]
        return ("  " + "  ".join(parts)).rstrip()

    return [fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells]


def _section(title: str, lines: list[str], shown: int, total: int) -> list[str]:
    out = ["", title] + lines
    if total > shown:
        out.append(f"  ... {total - shown} more")
    return out


def render_text(report: dict[str, Any], full: dict[str, Any]) -> str:
    """``report`` may have its rankings cut short (summarize_limit); ``full`` not
    (for the "... n more" lines)."""
    meta = report["meta"]
    t = report["totals"]
    out = ["mcp-policy audit report"]
    out.append(f"  sources:  {', '.join(meta['sources'])}")
    extra = []
    if meta["duplicates"]:
        extra.append(f"{meta['duplicates']} duplicate(s) skipped")
    if meta["malformed"]:
        extra.append(f"{meta['malformed']} malformed")
    if meta["filtered_out"]:
        extra.append(f"{meta['filtered_out']} outside the selection")
    out.append(f"  events:   {meta['events_read']} read" + (f" ({'; '.join(extra)})" if extra else ""))
    sel = []
    if meta["since"]:
        sel.append(f"since {meta['since']}")
    if meta["until"]:
        sel.append(f"until {meta['until']}")
    if meta["mode"]:
        sel.append(f"mode {meta['mode']}")
    if sel:
        out.append(f"  selected: {', '.join(sel)}")
    r = report["range"]
    out.append(f"  range:    {r['first'] or '-'} .. {r['last'] or '-'}")

    out += ["", "Totals"]
    out += _table(["", "decisions", "allowed", "denied"],
                  [["all", t["decisions"], t["allowed"], t["denied"]]]
                  + [[f"mode {m}", v["decisions"], v["allowed"], v["denied"]] for m, v in t["by_mode"].items()],
                  {1, 2, 3})
    out.append(f"  denied = {report['denials']['total']} by policy + {t['rejected']} rejected before the policy")
    if "audit" in t["by_mode"]:
        out.append("  (mode audit: the policy's denials were recorded, not enforced)")
    if t["by_kind"]:
        out.append("  by kind: " + ", ".join(f"{k or '?'} {n}" for k, n in t["by_kind"].items()))

    d, fd = report["denials"], full["denials"]
    out += _section("Denials by identity",
                    _table(["count", "identity"], [[x["count"], x["identity"]] for x in d["by_identity"]], {0}),
                    len(d["by_identity"]), len(fd["by_identity"]))
    out += _section("Denials by tool",
                    _table(["count", "tool"], [[x["count"], x["tool"]] for x in d["by_tool"]], {0}),
                    len(d["by_tool"]), len(fd["by_tool"]))
    out += _section("Denials by reason",
                    _table(["count", "reason"], [[x["count"], _clip(x["reason"])] for x in d["by_reason"]], {0}),
                    len(d["by_reason"]), len(fd["by_reason"]))
    out += _section("Top talkers",
                    _table(["decisions", "denied", "identity"],
                           [[x["decisions"], x["denied"], x["identity"]] for x in report["top_talkers"]], {0, 1}),
                    len(report["top_talkers"]), len(full["top_talkers"]))
    out += _section("Killed sessions",
                    _table(["refused", "session", "identity", "kill reason", "first refused", "last refused"],
                           [[k["refused"], k["session_id"] or "(none: principal)", ", ".join(k["identities"]),
                             _clip("; ".join(k["kill_reasons"]), 50), k["first"] or "-", k["last"] or "-"]
                            for k in report["killed_sessions"]], {0}),
                    len(report["killed_sessions"]), len(full["killed_sessions"]))
    out += _section("Dry-run hits (recorded, not enforced)",
                    _table(["count", "reason"], [[x["count"], _clip(x["reason"])] for x in report["dry_run"]], {0}),
                    len(report["dry_run"]), len(full["dry_run"]))
    out += _section("Rejections (before the policy)",
                    _table(["count", "reason", "example"],
                           [[x["count"], _clip(x["reason"], 50), _clip(x["example"], 70)]
                            for x in report["rejections"]], {0}),
                    len(report["rejections"]), len(full["rejections"]))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- #
# Argument digests
# --------------------------------------------------------------------------- #


def _number(v: int | float) -> str:
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        raise ValueError("NaN and infinities are not JSON")
    # The shortest digits that round-trip, written out without an exponent,
    # and without a fractional part when it is zero (1.0 -> 1, 1e2 -> 100).
    text = format(decimal.Decimal(repr(v)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def canonical_json(v: Any) -> str:
    """The filter's canonical JSON of a value: compact, object keys sorted,
    non-ASCII unescaped, integers exact, other numbers in shortest form
    without exponent (docs/audit.md#arguments)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return _number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(canonical_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(
            json.dumps(k, ensure_ascii=False) + ":" + canonical_json(v[k]) for k in sorted(v)
        ) + "}"
    raise TypeError(f"not a JSON value: {type(v).__name__}")


def arguments_digest(arguments_json: str) -> str:
    """``arguments.digest`` for the arguments as the client sent them (JSON text)."""
    return "sha256:" + hashlib.sha256(canonical_json(json.loads(arguments_json)).encode()).hexdigest()


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


def build_report(
    paths: list[str],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """Read ``paths``, select, summarise; ``meta`` says what was read."""
    c = read_events(paths)
    selected, filtered_out = select(c.events, since, until, mode)
    meta = {
        "sources": c.sources,
        "events_read": len(c.events) + c.duplicates,
        "duplicates": c.duplicates,
        "malformed": c.malformed,
        "filtered_out": filtered_out,
        "since": format_time(since),
        "until": format_time(until),
        "mode": mode,
    }
    return {"meta": meta, **summarize(selected)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="audit_report.py",
        description="Summarise mcp-policy audit events: totals, denials by identity, tool and reason, "
                    "top talkers, killed sessions, dry-run hits and rejections (docs/audit.md).",
    )
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="Envoy log, JSON lines of events, or JSON access log with mcp_audit; "
                        "*.gz is decompressed, - is standard input")
    p.add_argument("--since", metavar="TIME", help="only events at or after TIME: RFC 3339 or a duration ago (1h, 7d)")
    p.add_argument("--until", metavar="TIME", help="only events before TIME: RFC 3339 or a duration ago")
    p.add_argument("--mode", choices=("enforce", "audit"), help="only events decided in this mode")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    p.add_argument("--top", type=int, metavar="N",
                   help=f"rows per ranking (default {DEFAULT_TEXT_TOP} for text, all for json)")
    p.add_argument("--digest", metavar="JSON",
                   help="print the arguments.digest of these tool/prompt arguments and exit")
    args = p.parse_args(argv)

    try:
        if args.digest is not None:
            try:
                print(arguments_digest(args.digest))
            except (ValueError, TypeError) as e:
                raise ReportError(f"--digest: not JSON arguments: {e}") from None
            return 0
        if not args.files:
            raise ReportError("no input: give one or more log files (or - for standard input)")
        if args.top is not None and args.top < 1:
            raise ReportError("--top must be at least 1")
        now = dt.datetime.now(_UTC)
        since = parse_time_option(args.since, now) if args.since else None
        until = parse_time_option(args.until, now) if args.until else None
        full = build_report(args.files, since, until, args.mode)
    except ReportError as e:
        print(f"audit_report.py: error: {e}", file=sys.stderr)
        return 2
    meta = full["meta"]
    if meta["malformed"]:
        print(f"audit_report.py: warning: {meta['malformed']} audit record(s) could not be read", file=sys.stderr)
    if meta["events_read"] == 0:
        print("audit_report.py: warning: no audit events found (expected lines containing "
              "'mcp-policy audit {...}', JSON lines of events, or a JSON access log with mcp_audit)",
              file=sys.stderr)
    if args.format == "json":
        report = summarize_limit(full, args.top) if args.top else full
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        top = args.top or DEFAULT_TEXT_TOP
        sys.stdout.write(render_text(summarize_limit(full, top), full))
    return 0


def summarize_limit(report: dict[str, Any], top: int) -> dict[str, Any]:
    """A copy of ``report`` with every ranking cut to ``top`` rows."""
    out = dict(report)
    out["denials"] = {k: (v[:top] if isinstance(v, list) else v) for k, v in report["denials"].items()}
    for key in ("top_talkers", "killed_sessions", "dry_run", "rejections"):
        out[key] = report[key][:top]
    return out


if __name__ == "__main__":
    sys.exit(main())
