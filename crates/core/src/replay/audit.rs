//! The filter's audit log read back as a session (docs/playground.md,
//! "Audit logs"): each event the filter wrote for a message a client sent
//! becomes the request it describes, as faithfully as the event allows, so
//! a new policy can decide yesterday's traffic next to what was recorded.
//!
//! Accepted, line by line and mixed (the inputs of
//! `tools/audit_report.py`): Envoy's log (the event after
//! `mcp-policy audit `, also inside Envoy's JSON log format), bare events
//! (JSON Lines), and a JSON access log whose `mcp_audit` holds the events.
//! Other lines are skipped; an event seen twice (same `decision_id`) counts
//! once.
//!
//! What an event does not hold is not invented, and each replayed request
//! says what was filled in ([`Replayed::reconstructed`]): the JSON-RPC id
//! (numbered in order), arguments (only the `revealed` ones; the digest
//! cannot be reversed), the JWT claims (only `sub`), and any other params.

use super::message::{pseudo, routing_headers, CaptureAttributes, Request};
use crate::mcp::methods;
use crate::observe::audit::LOG_PREFIX;
use serde_json::{json, Map, Value};

/// One event of the log and what it is replayed as.
#[derive(Debug)]
pub struct Replayed {
    /// The 1-based line of the log the event is on.
    pub line: usize,
    /// The event as logged.
    pub event: Map<String, Value>,
    /// The request, or why the event cannot be decided again.
    pub request: Result<Request, String>,
    /// When the event was written (ms since the epoch), the time to decide at.
    pub time_ms: Option<u64>,
    /// What the request holds that the event did not (stated for the user).
    pub reconstructed: Vec<String>,
}

impl Replayed {
    /// The recorded decision: `allow` or `deny`.
    pub fn decision(&self) -> &str {
        self.event
            .get("decision")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The events of a log, in order, each with its request. `Err`: no event
/// in the text.
pub fn read(text: &str) -> Result<Vec<Replayed>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut number = 0u64;
    for (i, line) in text.lines().enumerate() {
        for event in events_of(line) {
            let id = event.get("decision_id").and_then(Value::as_str);
            if let Some(id) = id {
                if !seen.insert(id.to_string()) {
                    continue;
                }
            }
            number += 1;
            out.push(replay(i + 1, number, event));
        }
    }
    if out.is_empty() {
        return Err("no audit event found: expected Envoy log lines with `mcp-policy audit {…}`, audit events as JSON Lines, or a JSON access log with `mcp_audit`".into());
    }
    Ok(out)
}

/// The events on one line (several in an access log's `mcp_audit`).
fn events_of(line: &str) -> Vec<Map<String, Value>> {
    let trimmed = line.trim();
    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(trimmed) {
        if o.contains_key("decision") && o.contains_key("kind") {
            return vec![o];
        }
        if let Some(Value::String(s)) = o.get("mcp_audit") {
            return s.lines().filter_map(object).collect();
        }
        // Envoy's JSON log format: the marker inside a string member (a
        // batch of audit lines is one message, a line each).
        return o
            .values()
            .filter_map(Value::as_str)
            .flat_map(str::lines)
            .filter_map(after_marker)
            .collect();
    }
    after_marker(line).into_iter().collect()
}

fn after_marker(text: &str) -> Option<Map<String, Value>> {
    let (at, _) = text.match_indices(LOG_PREFIX).find(|(at, _)| {
        text.get(at + LOG_PREFIX.len()..)
            .is_some_and(|e| e.starts_with('{'))
    })?;
    object(text.get(at + LOG_PREFIX.len()..)?)
}

fn object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text.trim()) {
        Ok(Value::Object(o)) => Some(o),
        _ => None,
    }
}

fn field<'a>(e: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    e.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn replay(line: usize, number: u64, event: Map<String, Value>) -> Replayed {
    let time_ms = field(&event, "time").and_then(parse_time);
    let mut reconstructed = Vec::new();
    let request = request_of(&event, number, &mut reconstructed);
    Replayed {
        line,
        event,
        request,
        time_ms,
        reconstructed,
    }
}

