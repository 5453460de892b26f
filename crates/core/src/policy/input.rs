//! The policy input: what a Rego policy sees as `input` for one message.
//! This is public contract; docs/input.md documents every field.
//!
//! Values are built directly as regorus values (never serialised to JSON and
//! parsed again). The `http` part is built once per HTTP request and shared
//! (reference-counted) by every message of a batch; the message's `params`
//! are the very values parsed from the body.

use crate::mcp::attributes::Attributes;
/// The request a server-to-client message answers (part of the wire model;
/// re-exported for the callers that name it here).
pub use crate::mcp::jsonrpc::Origin;
use crate::mcp::jsonrpc::{self, Kind, Message};
use crate::mcp::keys::key;
use crate::mcp::methods;
use crate::mcp::routing::Routing;
use regorus::Value;
use std::collections::BTreeMap;

/// The HTTP request a message arrived in, as the proxy saw it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub host: String,
    pub scheme: String,
    /// Every header, pseudo-headers included, names as given by the proxy
    /// (lower-case in Envoy), values as raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// What the host knows beyond headers: verified identity, TLS peer,
    /// connection, route.
    pub attributes: Attributes,
}

impl HttpRequest {
    /// Build from the proxy's header list (with `:method`, `:path`,
    /// `:authority`, `:scheme` pseudo-headers).
    pub fn from_headers(headers: Vec<(String, Vec<u8>)>) -> HttpRequest {
        let mut r = HttpRequest::default();
        for (k, v) in &headers {
            let text = || String::from_utf8_lossy(v).into_owned();
            match k.as_str() {
                ":method" => r.method = text(),
                ":path" => r.path = text(),
                ":authority" => r.host = text(),
                ":scheme" => r.scheme = text(),
                _ => {}
            }
        }
        r.headers = headers;
        r
    }

    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// `input.http`.
    pub fn to_value(&self) -> Value {
        let mut headers: BTreeMap<Value, Value> = BTreeMap::new();
        for (k, v) in &self.headers {
            if k.starts_with(':') {
                continue;
            }
            // Envoy hands names over in lower case: no copy then.
            let key = if k.bytes().any(|b| b.is_ascii_uppercase()) {
                Value::from(k.to_ascii_lowercase())
            } else {
                Value::from(k.as_str())
            };
            let val = String::from_utf8_lossy(v);
            // Repeated headers are joined as HTTP allows (RFC 9110 §5.3).
            let joined = match headers.get(&key) {
                Some(Value::String(prev)) => {
                    let sep = if key == Value::from("cookie") {
                        "; "
                    } else {
                        ", "
                    };
                    Value::from(format!("{prev}{sep}{val}"))
                }
                _ => Value::from(val.as_ref()),
            };
            headers.insert(key, joined);
        }
        obj([
            ("method", Value::from(self.method.as_str())),
            ("path", Value::from(self.path.as_str())),
            ("host", Value::from(self.host.as_str())),
            ("scheme", Value::from(self.scheme.as_str())),
            ("headers", Value::from(headers)),
        ])
    }
}

/// Where a message sits in a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchPosition {
    pub index: usize,
    pub size: usize,
}

/// The parts of `input` shared by every message of one HTTP request:
/// `http` (when the policy reads it: `with_http`), and `identity` /
/// `source` / `connection` / `xds` when known.
pub fn request_values(req: &HttpRequest, with_http: bool) -> Vec<(&'static str, Value)> {
    let mut v = Vec::with_capacity(2);
    if with_http {
        v.push(("http", req.to_value()));
    }
    v.extend(req.attributes.to_values());
    v
}

