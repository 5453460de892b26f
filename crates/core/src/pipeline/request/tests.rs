//! The request path's unit tests (sessions in `tests/sessions.rs`).
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::config::settings::Config;
use regorus::Value;

mod sessions;

fn plugin(policy: &str) -> Plugin {
    let cfg =
        serde_json::json!({"policy": {"modules": {"p.rego": policy}}, "max_body_bytes": 2048});
    Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap())
}

const POLICY: &str = r#"package mcp
default allow := false
allow if input.mcp
allow if input.http.method == "GET"
deny contains "tool forbidden" if input.mcp.tool.name == "rm"
deny contains "no pings" if input.mcp.method == "ping"
"#;

fn req(method: &str, extra: &[(&str, &str)]) -> HttpRequest {
    let mut h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"127.0.0.1".to_vec()),
    ];
    for (k, v) in extra {
        h.push((k.to_string(), v.as_bytes().to_vec()));
    }
    HttpRequest::from_headers(h)
}

fn post() -> HttpRequest {
    req("POST", &[("content-type", "application/json")])
}

#[test]
fn passthrough_paths_are_exact_and_everything_else_is_decided() {
    let cfg = serde_json::json!({"policy": {"modules": {"p.rego": POLICY}},
            "passthrough_paths": ["/token", "/register"]});
    let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
    let at = |path: &str| {
        HttpRequest::from_headers(vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"127.0.0.1".to_vec()),
            (
                "content-type".into(),
                b"application/x-www-form-urlencoded".to_vec(),
            ),
        ])
    };
    for path in ["/token", "/token?x=1", "/register"] {
        let (action, decided) = p.on_request_headers_with(&at(path), false, None);
        assert!(
            matches!(action, HeadersAction::Forward(ref f) if f.response.is_none()),
            "{path}: {action:?}"
        );
        assert!(decided.is_empty(), "{path}: not decided, not recorded");
    }
    // Any other spelling, and the MCP endpoint, are decided as usual.
    for path in ["/token/", "/TOKEN", "//token", "/tok%65n", "/mcp"] {
        let (action, _) = p.on_request_headers_with(&at(path), false, None);
        assert!(
            matches!(action, HeadersAction::Reply(ref r) if r.status == 415),
            "{path}: {action:?}"
        );
    }
    for bad in [
        serde_json::json!(["token"]),
        serde_json::json!(["/t?x"]),
        serde_json::json!("/token"),
    ] {
        let cfg = serde_json::json!({"policy": {"modules": {"p.rego": POLICY}},
                "passthrough_paths": bad});
        assert!(
            Config::from_json(cfg.to_string().as_bytes()).is_err(),
            "{bad}"
        );
    }
}

fn body_json(r: &LocalReply) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn reply(a: BodyAction) -> LocalReply {
    match a {
        BodyAction::Reply(r) => r,
        BodyAction::Forward(_) => panic!("expected a reply"),
    }
}

#[test]
fn allowed_request_is_forwarded() {
    let mut p = plugin(POLICY);
    assert_eq!(p.on_request_headers(&post(), false), HeadersAction::Inspect);
    let (a, d) = p.on_request_body(
        &post(),
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls"}}"#,
    );
    let BodyAction::Forward(f) = a else {
        panic!("forwarded")
    };
    assert!(f.body.is_none() && f.request_headers.is_empty());
    assert_eq!(f.response_headers.len(), 1);
    assert_eq!(f.response_headers[0].0, DECISION_ID_HEADER);
    assert_eq!(d[0].record.decision_id, f.response_headers[0].1);
    assert!(d[0].allowed);
}

