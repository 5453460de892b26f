//! The HTTP context against the emulator.

use super::*;

/// The calls of a request's headers: all of them in one call, and the
/// identity attributes. (The clock is read only when session state is
/// used: not by this policy.)
const HEADERS: &str = "get_map HttpRequestHeaders
get_property metadata
get_property connection.uri_san_peer_certificate";

#[test]
fn an_allowed_tools_call_is_forwarded() {
    let (host, root) = configured(&config(serde_json::json!({})));
    let mut http = root.create_http_context();
    let body = call(1, "echo");
    post(&host, &body);
    assert_eq!(http.on_http_request_headers(6, false), Action::Pause);
    assert_eq!(show(&host.take_calls()), HEADERS, "headers are held");
    assert_eq!(
        http.on_http_request_body(body.len(), true),
        Action::Continue
    );
    let id = "3998ac38c22ebb75203f8bf89dd6224c";
    assert_eq!(
        show(&host.take_calls()),
        format!(
            "{DECIDED}
define_metric Counter mcp_policy_decisions.method.tools_call.tool.echo.outcome.allow
increment_metric mcp_policy_decisions.method.tools_call.tool.echo.outcome.allow +1
record_metric mcp_policy_eval_us 0
set_property mcp_policy.decision = allow
set_property mcp_policy.decision_id = {id}
set_property mcp_policy.audit = <event>"
        )
    );
    let e = audit_event(&host);
    assert_eq!(e["decision"], "allow");
    assert_eq!(e["decision_id"], id);
    assert_eq!(e["tool"], "echo");
    assert_eq!(e["time"], "2026-01-01T00:00:00.000Z");
    assert_eq!(
        host.metric("mcp_policy_decisions.method.tools_call.tool.echo.outcome.allow"),
        Some(1)
    );
    // Nothing to do on the answer.
    assert_eq!(http.on_http_response_headers(2, false), Action::Continue);
    assert_eq!(http.on_http_response_body(10, true), Action::Continue);
    http.on_log();
    assert_eq!(
        show(&host.take_calls()),
        format!("set_map_value HttpResponseHeaders x-mcp-decision-id: {id}")
    );
}

#[test]
fn a_denied_tools_call_gets_a_local_reply() {
    let (host, root) = configured(&config(serde_json::json!({})));
    let mut http = root.create_http_context();
    let body = call(2, "rm");
    post(&host, &body);
    assert_eq!(http.on_http_request_headers(6, false), Action::Pause);
    host.take_calls();
    assert_eq!(http.on_http_request_body(body.len(), true), Action::Pause);
    let id = "3998ac38c22ebb75203f8bf89dd6224c";
    assert_eq!(
        show(&host.take_calls()),
        format!(
            r#"{DECIDED}
define_metric Counter mcp_policy_decisions.method.tools_call.tool.rm.outcome.deny
increment_metric mcp_policy_decisions.method.tools_call.tool.rm.outcome.deny +1
define_metric Counter mcp_policy_denials.principal.anonymous
increment_metric mcp_policy_denials.principal.anonymous +1
record_metric mcp_policy_eval_us 0
set_property mcp_policy.decision = deny
set_property mcp_policy.decision_id = {id}
set_property mcp_policy.reasons = rm is forbidden
set_property mcp_policy.audit = <event>
log Info: mcp-policy: denied tools/call "rm": rm is forbidden -> HTTP 200
send_http_response 200 [("content-type", "application/json"), ("x-mcp-decision-id", "{id}")] {{"jsonrpc":"2.0","id":2,"error":{{"code":-31403,"data":{{"reasons":["rm is forbidden"]}},"message":"Denied by policy: rm is forbidden"}}}}"#
        )
    );
    assert_eq!(audit_event(&host)["http_status"], 200);
    // The reply was sent: trailers and the rest are held.
    assert_eq!(http.on_http_request_trailers(0), Action::Pause);
    assert!(host.take_calls().is_empty());
}

