//! The adapter against a host emulator ([`mock::Mock`]): each test drives
//! the root and HTTP contexts as Envoy would and checks the host calls they
//! make, in order. The lists are also the record of the host calls a
//! request costs (docs/performance.md).

mod mock;

use super::host::{Action, Buffer, Map};
use super::root::Root;
use mock::Mock;

const POLICY: &str = r#"package mcp
default allow := true
deny contains "rm is forbidden" if input.mcp.tool.name == "rm"
"#;

fn config(extra: serde_json::Value) -> Vec<u8> {
    let mut c = serde_json::json!({"policy": {"modules": {"main.rego": POLICY}}});
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c.to_string().into_bytes()
}

/// A root context configured with `config`; the calls of configuring are
/// taken.
fn configured(config: &[u8]) -> (Mock, Root<Mock>) {
    let host = Mock::new();
    host.set_buffer_bytes(Buffer::PluginConfiguration, config);
    let mut root = Root::new(host);
    assert!(root.on_configure(), "{:#?}", host.take_calls());
    host.take_calls();
    (host, root)
}

/// An MCP POST with `body`, as Envoy hands it over.
fn post(host: &Mock, body: &str) {
    let len = body.len().to_string();
    host.set_map(
        Map::HttpRequestHeaders,
        &[
            (":method", "POST"),
            (":path", "/mcp"),
            (":authority", "up"),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("content-length", &len),
        ],
    );
    host.set_buffer_bytes(Buffer::HttpRequestBody, body.as_bytes());
}

fn call(id: u32, tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

/// The calls, one a line, with each audit event (checked on its own)
/// shown as `<event>`.
fn show(calls: &[String]) -> String {
    calls
        .iter()
        .map(|c| match c.find(" {\"") {
            Some(i)
                if c.contains("mcp-policy audit {")
                    || c.starts_with("set_property mcp_policy.audit = {") =>
            {
                format!("{} <event>", &c[..i])
            }
            _ => c.clone(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The audit event in the `mcp_policy.audit` filter state.
fn audit_event(host: &Mock) -> serde_json::Value {
    host.with(|s| serde_json::from_slice(s.properties.get("mcp_policy.audit").unwrap()).unwrap())
}

/// The calls a request's decision makes on the request path, from the
/// body read on: the evaluation timer's two readings of the clock (the
/// audit event's time is the second), then the recorder's writes.
const DECIDED: &str = "get_buffer HttpRequestBody
get_current_time
get_current_time";

mod counts;
mod http;
mod root;