#[test]
fn denied_request_gets_200_and_error_with_id() {
    let mut p = plugin(POLICY);
    let (a, d) = p.on_request_body(
        &post(),
        br#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"rm"}}"#,
    );
    assert!(!d[0].allowed);
    let r = reply(a);
    assert_eq!(r.status, 200);
    let j = body_json(&r);
    assert_eq!(j["id"], "abc");
    assert_eq!(j["error"]["code"], -31403);
    assert_eq!(j["error"]["message"], "Denied by policy: tool forbidden");
    assert_eq!(j["error"]["data"]["reasons"][0], "tool forbidden");
    assert!(r.log.contains("\"rm\""), "{}", r.log);
}

#[test]
fn big_ids_are_echoed_exactly() {
    let mut p = plugin(POLICY);
    let (a, _) = p.on_request_body(
        &post(),
        br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#,
    );
    let r = reply(a);
    assert!(String::from_utf8_lossy(&r.body).contains(r#""id":123456789012345678901234567890"#));
}

#[test]
fn denied_notification_gets_403() {
    let mut p = plugin("package mcp\nallow if input.mcp.kind == \"request\"\n");
    let (a, _) = p.on_request_body(
        &post(),
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    let r = reply(a);
    assert_eq!(r.status, 403);
    assert_eq!(body_json(&r)["id"], serde_json::Value::Null);
    assert!(body_json(&r)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no policy rule allows"));
}

#[test]
fn transport_requests_are_decided_by_the_policy() {
    let mut p = plugin(POLICY);
    assert!(
        matches!(p.on_request_headers(&req("GET", &[]), true), HeadersAction::Forward(ref f) if f.body.is_none())
    );
    match p.on_request_headers(&req("DELETE", &[]), true) {
        HeadersAction::Reply(r) => assert_eq!(r.status, 403),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_non_post_request_with_a_body_is_refused_not_decided_as_its_body() {
    // The policy denies a DELETE without a body and allows any message.
    let policy = "package mcp\ndefault allow := false\nallow if input.mcp\nallow if input.http.method == \"GET\"\n";
    let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let json = ("content-type", "application/json");
    for audit in [false, true] {
        let mut p = plugin(policy);
        if audit {
            p.settings.mode = Mode::Audit;
        }
        // Declared length: refused at the headers.
        for method in ["DELETE", "GET", "PUT", "PATCH"] {
            let len = ping.len().to_string();
            let (action, decided) = p.on_request_headers_with(
                &req(method, &[json, ("content-length", &len)]),
                false,
                None,
            );
            let HeadersAction::Reply(r) = action else {
                panic!("{method}: {action:?}")
            };
            assert_eq!(r.status, 400, "{method}");
            let v = body_json(&r);
            assert_eq!(v["error"]["code"], -32600);
            assert_eq!(
                    v["error"]["message"],
                    format!("a {method} request cannot carry a body: MCP messages are sent with POST; the request was not forwarded")
                );
            assert_eq!(decided.len(), 1);
            assert!(!decided[0].allowed);
        }
        // Length unknown (chunked, HTTP/2): the body decides.
        let delete = req("DELETE", &[json]);
        assert_eq!(
            p.on_request_headers_with(&delete, false, None).0,
            HeadersAction::Inspect
        );
        let (action, decided) = p.on_request_body_with(&delete, ping, None);
        let BodyAction::Reply(r) = action else {
            panic!("{action:?}")
        };
        assert_eq!(r.status, 400);
        assert!(body_json(&r)["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("a DELETE request cannot carry a body"));
        assert_eq!(decided.len(), 1);
        assert!(!decided[0].allowed);
        // Without a Content-Type, too (not 415: the body is the fault).
        let get = req("GET", &[]);
        assert_eq!(
            p.on_request_headers_with(&get, false, None).0,
            HeadersAction::Inspect
        );
        assert!(matches!(
            p.on_request_body_with(&get, b"x", None).0,
            BodyAction::Reply(ref r) if r.status == 400
        ));
        // An empty body keeps it a transport request, decided as such:
        // the DELETE is denied (403; forwarded in audit mode), the GET
        // allowed.
        let (action, decided) = p.on_request_body_with(&delete, b"", None);
        match (&action, audit) {
            (BodyAction::Reply(r), false) => assert_eq!(r.status, 403),
            (BodyAction::Forward(_), true) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(decided[0].record.kind, "transport");
        assert_eq!(decided[0].record.method, "DELETE");
        assert!(!decided[0].allowed);
        assert!(matches!(
            p.on_request_body_with(&get, b"", None).0,
            BodyAction::Forward(_)
        ));
        // Content-Length: 0 is decided at the headers.
        let zero = ("content-length", "0");
        assert!(matches!(
            p.on_request_headers_with(&req("GET", &[zero]), false, None)
                .0,
            HeadersAction::Forward(_)
        ));
        match p
            .on_request_headers_with(&req("DELETE", &[zero]), false, None)
            .0
        {
            HeadersAction::Reply(r) => assert!(!audit && r.status == 403),
            HeadersAction::Forward(_) => assert!(audit),
            other => panic!("{other:?}"),
        }
        // A POST is a message, as before.
        let (action, _) = p.on_request_body_with(&post(), ping, None);
        assert!(matches!(action, BodyAction::Forward(_)));
    }
    // hold_headers: false lets headers go before the body: a DELETE of
    // unknown length would reach the server (which acts on the headers
    // alone) before its body is checked, so it is refused at once.
    let mut p = plugin(policy);
    p.settings.hold_headers = false;
    match p.on_request_headers(&req("DELETE", &[json]), false) {
        HeadersAction::Reply(r) => {
            assert_eq!(r.status, 400);
            assert!(body_json(&r)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("hold_headers: false"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.on_request_headers(&req("GET", &[("content-length", "0")]), false),
        HeadersAction::Forward(_)
    ));
}

#[test]
fn transport_checks() {
    let mut p = plugin(POLICY);
    let status = |a: HeadersAction| match a {
        HeadersAction::Reply(r) => r.status,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        status(p.on_request_headers(&req("POST", &[("content-type", "text/plain")]), false)),
        415
    );
    assert_eq!(status(p.on_request_headers(&req("POST", &[]), false)), 415);
    assert_eq!(
        status(p.on_request_headers(
            &req(
                "POST",
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip")
                ]
            ),
            false
        )),
        415
    );
    assert_eq!(
        status(p.on_request_headers(
            &req(
                "POST",
                &[
                    ("content-type", "application/json"),
                    ("content-length", "4096")
                ]
            ),
            false
        )),
        413
    );
    assert_eq!(
        p.on_request_headers(
            &req(
                "POST",
                &[
                    ("content-type", "Application/JSON; charset=utf-8"),
                    ("content-encoding", "identity")
                ]
            ),
            false
        ),
        HeadersAction::Inspect
    );
    assert!(p.check_body_size(2049).is_some());
    assert!(p.check_body_size(2048).is_none());
}

#[test]
fn parse_errors_and_header_mismatch() {
    let mut p = plugin(POLICY);
    let r = reply(p.on_request_body(&post(), b"{nope").0);
    assert_eq!(
        (r.status, body_json(&r)["error"]["code"].as_i64()),
        (400, Some(-32700))
    );
    let r = reply(p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":5}"#).0);
    assert_eq!(
        (r.status, body_json(&r)["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
    assert_eq!(body_json(&r)["id"], 5);
    let h = req(
        "POST",
        &[
            ("content-type", "application/json"),
            ("mcp-method", "tools/list"),
        ],
    );
    let r = reply(
        p.on_request_body(
            &h,
            br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"ls"}}"#,
        )
        .0,
    );
    assert_eq!(
        (r.status, body_json(&r)["error"]["code"].as_i64()),
        (400, Some(-32020))
    );
    assert_eq!(body_json(&r)["id"], 9);
}

#[test]
fn batch_with_a_denied_element_is_not_forwarded() {
    let mut p = plugin(POLICY);
    let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls"}},
                        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm"}},
                        {"jsonrpc":"2.0","method":"notifications/initialized"},
                        {"jsonrpc":"2.0","id":3,"method":"ping"}]"#;
    let (a, decided) = p.on_request_body(&post(), body);
    assert_eq!(decided.len(), 4);
    let r = reply(a);
    assert_eq!(r.status, 200);
    let j = body_json(&r);
    let arr = j.as_array().unwrap();
    assert_eq!(arr.len(), 3, "{j}");
    assert_eq!(arr[0]["id"], 1);
    assert!(arr[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Not forwarded"));
    assert_eq!(arr[1]["id"], 2);
    assert_eq!(
        arr[1]["error"]["message"],
        "Denied by policy: tool forbidden"
    );
    assert_eq!(arr[2]["id"], 3);
    assert_eq!(arr[2]["error"]["message"], "Denied by policy: no pings");
}

const RATE_LIMITED: &str = r#"package mcp
allow := true
rate_limit := {"entries": {"principal": "p1", "tool": input.mcp.tool.name}, "cost": 2} if input.mcp.method == "tools/call"
"#;

#[test]
fn rate_limit_descriptor_becomes_request_headers() {
    let mut p = plugin(RATE_LIMITED);
    let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query"}}"#;
    let BodyAction::Forward(f) = p.on_request_body(&post(), call).0 else {
        panic!("forwarded")
    };
    assert_eq!(
        f.request_headers,
        vec![
            ("x-mcp-ratelimit-principal".to_string(), "p1".to_string()),
            ("x-mcp-ratelimit-tool".to_string(), "query".to_string()),
            ("x-mcp-ratelimit-cost".to_string(), "2".to_string()),
        ]
    );
    // A batch: one descriptor, the costs summed.
    let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"other"}},{"jsonrpc":"2.0","id":3,"method":"ping"}]"#;
    let BodyAction::Forward(f) = p.on_request_body(&post(), batch).0 else {
        panic!("forwarded")
    };
    assert!(f
        .request_headers
        .contains(&("x-mcp-ratelimit-tool".to_string(), "query".to_string())));
    assert!(f
        .request_headers
        .contains(&("x-mcp-ratelimit-cost".to_string(), "4".to_string())));
    // Without held headers it cannot be carried out: denied.
    let mut p = plugin(RATE_LIMITED);
    p.settings.hold_headers = false;
    assert!(matches!(
        p.on_request_body(&post(), call).0,
        BodyAction::Reply(_)
    ));
}

#[test]
fn client_rate_limit_headers_are_reserved() {
    let http = req(
        "POST",
        &[
            ("x-mcp-ratelimit-principal", "victim"),
            ("X-MCP-RateLimit-Cost", "1000"),
            ("x-mcp-other", "ok"),
        ],
    );
    assert_eq!(
        reserved_headers(&http),
        vec![
            "x-mcp-ratelimit-principal".to_string(),
            "X-MCP-RateLimit-Cost".to_string()
        ]
    );
}

#[test]
fn allowed_batch_is_forwarded() {
    let mut p = plugin(POLICY);
    let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
    assert!(
        matches!(p.on_request_body(&post(), body).0, BodyAction::Forward(ref f) if f.body.is_none())
    );
}

#[test]
fn batch_of_only_notifications_denied_gets_403() {
    let mut p = plugin("package mcp\nallow := false\n");
    let body = br#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
    assert_eq!(reply(p.on_request_body(&post(), body).0).status, 403);
}

const FULL: &str = r#"package mcp
import rego.v1
default allow := true
deny contains "no deletes" if input.mcp.tool.name == "delete_record"
denial := {"as": "tool_result", "message": "deleting is not allowed here; ask an operator"} if input.mcp.tool.name == "delete_record"
deny contains "no pings" if input.mcp.method == "ping"
denial := {"code": 4003, "http_status": 403} if input.mcp.method == "ping"
rewrite["limit"] := 100 if input.mcp.tool.arguments.limit > 100
request_headers["x-mcp-tool"] := input.mcp.tool.name
response_headers["x-policy"] := "full"
labels contains "query" if input.mcp.tool.name == "query"
"#;

#[test]
fn denial_as_a_tool_result() {
    let mut p = plugin(FULL);
    let r = reply(
        p.on_request_body(
            &post(),
            br#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"delete_record"}}"#,
        )
        .0,
    );
    assert_eq!(r.status, 200);
    let j = body_json(&r);
    assert_eq!(j["id"], 8);
    assert_eq!(j["result"]["isError"], true);
    assert_eq!(
        j["result"]["content"][0]["text"],
        "deleting is not allowed here; ask an operator"
    );
    assert!(r
        .headers
        .contains(&("x-policy".to_string(), "full".to_string())));
}

#[test]
fn denial_with_code_and_status() {
    let mut p = plugin(FULL);
    let r = reply(
        p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#)
            .0,
    );
    assert_eq!(r.status, 403);
    let j = body_json(&r);
    assert_eq!(
        (j["id"].as_i64(), j["error"]["code"].as_i64()),
        (Some(9), Some(4003))
    );
    assert_eq!(j["error"]["message"], "Denied by policy: no pings");
}

#[test]
fn rewrite_headers_and_labels_on_allowed_calls() {
    let mut p = plugin(FULL);
    let (a, d) = p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"query","arguments":{"limit":5000,"q":"x"}}}"#);
    let BodyAction::Forward(f) = a else {
        panic!("forwarded")
    };
    let body: serde_json::Value = serde_json::from_slice(f.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["params"]["arguments"]["limit"], 100);
    assert_eq!(body["params"]["arguments"]["q"], "x");
    assert_eq!(
        f.request_headers,
        vec![("x-mcp-tool".to_string(), "query".to_string())]
    );
    assert_eq!(
        f.response_headers[0],
        ("x-policy".to_string(), "full".to_string())
    );
    assert_eq!(f.response_headers[1].0, DECISION_ID_HEADER);
    assert_eq!(d[0].labels, vec!["query".to_string()]);
    // Within the limit: no rewrite, the body goes as it came.
    let (a, _) = p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"query","arguments":{"limit":5}}}"#);
    let BodyAction::Forward(f) = a else {
        panic!("forwarded")
    };
    assert!(f.body.is_none());
}

#[test]
fn changes_need_held_headers() {
    let cfg = serde_json::json!({"policy": {"modules": {"p.rego": FULL}}, "hold_headers": false});
    let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
    let r = reply(p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"query","arguments":{"limit":5}}}"#).0);
    assert!(body_json(&r)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("hold_headers"));
}

#[test]
fn the_arguments_digest_is_made_unless_configured_off() {
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls","arguments":{"path":"/tmp","n":1}}}"#;
    let policy = "package mcp\ndefault allow := true\nreveal contains \"path\"\n";
    let mut p = plugin(policy);
    let (_, d) = p.on_request_body(&post(), body);
    assert!(d[0]
        .record
        .arguments_digest
        .as_deref()
        .is_some_and(|s| s.starts_with("sha256:") && s.len() == 71));
    let cfg = serde_json::json!({
        "policy": {"modules": {"p.rego": policy}},
        "audit": {"arguments_digest": false}
    });
    let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
    let (_, d) = p.on_request_body(&post(), body);
    assert_eq!(d[0].record.arguments_digest, None);
    // What the policy reveals is still recorded.
    let event: serde_json::Value = serde_json::from_str(&crate::observe::audit::event(
        &d[0].record,
        0,
        "enforce",
        "sha256:rev",
        None,
    ))
    .unwrap();
    assert_eq!(
        event["arguments"],
        serde_json::json!({"revealed": {"path": "/tmp"}})
    );
}
