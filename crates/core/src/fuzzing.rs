//! Entry points shared by the fuzz targets (`fuzz/`, cargo-fuzz) and the
//! seed-corpus regression test (`crates/core/tests/fuzz_corpus.rs`, stable Rust), so the
//! corpus checked into `fuzz/corpus/<target>/` runs in `make test` through
//! exactly the code the fuzzer drives.
//!
//! Each function takes arbitrary bytes, must never panic, and checks the
//! properties that matter for a policy proxy with `assert!` (a failed
//! assertion is a finding, as a crash is):
//!
//! - the request path never forwards a message the policy denied, and every
//!   local reply is bounded, valid JSON;
//! - the strict MCP parser reads the same method, name and id as a standard
//!   JSON parser with last-member-wins semantics (what the SDK servers read);
//! - the SSE parser yields the same events however the stream is chunked.
//!
//! Inputs are human-readable where possible (docs/hardening.md,
//! "Fuzzing"): a request is `name: value` header lines, a blank line, then
//! the body.
//!
//! Native builds only: nothing here reaches the wasm module. Panicking is
//! the point of these functions (a finding), hence the lint exception.
#![allow(clippy::panic)]

use crate::catalog::tools;
use crate::config::settings::Config;
use crate::mcp::attributes::{self, Attributes};
use crate::mcp::jsonrpc::{self, Body, Message};
use crate::mcp::routing::{self, Routing};
use crate::mcp::{methods, rewrite, sse};
use crate::pipeline::request::{BodyAction, HeadersAction, LocalReply, Plugin};
use crate::policy::input::{self, HttpRequest};
use crate::state::store::MemoryStore;
use once_cell::unsync::Lazy;
use regorus::Value;
use std::cell::RefCell;

/// The policy the request-path target decides with: every output a policy
/// can produce (deny, denial, labels, session state, rates, kill, rewrite,
/// request and response headers) is reachable from some input.
pub const POLICY: &str = r#"package mcp
import rego.v1

default allow := false
allow if input.mcp
allow if input.http.method in {"GET", "DELETE"}

deny contains sprintf("tool %v is blocked", [input.mcp.tool.name]) if input.mcp.tool.name in {"rm", "delete_record"}
deny contains "no pings" if input.mcp.method == "ping"
deny contains "no external send after a sensitive read" if {
    input.mcp.tool.name == "send_email"
    "sensitive" in input.session.labels
}
denial := {"as": "tool_result"} if input.mcp.tool.name == "rm"
labels contains "sensitive" if input.mcp.tool.name == "read_db"
rewrite := {"limit": 100} if {
    input.mcp.tool.name == "query"
    input.mcp.tool.arguments.limit > 100
}
request_headers := {"x-mcp-tool": input.mcp.tool.name} if is_string(input.mcp.tool.name)
response_headers := {"x-mcp-policy": "fuzz"}
kill := "runaway" if input.rate.identity.tools.hammer > 3
clear_kill if input.mcp.tool.name == "operator_clear"
"#;

/// The body limit of the request-path target (small, so the limit is hit).
pub const MAX_BODY_BYTES: usize = 65536;

/// The configuration of the request-path target: two tiny slots, so
/// eviction is exercised.
pub fn config_json() -> String {
    let mut modules = serde_json::Map::new();
    modules.insert("fuzz.rego".into(), serde_json::Value::from(POLICY));
    let mut policy = serde_json::Map::new();
    policy.insert("modules".into(), serde_json::Value::Object(modules));
    let mut sessions = serde_json::Map::new();
    sessions.insert("slots".into(), 2.into());
    sessions.insert("slot_records".into(), 2.into());
    sessions.insert("max_calls".into(), 8.into());
    let mut root = serde_json::Map::new();
    root.insert("policy".into(), serde_json::Value::Object(policy));
    root.insert("max_body_bytes".into(), MAX_BODY_BYTES.into());
    root.insert("sessions".into(), serde_json::Value::Object(sessions));
    serde_json::Value::Object(root).to_string()
}

