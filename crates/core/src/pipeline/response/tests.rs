//! The response path's unit tests (listing in `tests/listing.rs`, the
//! detectors in `tests/detect.rs`).
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::config::settings::Config;
use crate::pipeline::actions::{BodyAction, HeadersAction};
use crate::policy::input::HttpRequest;
use regorus::Value;

mod detect;
mod listing;
mod splice;

fn plugin_with(policy: &str, extra: serde_json::Value) -> Plugin {
    let mut cfg = serde_json::json!({"policy": {"modules": {"p.rego": policy}}});
    if let (Some(c), serde_json::Value::Object(e)) = (cfg.as_object_mut(), extra) {
        c.extend(e);
    }
    Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap())
}

const POLICY: &str = r#"package mcp
default allow := true
deny contains "rm is forbidden" if input.mcp.tool.name == "rm"
deny contains "secret in result" if {
    input.mcp.direction == "server_to_client"
    contains(json.marshal(input.mcp.result), "SECRET")
}
deny contains "no sampling" if input.mcp.method == "sampling/createMessage"
"#;

fn post(extra: &[(&str, &str)]) -> HttpRequest {
    let mut h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"127.0.0.1".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ];
    for (k, v) in extra {
        h.push((k.to_string(), v.as_bytes().to_vec()));
    }
    HttpRequest::from_headers(h)
}

/// Forward a request through the request side; returns the watch.
fn forwarded(p: &mut Plugin, http: &HttpRequest, body: &str) -> crate::pipeline::actions::Forward {
    match p.on_request_body(http, body.as_bytes()).0 {
        BodyAction::Forward(f) => f,
        BodyAction::Reply(r) => panic!("denied: {}", String::from_utf8_lossy(&r.body)),
    }
}

fn open(f: crate::pipeline::actions::Forward, ct: &str, ce: &str) -> Box<ResponseStream> {
    match start(
        f.response.expect("inspected"),
        Some(200),
        ct,
        ce,
        4096,
        false,
    ) {
        Start::Inspect { stream, .. } => stream,
        Start::Pass => panic!("not inspected"),
    }
}

fn call(id: u32, tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

#[test]
fn json_results_are_decided_and_blocked_with_the_request_id() {
    let mut p = plugin_with(POLICY, serde_json::json!({}));
    let f = forwarded(&mut p, &post(&[]), &call(7, "echo"));
    assert!(f
        .request_headers
        .contains(&("accept-encoding".into(), "identity".into())));
    let mut s = open(f, "application/json", "");
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"the SECRET is x"}]}}"#;
    let mut out = s.feed(&mut p, &body.as_bytes()[..10], false, None);
    assert!(out.bytes.is_empty(), "held until the end");
    out = s.feed(&mut p, &body.as_bytes()[10..], true, None);
    let v: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["error"]["code"], -31403);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("secret in result"));
    assert_eq!(out.decided.len(), 1);
    let d = &out.decided[0];
    assert!(!d.allowed);
    assert!(d.record.server_to_client);
    assert_eq!(d.record.method, "tools/call");
    assert_eq!(d.record.tool.as_deref(), Some("echo"));
    // A benign result passes byte for byte.
    let f = forwarded(&mut p, &post(&[]), &call(8, "echo"));
    let mut s = open(f, "application/json; charset=utf-8", "identity");
    let body = r#"{"jsonrpc":"2.0","id":8,"result":{"content":[{"type":"text","text":"fine"}]}}"#;
    let out = s.feed(&mut p, body.as_bytes(), true, None);
    assert_eq!(out.bytes, body.as_bytes());
    assert!(out.decided[0].allowed);
}