/// What refusing an oversized body writes, once the refusal is made.
fn refused_too_large(id: &str, reason: &str) -> String {
    format!(
        r#"define_metric Counter mcp_policy_rejections.reason.too_large
increment_metric mcp_policy_rejections.reason.too_large +1
get_current_time
set_property mcp_policy.decision = deny
set_property mcp_policy.decision_id = {id}
set_property mcp_policy.reasons = {reason}
set_property mcp_policy.audit = <event>
log Info: mcp-policy: {reason} -> HTTP 413
send_http_response 413 [("content-type", "application/json"), ("x-mcp-decision-id", "{id}")] {{"jsonrpc":"2.0","id":null,"error":{{"code":-32600,"message":"{reason}"}}}}"#
    )
}

#[test]
fn an_oversized_body_is_refused() {
    let id = "3998ac38c22ebb75203f8bf89dd6224c";
    let reason = "request body exceeds the 64 byte limit (max_body_bytes) and was not forwarded";
    let body = call(3, &"x".repeat(100));
    // A declared content-length past the limit: refused on the headers.
    let (host, root) = configured(&config(serde_json::json!({"max_body_bytes": 64})));
    let mut http = root.create_http_context();
    post(&host, &body);
    assert_eq!(http.on_http_request_headers(6, false), Action::Pause);
    assert_eq!(
        show(&host.take_calls()),
        format!("{HEADERS}\n{}", refused_too_large(id, reason))
    );
    assert_eq!(audit_event(&host)["kind"], "rejected");
    assert_eq!(http.on_http_request_body(body.len(), true), Action::Pause);
    assert!(host.take_calls().is_empty(), "the body is not read");

    // No content-length (chunked): refused on the first chunk past the
    // limit, before the end.
    let (host, root) = configured(&config(serde_json::json!({"max_body_bytes": 64})));
    let mut http = root.create_http_context();
    post(&host, &body);
    host.with(|s| {
        if let Some(h) = s.maps.get_mut("HttpRequestHeaders") {
            h.retain(|(k, _)| k != "content-length");
        }
    });
    assert_eq!(http.on_http_request_headers(5, false), Action::Pause);
    assert_eq!(show(&host.take_calls()), HEADERS);
    assert_eq!(http.on_http_request_body(40, false), Action::Pause);
    assert!(host.take_calls().is_empty(), "buffering");
    assert_eq!(http.on_http_request_body(body.len(), false), Action::Pause);
    assert_eq!(show(&host.take_calls()), refused_too_large(id, reason));
    assert_eq!(audit_event(&host)["http_status"], 413);
    assert_eq!(http.on_http_request_body(body.len(), true), Action::Pause);
    assert!(host.take_calls().is_empty());
}

