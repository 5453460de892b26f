use super::*;
use crate::observe::audit::rfc3339;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.header_text(name)
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(r.body.as_deref().unwrap()).unwrap()
}

const DENIED: &str = r#"{"arguments":{"digest":"sha256:fe94","revealed":{"id":4}},"decision":"deny","decision_id":"2b8858ec1aab10359d382481818fd050","direction":"request","eval_us":102,"http_status":200,"identity":{"subject":"alice"},"kind":"request","labels":["write"],"method":"tools/call","mode":"enforce","policy_revision":"sha256:2a","protocol_version":"2025-06-18","reasons":["deleting records is not allowed"],"session_id":"094c","time":"2026-11-22T05:17:51.311Z","tool":"delete_record","upstream":"127.0.0.1:10000"}"#;

#[test]
fn an_envoy_log_line_becomes_the_call_it_records() {
    let log = format!(
        "[2026-11-22 05:17:51.311][16807][info][wasm] [context.cc:1151] wasm log mcp_policy: mcp-policy audit {DENIED}\n\
         [2026-11-22 05:17:51.312][16807][info][wasm] mcp-policy: denied tools/call\n"
    );
    let all = read(&log).unwrap();
    assert_eq!(all.len(), 1);
    let r = &all[0];
    assert_eq!((r.line, r.decision()), (1, "deny"));
    assert_eq!(
        r.time_ms,
        Some(parse_time("2026-11-22T05:17:51.311Z").unwrap())
    );
    let req = r.request.as_ref().unwrap();
    assert_eq!(req.form, "audit event");
    assert_eq!(header(req, ":method"), Some("POST"));
    assert_eq!(header(req, ":authority"), Some("127.0.0.1:10000"));
    assert_eq!(header(req, "mcp-session-id"), Some("094c"));
    assert_eq!(header(req, "mcp-protocol-version"), Some("2025-06-18"));
    assert_eq!(header(req, "mcp-method"), None);
    assert_eq!(
        body(req),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_record", "arguments": {"id": 4}}})
    );
    assert_eq!(req.attributes.claims, Some(json!({"sub": "alice"})));
    assert!(
        r.reconstructed
            .iter()
            .any(|n| n.contains("only the revealed")),
        "{:?}",
        r.reconstructed
    );
    assert!(r.reconstructed.iter().any(|n| n.contains("only `sub`")));
}

#[test]
fn bare_events_access_logs_and_envoy_json_logs_mix_and_duplicates_count_once() {
    let access = json!({"method": "POST", "mcp_audit": format!("{DENIED}\n{}", DENIED.replace("2b8858ec", "aaaaaaaa"))});
    let envoy_json = json!({"level": "info", "msg": format!("wasm log: mcp-policy audit {}", DENIED.replace("2b8858ec", "bbbbbbbb"))});
    let log = format!("{DENIED}\nnot an event\n{access}\n{envoy_json}\n\n");
    let all = read(&log).unwrap();
    let ids: Vec<_> = all
        .iter()
        .map(|r| field(&r.event, "decision_id").unwrap()[..8].to_string())
        .collect();
    assert_eq!(ids, ["2b8858ec", "aaaaaaaa", "bbbbbbbb"]);
    assert_eq!(all.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 3, 4]);
    // Requests are numbered in the order they are replayed.
    assert_eq!(body(all[2].request.as_ref().unwrap())["id"], 3);
    assert!(read("no events here\n")
        .unwrap_err()
        .contains("no audit event"));
}

/// Audit lines written as one batch: in Envoy's text log the first line
/// carries Envoy's prefix, the others are the lines themselves; in Envoy's
/// JSON log format the batch is one message, a line each.
#[test]
fn a_batch_of_audit_lines_reads_as_its_events() {
    let b = |id: &str| DENIED.replace("2b8858ec", id);
    let text = format!(
        "[2026-11-22 05:17:51.311][16807][info][wasm] [context.cc:1151] wasm log mcp_policy: mcp-policy audit {}\n\
         mcp-policy audit {}\n",
        b("11111111"),
        b("22222222")
    );
    let json_log = json!({"level": "info", "msg": format!("wasm log: mcp-policy audit {}\nmcp-policy audit {}", b("33333333"), b("44444444"))});
    let all = read(&format!("{text}{json_log}\n")).unwrap();
    let ids: Vec<_> = all
        .iter()
        .map(|r| field(&r.event, "decision_id").unwrap()[..8].to_string())
        .collect();
    assert_eq!(ids, ["11111111", "22222222", "33333333", "44444444"]);
}