#[test]
fn sse_events_are_decided_one_by_one_across_any_split() {
    let mut p = plugin_with(POLICY, serde_json::json!({}));
    let events = [
            ": keep-alive\n\n".to_string(),
            "event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\r\ndata: \"params\":{\"progressToken\":1,\"progress\":1}}\r\n\r\n".to_string(),
            "event: message\nid: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"sampling/createMessage\",\"params\":{}}\n\n".to_string(),
            "event: message\nid: 3\nretry: 500\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"SECRET\"}]}}\n\n".to_string(),
        ];
    let all = events.concat();
    let bytes = all.as_bytes();
    for split in (0..bytes.len()).step_by(7) {
        let f = forwarded(&mut p, &post(&[]), &call(7, "echo"));
        let mut s = open(f, "text/event-stream", "");
        let first = s.feed(&mut p, &bytes[..split], false, None);
        let second = s.feed(&mut p, &bytes[split..], true, None);
        let mut got = first.bytes.clone();
        got.extend_from_slice(&second.bytes);
        let text = String::from_utf8(got).unwrap();
        assert!(
            text.starts_with(&format!("{}{}", events[0], events[1])),
            "split {split}: {text}"
        );
        assert!(!text.contains("sampling/createMessage"), "dropped");
        // The blocked server request fails the client's request at once…
        assert!(
            text.contains("event: message\nid: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"error\":"),
            "{text}"
        );
        assert!(text.contains("no sampling"), "{text}");
        // …and the server's later answer to it is not passed on.
        assert!(!text.contains("id: 3"), "{text}");
        let decided: Vec<_> = first.decided.iter().chain(&second.decided).collect();
        assert_eq!(decided.len(), 2);
        assert!(decided[0].allowed && !decided[1].allowed);
        assert_eq!(decided[1].record.kind, "request");
        assert_eq!(decided[1].record.method, "sampling/createMessage");
    }
}

#[test]
fn sse_events_are_released_as_soon_as_decided() {
    let mut p = plugin_with(POLICY, serde_json::json!({}));
    let f = forwarded(&mut p, &post(&[]), &call(7, "echo"));
    let mut s = open(f, "text/event-stream", "");
    let e1 = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n";
    let out = s.feed(
        &mut p,
        format!("{e1}data: {{\"jsonrpc\"").as_bytes(),
        false,
        None,
    );
    assert_eq!(
        out.bytes,
        e1.as_bytes(),
        "the complete event goes, the partial one waits"
    );
}

/// The tool names of a forwarded tools/list answer.
pub(super) fn listed_names(out: &Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_answer_on_a_resumed_stream_is_decided_as_on_its_own() {
    use crate::pipeline::actions::HeadersAction;
    let mut p = plugin_with(POLICY, serde_json::json!({}));
    let store = crate::state::store::MemoryStore::default();
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let f = forwarded(&mut p, &post(&[("mcp-session-id", "S1")]), list);
    let mut s = open(f, "text/event-stream", "");
    // The server ends the POST's stream before answering: a priming
    // event only (2025-11-25 SSE polling).
    s.feed(&mut p, b"id: e1\ndata: \n\n", true, None);
    s.close(Some((&store, 10))).unwrap();
    assert_eq!(
        crate::state::resume::recall(&store, 11, "127.0.0.1", "S1").len(),
        1,
        "the unanswered tools/list is kept for the session"
    );
    // The client resumes with GET + Last-Event-ID: the answer comes there.
    let get = |extra: &[(&str, &str)]| {
        let mut h: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), b"/mcp".to_vec()),
            (":authority".into(), b"127.0.0.1".to_vec()),
            ("accept".into(), b"text/event-stream".to_vec()),
            ("mcp-session-id".into(), b"S1".to_vec()),
        ];
        h.extend(
            extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
        );
        HttpRequest::from_headers(h)
    };
    let HeadersAction::Forward(f) = p
        .on_request_headers_with(&get(&[("last-event-id", "e1")]), true, Some((&store, 20)))
        .0
    else {
        panic!("the GET is forwarded")
    };
    let mut s = open(f, "text/event-stream", "");
    let answer = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"rm","inputSchema":{"type":"object"}}]}}"#;
    let out = s.feed(
        &mut p,
        format!("id: e2\ndata: {answer}\n\n").as_bytes(),
        true,
        None,
    );
    let text = String::from_utf8(out.bytes).unwrap();
    assert!(
        text.contains("\"echo\"") && !text.contains("\"rm\""),
        "{text}"
    );
    s.close(Some((&store, 30))).unwrap();
    assert!(
        crate::state::resume::recall(&store, 31, "127.0.0.1", "S1").is_empty(),
        "a delivered answer is forgotten"
    );
    // A GET without Last-Event-ID is the standalone stream: nothing is
    // recalled for it.
    crate::state::resume::remember(&store, 40, "127.0.0.1", "S1", &s.watch.origins).unwrap();
    let HeadersAction::Forward(f) = p
        .on_request_headers_with(&get(&[]), true, Some((&store, 41)))
        .0
    else {
        panic!("the GET is forwarded")
    };
    assert!(f.response.is_none_or(|w| w.origins.is_empty()));
}