/// Split `name: value` lines, a blank line, and the body. A name may start
/// with `:` (pseudo-headers). Lines end with `\n` or `\r\n`; without a blank
/// line everything is headers.
pub fn split_request(data: &[u8]) -> (Vec<(String, Vec<u8>)>, &[u8]) {
    let mut headers = Vec::new();
    let mut rest = data;
    loop {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..)),
            None => (rest, None),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return (headers, next.unwrap_or_default());
        }
        let from = usize::from(line.first() == Some(&b':'));
        let colon = line
            .iter()
            .skip(from)
            .position(|&b| b == b':')
            .map(|i| i + from);
        let (name, value) = match colon {
            Some(c) => (
                line.get(..c).unwrap_or_default(),
                line.get(c + 1..).unwrap_or_default(),
            ),
            None => (line, &[][..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        headers.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
        match next {
            Some(n) => rest = n,
            None => return (headers, &[]),
        }
    }
}

/// `serde_json`'s reading of a member: what a last-member-wins parser (the
/// Python SDK's `json`) sees.
fn plain_member<'v>(v: &'v serde_json::Value, path: &[&str]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key))
}

fn check_message(m: &Message<'_>, plain: &serde_json::Value) {
    let method = plain_member(plain, &["method"]).and_then(serde_json::Value::as_str);
    assert_eq!(m.method(), method, "method read differently");
    if let Some(name) = m.routing_name() {
        let key = m
            .method()
            .and_then(methods::subject)
            .map_or("uri", |(_, param)| param);
        let plain_name = plain_member(plain, &["params", key]).and_then(serde_json::Value::as_str);
        assert_eq!(Some(name), plain_name, "params.{key} read differently");
    }
    if let Some(raw) = m.id_raw {
        let ours: serde_json::Value =
            serde_json::from_str(raw.get()).unwrap_or(serde_json::Value::Null);
        assert_eq!(
            Some(&ours),
            plain_member(plain, &["id"]),
            "id read differently"
        );
    }
    // Exercise the accessors and the input built from the message.
    let _ = m.meta_protocol_version();
    let v = input::for_message(&[], &Routing::default(), m, None);
    let _ = v.to_json_str();
}

/// Target `mcp`: the strict JSON-RPC/MCP parser, checked against a plain
/// JSON parser.
pub fn mcp(data: &[u8]) {
    let parsed = jsonrpc::parse(data);
    let body = match parsed {
        Ok(body) => body,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    // Accepted by the strict parser: a standard parser must accept it too
    // (the pre-scan's nesting limit is serde_json's, batches included).
    let plain: serde_json::Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => panic!("jsonrpc::parse accepted what serde_json rejects: {e}"),
    };
    match (&body, &plain) {
        (Body::Single(m), _) => check_message(m, &plain),
        (Body::Batch(items), serde_json::Value::Array(elements)) => {
            assert_eq!(items.len(), elements.len(), "batch size read differently");
            for (item, element) in items.iter().zip(elements) {
                if let Ok(m) = item {
                    check_message(m, element);
                }
            }
        }
        (Body::Batch(_), _) => panic!("a batch that is not an array"),
    }
}

fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