#[test]
fn what_cannot_be_decided_again_says_why() {
    let ev = |extra: Value| {
        let mut e: Map<String, Value> = serde_json::from_str(DENIED).unwrap();
        e.remove("decision_id");
        for (k, v) in extra.as_object().unwrap() {
            e.insert(k.clone(), v.clone());
        }
        Value::Object(e).to_string()
    };
    let log = [
        ev(json!({"direction": "response", "kind": "response", "hidden": ["x"]})),
        ev(json!({"kind": "rejected", "method": ""})),
        ev(json!({"kind": "invalid", "method": ""})),
        ev(json!({"kind": "bogus"})),
    ]
    .join("\n");
    let errors: Vec<String> = read(&log)
        .unwrap()
        .into_iter()
        .map(|r| r.request.unwrap_err())
        .collect();
    assert!(errors[0].contains("server sent"), "{errors:?}");
    assert!(errors[1].contains("refused before the policy ran (rejected)"));
    assert!(errors[2].contains("(invalid)"));
    assert!(errors[3].contains("unknown event kind"));
}

#[test]
fn each_kind_is_rebuilt_from_what_the_event_names() {
    let e = |v: Value| read(&v.to_string()).unwrap().remove(0);
    let base = json!({"decision": "allow", "direction": "request", "upstream": "up"});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    // A transport request: the HTTP method, no body.
    let r = e(with(
        json!({"kind": "transport", "method": "GET", "session_id": "s", "protocol_version": "2026-07-28"}),
    ));
    let req = r.request.unwrap();
    assert!(req.body.is_none());
    assert_eq!(header(&req, ":method"), Some("GET"));
    assert_eq!(header(&req, "accept"), Some("text/event-stream"));
    assert_eq!(header(&req, "mcp-protocol-version"), Some("2026-07-28"));
    // A 2026-07-28 call: the version in _meta and the routing headers.
    let r = e(with(
        json!({"kind": "request", "method": "tools/call", "tool": "echo", "protocol_version": "2026-07-28", "arguments": {"digest": "sha256:00"}}),
    ));
    let req = r.request.unwrap();
    assert_eq!(
        body(&req)["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    assert_eq!(body(&req)["params"]["arguments"], json!({}));
    assert_eq!(header(&req, "mcp-method"), Some("tools/call"));
    assert_eq!(header(&req, "mcp-name"), Some("echo"));
    assert!(r
        .reconstructed
        .iter()
        .any(|n| n.contains("not logged (only a digest)")));
    // A notification has no id; a resource read its uri; a batch element is said to be one.
    let r = e(with(
        json!({"kind": "notification", "method": "notifications/initialized"}),
    ));
    assert_eq!(
        body(&r.request.unwrap()),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    );
    let r = e(with(
        json!({"kind": "request", "method": "resources/read", "resource": "file:///a", "decision_id": "ab-1"}),
    ));
    assert_eq!(
        body(r.request.as_ref().unwrap())["params"],
        json!({"uri": "file:///a"})
    );
    assert!(r.reconstructed.iter().any(|n| n.contains("batch")));
    // A client's answer to a server request, and an initialize.
    let r = e(with(json!({"kind": "response", "method": "response"})));
    assert_eq!(
        body(&r.request.unwrap()),
        json!({"jsonrpc": "2.0", "id": 1, "result": {}})
    );
    let r = e(with(
        json!({"kind": "request", "method": "initialize", "protocol_version": "2025-03-26"}),
    ));
    assert_eq!(
        body(&r.request.unwrap())["params"]["protocolVersion"],
        "2025-03-26"
    );
}

#[test]
fn times_read_back_what_the_filter_writes() {
    for ms in [
        0,
        1_700_000_000_123,
        1_795_000_000_999,
        951_782_400_000,
        4_102_444_800_000,
    ] {
        assert_eq!(parse_time(&rfc3339(ms)), Some(ms), "{}", rfc3339(ms));
    }
    assert_eq!(
        parse_time("2026-11-22T05:17:51Z"),
        parse_time("2026-11-22T05:17:51.000Z")
    );
    for bad in [
        "",
        "2026-11-22",
        "2026-13-01T00:00:00Z",
        "2026-11-22T05:17:51+01:00",
        "x-y-zT1:2:3Z",
        "99999999999999999-01-01T00:00:00Z",
    ] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
}