#[test]
fn a_list_on_a_resumed_stream_teaches_definitions() {
    use crate::pipeline::actions::HeadersAction;
    let policy = "package mcp\ndefault allow := true\ndeny contains \"destructive\" if input.mcp.tool.definition.annotations.destructiveHint == true\n";
    let mut p = plugin_with(policy, serde_json::json!({}));
    let store = crate::state::store::MemoryStore::default();
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
    let f = match p
        .on_request_body_with(
            &post(&[("mcp-session-id", "S2")]),
            list.as_bytes(),
            Some((&store, 1)),
        )
        .0
    {
        crate::pipeline::actions::BodyAction::Forward(f) => f,
        crate::pipeline::actions::BodyAction::Reply(r) => panic!("{:?}", r.log),
    };
    let mut s = open(f, "text/event-stream", "");
    s.feed(&mut p, b"id: e1\ndata: \n\n", true, Some((&store, 2)));
    s.close(Some((&store, 3))).unwrap();
    let get = HttpRequest::from_headers(vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"127.0.0.1".to_vec()),
        ("mcp-session-id".into(), b"S2".to_vec()),
        ("last-event-id".into(), b"e1".to_vec()),
    ]);
    let HeadersAction::Forward(f) = p.on_request_headers_with(&get, true, Some((&store, 4))).0
    else {
        panic!("the GET is forwarded")
    };
    let mut s = open(f, "text/event-stream", "");
    let answer = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"rm","inputSchema":{"type":"object"},"annotations":{"destructiveHint":true}}]}}"#;
    let out = s.feed(
        &mut p,
        format!("id: e2\ndata: {answer}\n\n").as_bytes(),
        true,
        Some((&store, 5)),
    );
    let text = String::from_utf8(out.bytes).unwrap();
    assert!(
        text.contains("\"echo\"") && !text.contains("\"rm\""),
        "{text}"
    );
    assert!(
        crate::catalog::tools::definition(&store, "127.0.0.1", "rm").is_some(),
        "the resumed list was learnt"
    );
}
#[test]
fn responses_go_through_the_structural_pre_scan() {
    // A costly number, a lone surrogate or deep nesting in a member the
    // wire model does not name: the server's message is unreadable, in a
    // JSON body and in an SSE event alike.
    let mut p = plugin_with(POLICY, serde_json::json!({}));
    for (i, extra) in [
        r#""x":0e20000000"#.to_string(),
        r#""x":{"\udfff":1}"#.to_string(),
        format!(r#""x":{}{}"#, "[".repeat(130), "]".repeat(130)),
    ]
    .iter()
    .enumerate()
    {
        let id = 20 + i as u32;
        let answer = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[]}},{extra}}}"#);
        let f = forwarded(&mut p, &post(&[]), &call(id, "echo"));
        let mut s = open(f, "application/json", "");
        let out = s.feed(&mut p, answer.as_bytes(), true, None);
        let v: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
        assert_eq!(v["id"], id, "{extra}");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreadable message"));
        let f = forwarded(&mut p, &post(&[]), &call(id, "echo"));
        let mut s = open(f, "text/event-stream", "");
        let out = s.feed(&mut p, format!("data: {answer}\n\n").as_bytes(), true, None);
        // Not passed on (an SSE event the filter cannot read is dropped).
        let text = String::from_utf8(out.bytes).unwrap();
        assert!(!text.contains("content"), "{text}");
        assert!(out.decided.iter().any(|d| d.record.kind == "rejected"));
    }
}