/// Split `data` into chunks of pseudo-random sizes (1..=max) seeded by
/// `seed`.
pub fn chunks(data: &[u8], seed: u64, max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut state = seed ^ data.len() as u64;
    let mut rest = data;
    while !rest.is_empty() {
        let n = (lcg(&mut state) as usize % max.max(1)) + 1;
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

/// The largest SSE event the `sse` target allows.
pub const SSE_MAX_EVENT: usize = 4096;

fn sse_run(parts: &[&[u8]]) -> (Vec<sse::Event>, bool) {
    let mut p = sse::Parser::new(SSE_MAX_EVENT);
    let mut events = Vec::new();
    for part in parts {
        match p.feed(part) {
            Ok(e) => events.extend(e),
            Err(_) => {
                assert!(p.feed(b"\n\n").is_err(), "a failed parser must stay failed");
                return (events, true);
            }
        }
    }
    (events, false)
}

/// Target `sse`: the incremental SSE parser, fed whole, byte by byte and in
/// random chunks; the events must not depend on the chunking, and stay
/// bounded.
pub fn sse(data: &[u8]) {
    let (whole, whole_failed) = sse_run(&[data]);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    for (i, parts) in [bytes, chunks(data, 7, 17), chunks(data, 1, 300)]
        .iter()
        .enumerate()
    {
        let (events, failed) = sse_run(parts);
        assert_eq!(failed, whole_failed, "chunking {i} changed failure");
        if !failed {
            assert_eq!(events, whole, "chunking {i} changed the events");
        } else {
            // Events completed before the failure are a prefix.
            assert!(events.len() <= whole.len() || whole.is_empty());
        }
        for e in &events {
            assert!(e.data.len() <= 2 * SSE_MAX_EVENT + 2, "unbounded event");
        }
    }
}

/// Target `tools`: the tools/list response watcher. First line: the
/// response's content type; second: the request id as written; the rest:
/// the response body, fed in chunks.
pub fn tools_watcher(data: &[u8]) {
    let (head, body) = split_request(data);
    let content_type = head.first().map(|(n, v)| {
        let mut s = n.clone();
        if !v.is_empty() {
            s.push(':');
            s.push_str(&String::from_utf8_lossy(v));
        }
        s
    });
    let id = head
        .get(1)
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| "1".into());
    let Some(mut w) = tools::Watcher::new(&id, content_type.as_deref().unwrap_or("")) else {
        return;
    };
    let mut got = None;
    for part in chunks(body, 3, 64) {
        if let Some(t) = w.feed(part) {
            assert!(got.is_none(), "tools handed over twice");
            got = Some(t);
        }
    }
    let end = w.finish();
    assert!(
        got.is_none() || end.is_none(),
        "tools handed over twice (feed and finish)"
    );
    if let Some(t) = got.or(end) {
        assert!(t.len() <= body.len(), "more tools than bytes");
        let store = MemoryStore::default();
        tools::remember(&store, "upstream", &t, true);
        for def in t.iter().take(8) {
            if let Some(name) = def.get("name").and_then(serde_json::Value::as_str) {
                let _ = tools::definition(&store, "upstream", name);
            }
        }
    }
}

/// Target `routing`: header lines and a body; the 2026-07-28 routing
/// headers decoded and checked against the body.
pub fn routing(data: &[u8]) {
    let (headers, body) = split_request(data);
    for (name, value) in &headers {
        if let Ok(s) = routing::decode(value, name) {
            assert!(
                s.len() <= value.len(),
                "decoded value longer than its header"
            );
        }
    }
    let Ok(r) = routing::read(&headers) else {
        return;
    };
    if let Some(v) = &r.protocol_version {
        let _ = routing::is_modern(v);
    }
    if let Ok(b) = jsonrpc::parse(body) {
        let _ = routing::check(&r, &b);
    }
}

/// Target `attributes`: host-encoded attributes: a serialized
/// `google.protobuf.Struct` / `envoy.config.core.v3.Metadata`, and the
/// bool/string property encodings.
pub fn attributes(data: &[u8]) {
    let _ = attributes::decode_bool(data);
    let _ = attributes::decode_string(data);
    let mut attrs = Attributes::default();
    if let Ok(v) = attributes::decode_struct(data) {
        assert!(matches!(v, Value::Object(_)));
        let _ = v.to_json_str();
        attrs.jwt_claims = attributes::jwt_payload(&v);
    }
    for ns in ["envoy.filters.http.jwt_authn", "", "a"] {
        if let Ok(Some(v)) = attributes::decode_metadata_namespace(data, ns) {
            let _ = v.to_json_str();
            if attrs.jwt_claims.is_none() {
                attrs.jwt_claims = attributes::jwt_payload(&v);
            }
        }
    }
    let _ = attrs.principal();
    let _ = attrs.to_values();
}

/// Target `config`: the plugin configuration (JSON, with a Rego policy).
pub fn config(data: &[u8]) {
    match Config::from_json(data) {
        Ok(c) => {
            let _ = c.policy.revision();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Target `bundle`: a policy bundle as a bundle server serves it (a
/// gzipped tar, `bundle::unpack`). An input starting with `T` is a plain tar
/// (the rest), gzipped here, so the fuzzer reaches the tar and layout code
/// without having to find valid gzip. Properties: no panic; what unpacks
/// stays within the limits, names normalised module paths only, and data is
/// an object.
pub fn bundle(data: &[u8]) {
    let limits = crate::config::limits::Limits {
        max_bytes: 1 << 20,
        max_uncompressed_bytes: 1 << 20,
        max_files: 64,
    };
    let bytes = match data.split_first() {
        Some((b'T', tar)) => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = std::io::Write::write_all(&mut gz, tar);
            gz.finish().unwrap_or_default()
        }
        _ => data.to_vec(),
    };
    match crate::config::bundle::unpack(&bytes, &limits) {
        Ok(b) => {
            assert!(b.modules.len() <= limits.max_files);
            let mut total = 0u64;
            let mut last: Option<&str> = None;
            for (path, source) in &b.modules {
                assert!(
                    !path.starts_with('/')
                        && !path
                            .split('/')
                            .any(|seg| seg.is_empty() || seg == "." || seg == ".."),
                    "module path not normalised: {path:?}"
                );
                assert!(path.ends_with(".rego") && !path.ends_with("_test.rego"));
                assert!(
                    last.is_none_or(|l| l < path.as_str()),
                    "modules not sorted/unique"
                );
                last = Some(path);
                total += source.len() as u64;
            }
            assert!(total <= limits.max_uncompressed_bytes);
            assert!(b.data.is_object());
            assert!(!b.roots.is_empty());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Target `rewrite`: first line a JSON object of rewrites (argument name or
/// JSON pointer → value), the rest a message body.
pub fn rewrite(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (first, rest) = data.split_at(split);
    let body = rest.get(1..).unwrap_or_default();
    // The rewrites stand for a policy's output, not for client input: skip
    // exponents that regorus would write out in full (1e999999).
    if huge_exponent(first) {
        return;
    }
    let Ok(Value::Object(o)) = Value::from_json_str(&String::from_utf8_lossy(first)) else {
        return;
    };
    let rewrites: Vec<(String, Value)> = o
        .iter()
        .filter_map(|(k, v)| k.as_string().ok().map(|k| (k.to_string(), v.clone())))
        .collect();
    // What the rewrites may add: their keys (a JSON pointer creates one
    // object per segment) and their values as JSON (regorus writes numbers
    // out in full, so `1e300` is 301 digits: the policy's own output).
    let mut budget = 64;
    for (k, v) in &rewrites {
        let Ok(text) = v.to_json_str() else { return };
        budget += 4 * k.len() + text.len();
    }
    if budget > 1 << 20 {
        return;
    }
    if let Ok(out) = rewrite::arguments(body, &rewrites) {
        let v: serde_json::Value = match serde_json::from_slice(&out) {
            Ok(v) => v,
            Err(e) => panic!("rewrite produced invalid JSON: {e}"),
        };
        for (k, _) in rewrites.iter().filter(|(k, _)| !k.starts_with('/')) {
            assert!(
                plain_member(&v, &["params", "arguments", k]).is_some(),
                "rewritten argument {k:?} missing"
            );
        }
        assert!(
            out.len() <= body.len() + budget,
            "rewrite output unbounded: {} from {} + {}",
            out.len(),
            body.len(),
            budget
        );
    }
}

/// An exponent of four digits or more (`e1000`, `E+9999`).
fn huge_exponent(text: &[u8]) -> bool {
    text.windows(2).enumerate().any(|(i, w)| {
        matches!(w.first(), Some(b'e' | b'E')) && {
            let rest = text.get(i + 1..).unwrap_or_default();
            let rest = rest
                .strip_prefix(b"+")
                .or_else(|| rest.strip_prefix(b"-"))
                .unwrap_or(rest);
            rest.iter().take_while(|c| c.is_ascii_digit()).count() >= 4
        }
    })
}

thread_local! {
    /// The plugin the request target decides with, built on first use. A
    /// `Plugin` holds compiled policy VMs that are neither `Send` nor
    /// `Sync`, so it is per thread: `once_cell::unsync::Lazy` in a
    /// `thread_local`, mutably borrowed for each input.
    static PLUGIN: RefCell<Lazy<Plugin>> = RefCell::new(Lazy::new(|| {
        match Config::from_json(config_json().as_bytes()) {
            Ok(c) => Plugin::from(c),
            Err(e) => panic!("the fuzz configuration does not load: {e}"),
        }
    }));
}

/// A reply must be bounded and, when it has a body, JSON.
fn check_reply(r: &LocalReply, body_len: usize) {
    assert!((200..=599).contains(&r.status), "status {}", r.status);
    assert!(
        r.body.len() <= 16 * 1024 + 8 * body_len,
        "reply body of {} bytes for a {}-byte request",
        r.body.len(),
        body_len
    );
    if !r.body.is_empty() {
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&r.body) {
            panic!(
                "reply body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    for (k, v) in &r.headers {
        assert!(!k.contains(['\r', '\n']) && !v.contains(['\r', '\n']));
    }
}

/// One request through the headers and body phases.
fn request_once(p: &mut Plugin, store: &MemoryStore, now: u64, http: &HttpRequest, body: &[u8]) {
    let eos = body.is_empty();
    let (action, decided) = p.on_request_headers_with(http, eos, Some((store, now)));
    for d in &decided {
        assert!(!d.record.decision_id.is_empty());
    }
    match action {
        HeadersAction::Reply(r) => {
            check_reply(&r, body.len());
            return;
        }
        HeadersAction::Forward(_) => {
            assert!(
                decided.iter().all(|d| d.allowed),
                "a denied transport request was forwarded"
            );
            return;
        }
        HeadersAction::Inspect => {}
    }
    if let Some(r) = p.check_body_size(body.len()) {
        check_reply(&r, body.len());
        return;
    }
    let (action, decided) = p.on_request_body_with(http, body, Some((store, now)));
    assert!(!decided.is_empty(), "a body decided without a record");
    for d in &decided {
        assert!(!d.record.decision_id.is_empty());
    }
    match action {
        BodyAction::Reply(r) => {
            check_reply(&r, body.len());
            assert!(
                decided.iter().any(|d| !d.allowed),
                "a local reply although every message was allowed"
            );
        }
        BodyAction::Forward(f) => {
            assert!(
                decided.iter().all(|d| d.allowed),
                "a denied message was forwarded: {:?}",
                decided
                    .iter()
                    .map(|d| (&d.method, &d.reasons))
                    .collect::<Vec<_>>()
            );
            // A forwarded body is one the strict parser accepts.
            let sent = f.body.as_deref().unwrap_or(body);
            assert!(
                jsonrpc::parse(sent).is_ok(),
                "a forwarded body does not parse: {:?}",
                String::from_utf8_lossy(sent)
            );
            for (k, v) in f.request_headers.iter().chain(&f.response_headers) {
                assert!(!k.contains(['\r', '\n']) && !v.contains(['\r', '\n']));
            }
        }
    }
}

/// Target `request`: the whole request path (`Plugin` with [`POLICY`] and a
/// fresh `MemoryStore`): header lines and a body, decided three times in a
/// row (session history, rates and kills build up). A header
/// `x-fuzz-sub: name` becomes the verified JWT subject.
pub fn request(data: &[u8]) {
    PLUGIN.with(|cell| {
        let mut slot = cell.borrow_mut();
        let p: &mut Plugin = &mut slot;
        let (headers, body) = split_request(data);
        let sub = headers
            .iter()
            .find(|(k, _)| k == "x-fuzz-sub")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        let mut http = HttpRequest::from_headers(headers);
        if let Some(sub) = sub {
            let mut claims = std::collections::BTreeMap::new();
            claims.insert(Value::from("sub"), Value::from(sub));
            http.attributes.jwt_claims = Some(Value::from(claims));
        }
        let store = MemoryStore::default();
        for i in 0..3 {
            request_once(p, &store, 1_000_000 + i * 1000, &http, body);
        }
    });
}

/// A target's entry function.
pub type Target = fn(&[u8]);

/// Every target by name (the corpus test and `make fuzz` use these names).
pub const TARGETS: [(&str, Target); 9] = [
    ("mcp", mcp),
    ("sse", sse),
    ("tools", tools_watcher),
    ("routing", routing),
    ("attributes", attributes),
    ("config", config),
    ("rewrite", rewrite),
    ("request", request),
    ("bundle", bundle),
];