fn request_of(
    e: &Map<String, Value>,
    number: u64,
    notes: &mut Vec<String>,
) -> Result<Request, String> {
    if field(e, "direction") == Some("response") {
        return Err("a message the server sent: only what clients send is decided again".into());
    }
    let kind = field(e, "kind").unwrap_or("");
    let method = field(e, "method").unwrap_or("");
    let body = match kind {
        "request" | "notification" | "response" => Some(body_of(e, kind, method, number, notes)),
        "transport" => None,
        "rejected" | "invalid" => {
            return Err(format!(
                "refused before the policy ran ({kind}): the event holds no message to decide"
            ))
        }
        other => return Err(format!("unknown event kind {other:?}")),
    };
    if field(e, "decision_id").is_some_and(|id| id.contains('-')) {
        notes.push("an element of a batch, decided on its own".into());
    }
    let upstream = field(e, "upstream").unwrap_or("localhost");
    let http_method = if body.is_some() { "POST" } else { method };
    let mut headers = pseudo(http_method, "/mcp", upstream, "http");
    let mut add = |k: &str, v: &str| headers.push((k.to_string(), v.as_bytes().to_vec()));
    add(
        "accept",
        if http_method == "GET" {
            "text/event-stream"
        } else {
            "application/json, text/event-stream"
        },
    );
    if let Some(s) = field(e, "session_id") {
        add("mcp-session-id", s);
    }
    let version = field(e, "protocol_version");
    let modern = version.is_some_and(crate::mcp::routing::is_modern);
    // A 2026-07-28 body names its version in `_meta`, and its routing
    // headers (the version among them) are added with the body below.
    if let Some(v) = version.filter(|_| !modern || body.is_none()) {
        add("mcp-protocol-version", v);
    }
    if let Some(b) = &body {
        add("content-type", "application/json");
        add("content-length", &b.len().to_string());
        if modern {
            headers.extend(routing_headers(b));
        }
    }
    let identity = e.get("identity");
    let subject = identity
        .and_then(|i| i.get("subject"))
        .and_then(Value::as_str);
    if subject.is_some() {
        notes.push("JWT claims: only `sub` is logged".into());
    }
    Ok(Request {
        headers,
        body,
        attributes: CaptureAttributes {
            claims: subject.map(|s| json!({ "sub": s })),
            principal: identity
                .and_then(|i| i.get("principal"))
                .and_then(Value::as_str)
                .map(str::to_string),
            ..CaptureAttributes::default()
        },
        form: "audit event",
    })
}

/// The JSON-RPC body an event describes.
fn body_of(
    e: &Map<String, Value>,
    kind: &str,
    method: &str,
    number: u64,
    notes: &mut Vec<String>,
) -> Vec<u8> {
    let mut msg = Map::new();
    msg.insert("jsonrpc".into(), "2.0".into());
    if kind != "notification" {
        msg.insert("id".into(), number.into());
        notes.push(format!("id: not logged, numbered in order ({number})"));
    }
    if kind == "response" {
        msg.insert("result".into(), json!({}));
        notes.push("a client's answer: its content is not logged (result {})".into());
        return serde_json::to_vec(&Value::Object(msg)).unwrap_or_default();
    }
    msg.insert("method".into(), method.into());
    let mut params = Map::new();
    match method {
        methods::TOOLS_CALL | methods::PROMPTS_GET => {
            let name = field(
                e,
                if method == methods::TOOLS_CALL {
                    "tool"
                } else {
                    "prompt"
                },
            );
            params.insert("name".into(), name.unwrap_or("").into());
            let revealed = e.get("arguments").and_then(|a| a.get("revealed"));
            params.insert(
                "arguments".into(),
                revealed.cloned().unwrap_or_else(|| json!({})),
            );
            notes.push(match revealed {
                Some(_) => "arguments: only the revealed ones (the rest is a digest)".into(),
                None => "arguments: not logged (only a digest), sent as {}".into(),
            });
        }
        methods::RESOURCES_READ | methods::RESOURCES_SUBSCRIBE | methods::RESOURCES_UNSUBSCRIBE => {
            params.insert("uri".into(), field(e, "resource").unwrap_or("").into());
        }
        methods::INITIALIZE => {
            let version = field(e, "protocol_version").unwrap_or("2025-06-18");
            params.insert("protocolVersion".into(), version.into());
            params.insert("capabilities".into(), json!({}));
            params.insert(
                "clientInfo".into(),
                json!({"name": "audit-replay", "version": "0"}),
            );
            notes.push("initialize: capabilities and clientInfo not logged".into());
        }
        _ => notes.push("params: not logged".into()),
    }
    if let Some(v) = field(e, "protocol_version").filter(|v| crate::mcp::routing::is_modern(v)) {
        params.insert(
            "_meta".into(),
            json!({ "io.modelcontextprotocol/protocolVersion": v }),
        );
    }
    if !params.is_empty() {
        msg.insert("params".into(), Value::Object(params));
    }
    serde_json::to_vec(&Value::Object(msg)).unwrap_or_default()
}

/// `2026-11-22T05:17:51.311Z` (the event's `time`, always UTC) to
/// milliseconds since the epoch; the inverse of
/// [`crate::observe::audit::rfc3339`].
pub fn parse_time(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z')?;
    let (date, clock) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut c = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, mi, s) = (c.next()??, c.next()??, c.next()??);
    let ms = format!("{frac:0<3}").get(..3)?.parse::<u64>().ok()?;
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + ms)
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