#[test]
fn oversized_compressed_and_unreadable_responses_fail_closed() {
    let mut p = plugin_with(POLICY, serde_json::json!({}));
    let f = forwarded(&mut p, &post(&[]), &call(5, "echo"));
    let mut s = open(f, "application/json", "");
    let big = vec![b' '; 3000];
    assert!(s.feed(&mut p, &big, false, None).bytes.is_empty());
    assert!(s.feed(&mut p, &big, false, None).bytes.is_empty());
    let out = s.feed(&mut p, b"{}", true, None);
    let v: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(v["id"], 5);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_response_bytes"));
    assert_eq!(out.decided[0].record.kind, "rejected");

    let f = forwarded(&mut p, &post(&[]), &call(6, "echo"));
    let Start::Inspect {
        stream: mut st,
        strip_encoding,
    } = start(
        f.response.unwrap(),
        Some(200),
        "text/event-stream",
        "gzip",
        4096,
        false,
    )
    else {
        panic!()
    };
    assert!(strip_encoding);
    let out = st.feed(&mut p, b"\x1f\x8b\x08garbage", false, None);
    let text = String::from_utf8(out.bytes).unwrap();
    assert!(
        text.starts_with("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":6,\"error\""),
        "{text}"
    );
    assert!(text.contains("Content-Encoding gzip"));
    assert!(st.feed(&mut p, b"more", true, None).bytes.is_empty());

    let f = forwarded(&mut p, &post(&[]), &call(9, "echo"));
    let mut s = open(f, "application/json", "");
    let out = s.feed(&mut p, b"{not json", true, None);
    let v: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(v["id"], 9);
    // Error statuses and other media types pass.
    let f = forwarded(&mut p, &post(&[]), &call(9, "echo"));
    assert!(matches!(
        start(
            f.response.clone().unwrap(),
            Some(404),
            "application/json",
            "",
            10,
            false
        ),
        Start::Pass
    ));
    assert!(matches!(
        start(f.response.unwrap(), Some(200), "text/plain", "", 10, false),
        Start::Pass
    ));
}

#[test]
fn the_get_stream_is_decided_when_the_policy_rules_on_responses() {
    let mut p = plugin_with(POLICY, serde_json::json!({}));
    let http = HttpRequest::from_headers(vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"127.0.0.1".to_vec()),
        ("accept".into(), b"text/event-stream".to_vec()),
    ]);
    let HeadersAction::Forward(f) = p.on_request_headers(&http, true) else {
        panic!()
    };
    let mut s = open(f, "text/event-stream", "");
    let ev = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sampling/createMessage\",\"params\":{}}\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
    let out = s.feed(&mut p, ev.as_bytes(), false, None);
    assert_eq!(
        out.bytes,
        b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n"
    );
    assert!(out.tools_changed);
}

#[test]
fn audit_mode_records_but_changes_nothing() {
    let mut p = plugin_with(POLICY, serde_json::json!({"mode": "audit"}));
    let f = forwarded(&mut p, &post(&[]), &call(7, "echo"));
    let mut s = open(f, "application/json", "");
    let body = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"SECRET"}]}}"#;
    let out = s.feed(&mut p, body.as_bytes(), true, None);
    assert_eq!(out.bytes, body.as_bytes());
    assert!(!out.decided[0].allowed);
    // Compressed, oversized: recorded, passed as received.
    let f = forwarded(&mut p, &post(&[]), &call(8, "echo"));
    let Start::Inspect {
        stream: mut st,
        strip_encoding,
    } = start(
        f.response.unwrap(),
        Some(200),
        "application/json",
        "gzip",
        4096,
        true,
    )
    else {
        panic!()
    };
    assert!(!strip_encoding);
    let out = st.feed(&mut p, b"\x1f\x8b", false, None);
    assert_eq!(out.bytes, b"\x1f\x8b");
    assert_eq!(out.decided[0].record.kind, "rejected");
    assert_eq!(st.feed(&mut p, b"rest", true, None).bytes, b"rest");
    let f = forwarded(&mut p, &post(&[]), &call(9, "echo"));
    let mut s = open(f, "application/json", "");
    let big = vec![b' '; 3000];
    assert!(s.feed(&mut p, &big, false, None).bytes.is_empty());
    let out = s.feed(&mut p, &big, false, None);
    assert_eq!(out.bytes.len(), 6000);
    assert_eq!(s.feed(&mut p, b"{}", true, None).bytes, b"{}");
    // SSE: every chunk goes on as received.
    let f = forwarded(&mut p, &post(&[]), &call(10, "echo"));
    let mut s = open(f, "text/event-stream", "");
    let out = s.feed(
        &mut p,
        b"data: {\"jsonrpc\":\"2.0\",\"id\":10,\"result\":{\"x\":\"SECRET\"}}\n\ndata: par",
        false,
        None,
    );
    assert!(out.bytes.ends_with(b"data: par"));
    assert!(!out.decided[0].allowed);
}
