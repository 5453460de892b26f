//! The host calls one request costs, for the benchmark's two workloads
//! (bench/run.py: a 1 KiB `tools/call` and a 100-tool `tools/list` answer,
//! the shipped default policy, audit log on, its lines batched). `make bench` reads the figures
//! this test prints; the assertions hold the counts where they are, so a
//! change that adds host calls to the data path is seen here first.

use super::*;

const DEFAULT_POLICY: &str = include_str!("../../../../../policies/default.rego");

fn default_config() -> Vec<u8> {
    serde_json::json!({"policy": {"modules": {"default.rego": DEFAULT_POLICY}}})
        .to_string()
        .into_bytes()
}

/// bench/run.py `call_body(1024)`, near enough: a read_file call of ~1 KiB.
fn call_1k() -> String {
    let note = "lorem ipsum dolor sit amet ".repeat(30);
    serde_json::json!({
        "jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {
            "name": "read_file",
            "arguments": {"path": "/workspace/src/main.rs", "encoding": "utf-8", "note": note},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
        }
    })
    .to_string()
}

/// bench/run.py `list_result(100)`.
fn list_100() -> String {
    let tools: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            serde_json::json!({
                "name": format!("tool_{i:04}"),
                "title": format!("Tool {i}"),
                "description": format!("Does thing number {i} with a path and a limit."),
                "inputSchema": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
                    "required": ["path"]
                }
            })
        })
        .collect();
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}).to_string()
}

/// A POST as bench/run.py sends it (the 2026-07-28 headers).
fn post_as_bench(host: &Mock, body: &str, method: &str, name: Option<&str>) {
    let len = body.len().to_string();
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/mcp"),
        (":authority", "up"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
        ("content-length", &len),
    ];
    if let Some(n) = name {
        headers.push(("mcp-name", n));
    }
    host.set_map(Map::HttpRequestHeaders, &headers);
    host.set_buffer_bytes(Buffer::HttpRequestBody, body.as_bytes());
}

/// One whole exchange through the HTTP context; the host calls it made.
fn exchange(host: &Mock, root: &Root<Mock>, request: &str, answer: &str) -> Vec<String> {
    let mut http = root.create_http_context();
    let v: serde_json::Value = serde_json::from_str(request).unwrap_or_default();
    let method = v["method"].as_str().unwrap_or_default();
    post_as_bench(host, request, method, v["params"]["name"].as_str());
    http.on_http_request_headers(6, false);
    http.on_http_request_body(request.len(), true);
    host.set_map(
        Map::HttpResponseHeaders,
        &[(":status", "200"), ("content-type", "application/json")],
    );
    host.set_buffer_bytes(Buffer::HttpResponseBody, answer.as_bytes());
    http.on_http_response_headers(2, false);
    http.on_http_response_body(answer.len(), true);
    http.on_log();
    host.take_calls()
}

#[test]
fn host_calls_per_request_of_the_benchmark_workloads() {
    let (host, root) = configured(&default_config());
    let call = call_1k();
    let list_request = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let list = list_100();
    let answer = r#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}"#;
    // The first of each defines its metrics; the second is the steady state.
    exchange(&host, &root, &call, answer);
    let calls = exchange(&host, &root, &call, answer);
    exchange(&host, &root, list_request, &list);
    let listed = exchange(&host, &root, list_request, &list);
    println!(
        "host calls per request: tools_call {} tools_list_100 {}",
        calls.len(),
        listed.len()
    );
    println!("tools_call:\n  {}", brief(&calls));
    println!("tools_list_100:\n  {}", brief(&listed));
    // The audit lines wait for their batch (`audit.log_batch`): no log
    // call per decision.
    assert!(calls.len() <= 12, "{calls:#?}");
    assert!(listed.len() <= 19, "{listed:#?}");
    // The second list answer is decided from reused verdicts: nothing
    // evaluated, nothing to time (only the request's evaluation is).
    let timed = |c: &[String]| {
        c.iter()
            .filter(|c| c.starts_with("record_metric mcp_policy_eval_us"))
            .count()
    };
    assert_eq!(timed(&listed), 1, "{listed:#?}");
    assert_eq!(timed(&calls), 1, "{calls:#?}");
    assert!(!calls.iter().chain(&listed).any(|c| c.starts_with("log ")));
}

/// The calls, one a line, each cut to 120 characters.
fn brief(calls: &[String]) -> String {
    show(calls)
        .lines()
        .map(|l| l.chars().take(120).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// A JSON answer that arrives in parts is held until its end: the parts
/// before it cost their read and their removal from the stream, not a
/// clock reading; the whole answer is decided and written once, at the end.
#[test]
fn the_parts_of_a_json_answer_before_its_end_do_not_read_the_clock() {
    let (host, root) = configured(&default_config());
    let list_request = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let list = list_100();
    let (first, rest) = list.split_at(list.len() / 2);
    let mut http = root.create_http_context();
    post_as_bench(&host, list_request, "tools/list", None);
    http.on_http_request_headers(6, false);
    http.on_http_request_body(list_request.len(), true);
    host.set_map(
        Map::HttpResponseHeaders,
        &[(":status", "200"), ("content-type", "application/json")],
    );
    http.on_http_response_headers(2, false);
    host.take_calls();
    host.set_buffer_bytes(Buffer::HttpResponseBody, first.as_bytes());
    http.on_http_response_body(first.len(), false);
    let held = host.take_calls();
    assert_eq!(held.len(), 2, "{held:#?}");
    assert!(
        held[0].starts_with("get_buffer HttpResponseBody"),
        "{held:#?}"
    );
    assert!(
        held[1].starts_with("set_buffer HttpResponseBody [0, +"),
        "{held:#?}"
    );
    assert!(
        held[1].ends_with(" = "),
        "held back, not forwarded: {held:#?}"
    );
    host.set_buffer_bytes(Buffer::HttpResponseBody, rest.as_bytes());
    http.on_http_response_body(rest.len(), true);
    let end = host.take_calls();
    assert!(end.iter().any(|c| c == "get_current_time"), "{end:#?}");
    let written: Vec<&String> = end.iter().filter(|c| c.starts_with("set_buffer")).collect();
    assert_eq!(written.len(), 1, "{end:#?}");
    assert!(
        written[0].contains("\"tool_0099\""),
        "the whole answer at the end: {end:#?}"
    );
}