/// `input` for a message.
pub fn for_message(
    shared: &[(&'static str, Value)],
    routing: &Routing,
    msg: &Message<'_>,
    batch: Option<BatchPosition>,
) -> Value {
    for_message_with(shared, routing, msg, batch, None)
}

/// `input` for a message, with the called tool's definition as the
/// upstream listed it (`input.mcp.tool.definition`).
pub fn for_message_with(
    shared: &[(&'static str, Value)],
    routing: &Routing,
    msg: &Message<'_>,
    batch: Option<BatchPosition>,
    definition: Option<Value>,
) -> Value {
    let mut m: BTreeMap<Value, Value> = shared.iter().map(|(k, v)| (key(k), v.clone())).collect();
    let mut mcp = mcp_value(routing, msg, batch);
    if let (Some(def), Ok(o)) = (definition, mcp.as_object_mut()) {
        if let Some(Ok(tool)) = o.get_mut(&key("tool")).map(Value::as_object_mut) {
            tool.insert(key("definition"), def);
        }
    }
    m.insert(key("mcp"), mcp);
    Value::from(m)
}

/// `input.mcp.direction` of what the client sends.
pub const CLIENT_TO_SERVER: &str = "client_to_server";
/// `input.mcp.direction` of what the server sends (responses, server
/// requests and notifications on SSE streams).
pub const SERVER_TO_CLIENT: &str = "server_to_client";

/// `input` for a message the server sends to the client. A response to
/// `origin` (same id) carries the origin's method and its subject
/// (`tool`, `prompt`, `resource`…); `extra` fields are added to
/// `input.mcp` (findings), and `definition` under `input.mcp.tool`.
pub fn for_server_message(
    shared: &[(&'static str, Value)],
    routing: &Routing,
    msg: &Message<'_>,
    origin: Option<&Origin>,
    definition: Option<Value>,
    extra: Vec<(&'static str, Value)>,
) -> Value {
    let mut m: BTreeMap<Value, Value> = shared.iter().map(|(k, v)| (key(k), v.clone())).collect();
    let mut mcp = mcp_value(routing, msg, None);
    if let Ok(o) = mcp.as_object_mut() {
        o.insert(key("direction"), Value::from(SERVER_TO_CLIENT));
        if let (Kind::Response, Some(origin)) = (msg.kind, origin) {
            o.insert(key("method"), Value::from(origin.method.as_str()));
            for (k, v) in named_fields(Some(&origin.method), &origin.params) {
                o.insert(Value::from(k), v);
            }
        }
        for (k, v) in extra {
            if v != Value::Undefined {
                o.insert(Value::from(k), v);
            }
        }
        if let Some(def) = definition {
            if let Some(Ok(tool)) = o.get_mut(&key("tool")).map(Value::as_object_mut) {
                tool.insert(key("definition"), def);
            }
        }
    }
    m.insert(key("mcp"), mcp);
    Value::from(m)
}

/// `input` for deciding whether one item of a list result is shown to this
/// caller: the request that would use it (`tools/call` with the tool's
/// name and definition and no arguments, `prompts/get`, `resources/read`),
/// with `input.mcp.listing: true`.
pub fn for_listing(
    shared: &[(&'static str, Value)],
    routing: &Routing,
    origin: &Origin,
    method: &str,
    subject: (&'static str, Value),
) -> Value {
    let mut m: BTreeMap<Value, Value> = shared.iter().map(|(k, v)| (key(k), v.clone())).collect();
    let mut o: BTreeMap<Value, Value> = BTreeMap::new();
    let mut params: BTreeMap<Value, Value> = BTreeMap::new();
    if let Value::Object(s) = &subject.1 {
        for name in ["name", "uri"] {
            let k = key(name);
            if let Some(v) = s.get(&k) {
                params.insert(k, v.clone());
            }
        }
    }
    o.insert(key("kind"), key("request"));
    o.insert(key("direction"), key(CLIENT_TO_SERVER));
    o.insert(key("listing"), Value::from(true));
    o.insert(key("method"), Value::from(method));
    o.insert(key("list_method"), Value::from(origin.method.as_str()));
    o.insert(key("params"), Value::from(params));
    o.insert(key(subject.0), subject.1);
    let version =
        match origin.params[&key("_meta")][&key(jsonrpc::META_PROTOCOL_VERSION)].as_string() {
            Ok(v) => Some(v.to_string()),
            Err(_) => routing.protocol_version.clone(),
        };
    if let Some(v) = version {
        o.insert(key("protocol_version"), Value::from(v));
    }
    if let Some(s) = &routing.session_id {
        o.insert(key("session_id"), Value::from(s.as_str()));
    }
    m.insert(key("mcp"), Value::from(o));
    Value::from(m)
}

/// `input` for a request that carries no MCP message (a GET opening an SSE
/// stream, a DELETE ending a session, a CORS preflight): `input.mcp` is
/// absent.
pub fn for_transport(shared: &[(&'static str, Value)]) -> Value {
    let m: BTreeMap<Value, Value> = shared.iter().map(|(k, v)| (key(k), v.clone())).collect();
    Value::from(m)
}

fn mcp_value(routing: &Routing, m: &Message<'_>, batch: Option<BatchPosition>) -> Value {
    let mut o: BTreeMap<Value, Value> = BTreeMap::new();
    let mut put = |k: &'static str, v: Value| {
        if v != Value::Undefined {
            o.insert(key(k), v);
        }
    };
    let p = &m.params;
    put("kind", key(m.kind.as_str()));
    put("direction", key(CLIENT_TO_SERVER));
    if let Some(method) = m.method() {
        put("method", Value::from(method));
    }
    put("id", m.id.clone());
    put(
        "params",
        if *p == Value::Undefined {
            Value::new_object()
        } else {
            p.clone()
        },
    );
    if m.kind == Kind::Response {
        put("result", m.result.clone());
        put("error", m.error.clone());
    }

    // The protocol version: the body's own (2026-07-28 `_meta`, or the
    // version an initialize request asks for), else the header's.
    let version = match m.meta_protocol_version() {
        Some(v) => Some(v.to_string()),
        None => match (m.method(), p[&key("protocolVersion")].as_string()) {
            (Some("initialize"), Ok(v)) => Some(v.to_string()),
            _ => routing.protocol_version.clone(),
        },
    };
    if let Some(v) = version {
        put("protocol_version", Value::from(v));
    }
    if let Some(s) = &routing.session_id {
        put("session_id", Value::from(s.as_str()));
    }

    // Who the client says it is.
    let meta = &p[&key("_meta")];
    match m.method() {
        Some("initialize") => {
            put("client", p[&key("clientInfo")].clone());
            put("capabilities", p[&key("capabilities")].clone());
        }
        _ => {
            put("client", meta[&key(jsonrpc::META_CLIENT_INFO)].clone());
            put(
                "capabilities",
                meta[&key(jsonrpc::META_CLIENT_CAPABILITIES)].clone(),
            );
        }
    }

    // Named fields, per method.
    for (k, v) in named_fields(m.method(), p) {
        put(k, v);
    }

    // The routing headers as sent (decoded), for policies that want to see
    // what intermediaries routed on. They have been checked against the body.
    if routing.method.is_some() || routing.name.is_some() || !routing.params.is_empty() {
        let params: BTreeMap<Value, Value> = routing
            .params
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
            .collect();
        put(
            "headers",
            obj([
                ("method", opt(&routing.method)),
                ("name", opt(&routing.name)),
                ("params", Value::from(params)),
            ]),
        );
    }
    if let Some(b) = batch {
        put(
            "batch",
            obj([
                ("index", Value::from(b.index)),
                ("size", Value::from(b.size)),
            ]),
        );
    }
    Value::from(o)
}

/// The fields `input.mcp` names a request's subject by (`tool`, `prompt`,
/// `resource`, `completion`, …), per method.
fn named_fields(method: Option<&str>, p: &Value) -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&'static str, Value)> = Vec::new();
    if let Some((kind, param)) = method.and_then(methods::subject) {
        let named = (param, p[&key(param)].clone());
        let fields = if kind.has_arguments() {
            obj([named, ("arguments", or_empty(&p[&key("arguments")]))])
        } else {
            obj([named])
        };
        out.push((kind.member(), fields));
    }
    match method {
        Some("completion/complete") => {
            let r = &p[&key("ref")];
            // A completion on a prompt or resource template is about that
            // prompt or resource: expose it where policies already look.
            match r[&key("type")].as_string().map(|s| s.as_ref()) {
                Ok("ref/prompt") => out.push(("prompt", obj([("name", r[&key("name")].clone())]))),
                Ok("ref/resource") => {
                    out.push(("resource", obj([("uri", r[&key("uri")].clone())])))
                }
                _ => {}
            }
            out.push((
                "completion",
                obj([
                    ("ref", r.clone()),
                    ("argument", p[&key("argument")].clone()),
                    ("context", p[&key("context")].clone()),
                ]),
            ));
        }
        Some("logging/setLevel") => {
            out.push(("logging", obj([("level", p[&key("level")].clone())])))
        }
        Some("tasks/get" | "tasks/cancel" | "tasks/result") => {
            out.push(("task", obj([("id", p[&key("taskId")].clone())])))
        }
        Some("notifications/cancelled") => out.push((
            "cancelled",
            obj([
                ("request_id", p[&key("requestId")].clone()),
                ("reason", p[&key("reason")].clone()),
            ]),
        )),
        Some("notifications/progress") => out.push((
            "progress",
            obj([
                ("token", p[&key("progressToken")].clone()),
                ("progress", p[&key("progress")].clone()),
                ("total", p[&key("total")].clone()),
                ("message", p[&key("message")].clone()),
            ]),
        )),
        Some(m) if methods::is_paginated(m) => out.push(("cursor", p[&key("cursor")].clone())),
        _ => {}
    }
    out.retain(|(_, v)| *v != Value::Undefined);
    out
}

fn opt(s: &Option<String>) -> Value {
    match s {
        Some(s) => Value::from(s.as_str()),
        None => Value::Undefined,
    }
}

fn or_empty(v: &Value) -> Value {
    match v {
        Value::Undefined | Value::Null => Value::new_object(),
        other => other.clone(),
    }
}

/// An object from pairs; `Undefined` values are left out.
fn obj<const N: usize>(pairs: [(&'static str, Value); N]) -> Value {
    let mut m = BTreeMap::new();
    for (k, v) in pairs {
        if v != Value::Undefined {
            m.insert(key(k), v);
        }
    }
    Value::from(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::jsonrpc::{parse, Body};
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn http() -> HttpRequest {
        HttpRequest::from_headers(vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), b"/mcp?x=1".to_vec()),
            (":authority".into(), b"example.test".to_vec()),
            (":scheme".into(), b"http".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
            ("x-multi".into(), b"a".to_vec()),
            ("x-multi".into(), b"b".to_vec()),
            ("mcp-session-id".into(), b"sess-1".to_vec()),
        ])
    }

    fn input_for(body: &str) -> Value {
        let h = http();
        let routing = crate::mcp::routing::read(&h.headers).unwrap();
        let Body::Single(m) = parse(body.as_bytes()).unwrap() else {
            panic!()
        };
        for_message(&request_values(&h, true), &routing, &m, None)
    }

    #[test]
    fn http_part() {
        let v = http().to_value();
        assert_eq!(v["method"], Value::from("POST"));
        assert_eq!(v["path"], Value::from("/mcp?x=1"));
        assert_eq!(v["host"], Value::from("example.test"));
        assert_eq!(v["headers"]["x-multi"], Value::from("a, b"));
        assert_eq!(v["headers"][":path"], Value::Undefined);
    }

    #[test]
    fn tools_call() {
        let i = input_for(
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/etc/passwd"}}}"#,
        );
        let m = &i["mcp"];
        assert_eq!(m["method"], Value::from("tools/call"));
        assert_eq!(m["kind"], Value::from("request"));
        assert_eq!(m["id"], Value::from(4u64));
        assert_eq!(m["tool"]["name"], Value::from("read_file"));
        assert_eq!(m["tool"]["arguments"]["path"], Value::from("/etc/passwd"));
        assert_eq!(m["params"]["name"], Value::from("read_file"));
        assert_eq!(m["session_id"], Value::from("sess-1"));
        assert_eq!(i["http"]["method"], Value::from("POST"));
    }

    #[test]
    fn tools_call_without_arguments_gets_an_empty_object() {
        let i =
            input_for(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"now"}}"#);
        assert_eq!(i["mcp"]["tool"]["arguments"], Value::new_object());
    }

    #[test]
    fn initialize_and_modern_meta() {
        let i = input_for(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
        );
        assert_eq!(i["mcp"]["protocol_version"], Value::from("2025-11-25"));
        assert_eq!(i["mcp"]["client"]["name"], Value::from("c"));
        let i = input_for(
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet","arguments":{"who":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"m","version":"2"}}}}"#,
        );
        assert_eq!(i["mcp"]["protocol_version"], Value::from("2026-07-28"));
        assert_eq!(i["mcp"]["client"]["name"], Value::from("m"));
        assert_eq!(i["mcp"]["prompt"]["name"], Value::from("greet"));
        assert_eq!(i["mcp"]["prompt"]["arguments"]["who"], Value::from("x"));
    }

    #[test]
    fn resources_completion_and_notifications() {
        let i = input_for(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///x"}}"#,
        );
        assert_eq!(i["mcp"]["resource"]["uri"], Value::from("file:///x"));
        let i = input_for(
            r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"who","value":"a"}}}"#,
        );
        assert_eq!(i["mcp"]["prompt"]["name"], Value::from("greet"));
        assert_eq!(
            i["mcp"]["completion"]["argument"]["value"],
            Value::from("a")
        );
        let i = input_for(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"x"}}"#,
        );
        assert_eq!(i["mcp"]["kind"], Value::from("notification"));
        assert_eq!(i["mcp"]["cancelled"]["request_id"], Value::from(3u64));
        assert_eq!(i["mcp"]["id"], Value::Undefined);
        let i = input_for(r#"{"jsonrpc":"2.0","id":"srv-1","result":{"action":"accept"}}"#);
        assert_eq!(i["mcp"]["kind"], Value::from("response"));
        assert_eq!(i["mcp"]["result"]["action"], Value::from("accept"));
        assert_eq!(i["mcp"]["method"], Value::Undefined);
    }
}