#[test]
fn a_tools_list_answer_is_filtered() {
    let (host, mut root) = configured(&config(serde_json::json!({})));
    let mut http = root.create_http_context();
    let body = r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#;
    post(&host, body);
    assert_eq!(http.on_http_request_headers(6, false), Action::Pause);
    host.take_calls();
    assert_eq!(
        http.on_http_request_body(body.len(), true),
        Action::Continue
    );
    let id = "3998ac38c22ebb75203f8bf89dd6224c";
    assert_eq!(
        show(&host.take_calls()),
        format!(
            "{DECIDED}
define_metric Counter mcp_policy_decisions.method.tools_list.tool.-.outcome.allow
increment_metric mcp_policy_decisions.method.tools_list.tool.-.outcome.allow +1
record_metric mcp_policy_eval_us 0
set_property mcp_policy.decision = allow
set_property mcp_policy.decision_id = {id}
set_property mcp_policy.audit = <event>
set_map_value HttpRequestHeaders accept-encoding: identity"
        ),
        "the answer is asked for unencoded, to be read"
    );
    let answer = r#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"rm","inputSchema":{"type":"object"}}]}}"#;
    host.set_map(
        Map::HttpResponseHeaders,
        &[(":status", "200"), ("content-type", "application/json")],
    );
    host.set_buffer_bytes(Buffer::HttpResponseBody, answer.as_bytes());
    assert_eq!(http.on_http_response_headers(2, false), Action::Continue);
    assert_eq!(
        show(&host.take_calls()),
        format!(
            "set_map_value HttpResponseHeaders x-mcp-decision-id: {id}
get_map HttpResponseHeaders
remove_map_value HttpResponseHeaders content-length"
        )
    );
    assert_eq!(
        http.on_http_response_body(answer.len(), true),
        Action::Continue
    );
    // The server's own bytes, the hidden item cut out.
    let filtered = r#"{"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}}"#;
    let calls = host.take_calls();
    assert_eq!(
        show(&calls),
        format!(
            "get_buffer HttpResponseBody
get_current_time
get_current_time
get_current_time
set_buffer HttpResponseBody [0, +{}) = {filtered}
define_metric Counter mcp_policy_decisions.method.response_tools_list.tool.-.outcome.allow
increment_metric mcp_policy_decisions.method.response_tools_list.tool.-.outcome.allow +1
record_metric mcp_policy_eval_us 0",
            answer.len()
        ),
        "the response's decision is not written to filter state"
    );
    assert_eq!(host.buffer(Buffer::HttpResponseBody), filtered.as_bytes());
    http.on_log();
    assert!(
        host.take_calls().is_empty(),
        "the stream was closed at its end"
    );
    // The audit lines wait for the next tick: one write for both events,
    // a line each, in order.
    root.on_tick();
    let calls = host.take_calls();
    let logged: Vec<&str> = calls
        .iter()
        .filter_map(|c| c.strip_prefix("log Info: "))
        .collect();
    assert_eq!(logged.len(), 1, "{calls:#?}");
    let events: Vec<serde_json::Value> = logged[0]
        .lines()
        .map(|l| serde_json::from_str(l.strip_prefix("mcp-policy audit ").unwrap()).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{calls:#?}");
    assert_eq!(events[0]["direction"], "request");
    assert_eq!(events[1]["hidden"], serde_json::json!(["rm"]));
    assert_eq!(events[1]["direction"], "response");
}

#[test]
fn the_allowed_line_is_written_only_when_envoy_logs_at_debug() {
    let host = Mock::new();
    host.with(|s| s.log_level = Some(mcp_policy_core::host::Level::Debug));
    host.set_buffer_bytes(Buffer::PluginConfiguration, &config(serde_json::json!({})));
    let mut root = Root::new(host);
    assert!(root.on_configure());
    host.take_calls();
    let mut http = root.create_http_context();
    let body = call(1, "echo");
    post(&host, &body);
    http.on_http_request_headers(6, false);
    http.on_http_request_body(body.len(), true);
    let calls = host.take_calls();
    assert!(
        calls.contains(&"log Debug: mcp-policy: allowed tools/call".to_string()),
        "{calls:#?}"
    );
    // Envoy's level is read again at each tick: back at info, no line.
    host.with(|s| s.log_level = Some(mcp_policy_core::host::Level::Info));
    root.on_tick();
    host.take_calls();
    let mut http = root.create_http_context();
    post(&host, &body);
    http.on_http_request_headers(6, false);
    http.on_http_request_body(body.len(), true);
    assert!(!host.take_calls().iter().any(|c| c.starts_with("log Debug")));
}

#[test]
fn filter_state_can_be_turned_off() {
    // (And the audit line written at once: `log_flush_ms` 0.)
    let (host, root) = configured(&config(
        serde_json::json!({"audit": {"filter_state": false, "log_flush_ms": 0}}),
    ));
    let mut http = root.create_http_context();
    let body = call(1, "rm");
    post(&host, &body);
    http.on_http_request_headers(6, false);
    host.take_calls();
    assert_eq!(http.on_http_request_body(body.len(), true), Action::Pause);
    let calls = show(&host.take_calls());
    assert!(!calls.contains("set_property"), "{calls}");
    // The decision is still counted, logged and answered.
    assert!(
        calls.contains("log Info: mcp-policy audit <event>"),
        "{calls}"
    );
    assert!(calls.contains("send_http_response 200"), "{calls}");
}
