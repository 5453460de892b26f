use super::*;
use crate::observe::audit;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn with_identity(sub: &str, session: Option<&str>) -> HttpRequest {
    let mut h = vec![("content-type", "application/json")];
    if let Some(s) = session {
        h.push(("mcp-session-id", s));
    }
    let mut r = req("POST", &h);
    r.attributes.jwt_claims = Some(Value::from_json_str(&format!(r#"{{"sub":"{sub}"}}"#)).unwrap());
    r
}

fn call_body(id: u32, tool: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
        .into_bytes()
}

fn run(
    p: &mut Plugin,
    store: &crate::state::store::MemoryStore,
    now: u64,
    http: &HttpRequest,
    body: &[u8],
) -> Decided {
    p.on_request_body_with(http, body, Some((store, now)))
        .1
        .remove(0)
}

const FLOWS: &str = r#"package mcp
import rego.v1
default allow := true
labels contains "sensitive_read" if input.mcp.tool.name == "read_db"
labels contains "external_send" if input.mcp.tool.name == "send_email"
deny contains "no external send after a sensitive read in this session" if {
    "external_send" in labels
    "sensitive_read" in input.session.labels
}
deny contains "too many get_record calls" if input.rate.identity.tools.get_record > 3
kill := "runaway agent" if input.rate.identity.tools.get_record > 5
clear_kill if input.mcp.tool.name == "operator_clear"
"#;

#[test]
fn toxic_flow_across_a_session() {
    let mut p = plugin(FLOWS);
    let store = crate::state::store::MemoryStore::default();
    let alice = with_identity("alice", Some("S1"));
    assert!(run(&mut p, &store, 1000, &alice, &call_body(1, "send_email")).allowed);
    assert!(run(&mut p, &store, 1001, &alice, &call_body(2, "read_db")).allowed);
    let d = run(&mut p, &store, 1002, &alice, &call_body(3, "send_email"));
    assert!(!d.allowed);
    assert_eq!(
        d.reasons,
        vec!["no external send after a sensitive read in this session".to_string()]
    );
    // Another session of the same person starts clean.
    let other = with_identity("alice", Some("S2"));
    assert!(run(&mut p, &store, 1003, &other, &call_body(4, "send_email")).allowed);
}

#[test]
fn sessions_are_bound_to_their_principal() {
    let mut p = plugin(FLOWS);
    let store = crate::state::store::MemoryStore::default();
    assert!(
        run(
            &mut p,
            &store,
            10,
            &with_identity("alice", Some("S9")),
            &call_body(1, "echo")
        )
        .allowed
    );
    let d = run(
        &mut p,
        &store,
        11,
        &with_identity("mallory", Some("S9")),
        &call_body(2, "echo"),
    );
    assert!(!d.allowed);
    assert!(
        d.reasons[0].contains("belongs to another principal"),
        "{:?}",
        d.reasons
    );
    // Binding holds even for a policy that never mentions sessions.
    let mut plain = plugin("package mcp\nallow := true\n");
    assert!(
        run(
            &mut plain,
            &store,
            12,
            &with_identity("bob", Some("S10")),
            &call_body(3, "echo")
        )
        .allowed
    );
    assert!(
        !run(
            &mut plain,
            &store,
            13,
            &with_identity("eve", Some("S10")),
            &call_body(4, "echo")
        )
        .allowed
    );
}

#[test]
fn binding_at_initialize_and_on_transport_requests() {
    let mut p = plugin("package mcp\nallow := true\n");
    let store = crate::state::store::MemoryStore::default();
    let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#;
    let (a, _) = p.on_request_body_with(&with_identity("alice", None), init, Some((&store, 1)));
    let BodyAction::Forward(f) = a else {
        panic!("forwarded")
    };
    let principal = f.bind_on_response.expect("bind on response");
    // The server minted S20 for alice; mallory's GET stream on it is refused.
    p.bind_session(&store, 2, "S20", &principal).unwrap();
    let mut get = req("GET", &[("mcp-session-id", "S20")]);
    get.attributes.jwt_claims = Some(Value::from_json_str(r#"{"sub":"mallory"}"#).unwrap());
    match p.on_request_headers_with(&get, true, Some((&store, 3))).0 {
        HeadersAction::Reply(r) => {
            assert_eq!(r.status, 403);
            assert!(String::from_utf8_lossy(&r.body).contains("belongs to another principal"));
        }
        other => panic!("{other:?}"),
    }
    get.attributes.jwt_claims = Some(Value::from_json_str(r#"{"sub":"alice"}"#).unwrap());
    assert!(matches!(
        p.on_request_headers_with(&get, true, Some((&store, 4))).0,
        HeadersAction::Forward(_)
    ));
    // And her first message on the session is hers.
    assert!(
        run(
            &mut p,
            &store,
            5,
            &with_identity("alice", Some("S20")),
            &call_body(1, "echo")
        )
        .allowed
    );
    assert!(
        !run(
            &mut p,
            &store,
            6,
            &with_identity("mallory", Some("S20")),
            &call_body(2, "echo")
        )
        .allowed
    );
}

#[test]
fn a_bound_session_refuses_callers_without_identity_whatever_the_policy() {
    let mut plain = plugin("package mcp\nallow := true\n");
    let store = crate::state::store::MemoryStore::default();
    assert!(
        run(
            &mut plain,
            &store,
            1,
            &with_identity("bob", Some("S30")),
            &call_body(1, "echo")
        )
        .allowed
    );
    let anon = req(
        "POST",
        &[
            ("content-type", "application/json"),
            ("mcp-session-id", "S30"),
        ],
    );
    let d = run(&mut plain, &store, 2, &anon, &call_body(2, "echo"));
    assert!(!d.allowed);
    assert!(
        d.reasons[0].contains("an unauthenticated caller"),
        "{:?}",
        d.reasons
    );
}

#[test]
fn malformed_routing_headers_on_transport_requests_fail_closed() {
    let mut p = plugin(POLICY);
    let get = req(
        "GET",
        &[
            ("mcp-session-id", "S"),
            ("mcp-method", "a"),
            ("mcp-method", "b"),
        ],
    );
    match p.on_request_headers(&get, true) {
        HeadersAction::Reply(r) => assert_eq!(r.status, 400),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flow_labels_outlive_the_history_window() {
    let cfg =
        serde_json::json!({"policy": {"modules": {"p.rego": FLOWS}}, "sessions": {"max_calls": 3}});
    let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
    let store = crate::state::store::MemoryStore::default();
    let alice = with_identity("alice", Some("S40"));
    assert!(run(&mut p, &store, 1, &alice, &call_body(1, "read_db")).allowed);
    for i in 0..10 {
        assert!(
            run(
                &mut p,
                &store,
                2 + i,
                &alice,
                &call_body(10 + i as u32, "echo")
            )
            .allowed
        );
    }
    assert!(!run(&mut p, &store, 20, &alice, &call_body(30, "send_email")).allowed);
}

#[test]
fn rates_then_kill_then_operator_clear() {
    let mut p = plugin(FLOWS);
    let store = crate::state::store::MemoryStore::default();
    let bot = with_identity("bot", None);
    let mut outcomes = Vec::new();
    for i in 0..7u32 {
        outcomes.push(
            run(
                &mut p,
                &store,
                5000 + u64::from(i),
                &bot,
                &call_body(i, "get_record"),
            )
            .allowed,
        );
    }
    assert_eq!(outcomes, [true, true, true, false, false, false, false]);
    // Killed: even an innocent call is refused, with the reason.
    let d = run(&mut p, &store, 5100, &bot, &call_body(10, "echo"));
    assert!(!d.allowed);
    assert_eq!(d.reasons, vec!["session killed: runaway agent".to_string()]);
    // The kill outlives the rate window...
    assert!(!run(&mut p, &store, 200_000, &bot, &call_body(11, "echo")).allowed);
    // ...until the operator's clear lifts it.
    assert!(
        run(
            &mut p,
            &store,
            200_001,
            &bot,
            &call_body(12, "operator_clear")
        )
        .allowed
    );
    assert!(run(&mut p, &store, 200_002, &bot, &call_body(13, "echo")).allowed);
}

#[test]
fn audit_records_and_audit_mode() {
    let policy = r#"package mcp
import rego.v1
default allow := true
deny contains "no deletes" if input.mcp.tool.name == "delete_record"
dry_run contains "would block send_email" if input.mcp.tool.name == "send_email"
reveal contains "id" if input.mcp.tool.name == "delete_record"
"#;
    let mut p = plugin(policy);
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_record","arguments":{"id":7,"secret":"x"}}}"#;
    let (a, d) = p.on_request_body(&post(), body);
    assert!(matches!(a, BodyAction::Reply(_)));
    let r = &d[0].record;
    assert_eq!(
        (r.kind.as_str(), r.tool.as_deref(), r.allowed),
        ("request", Some("delete_record"), false)
    );
    assert_eq!(r.arguments_revealed.as_deref(), Some(r#"{"id":7}"#));
    assert!(r
        .arguments_digest
        .as_deref()
        .unwrap()
        .starts_with("sha256:"));
    let e: serde_json::Value =
        serde_json::from_str(&audit::event(r, 0, "enforce", p.policy.revision(), None)).unwrap();
    assert!(e["arguments"]
        .get("revealed")
        .unwrap()
        .get("secret")
        .is_none());
    // Per-rule dry run: recorded, not enforced.
    let (a, d) = p.on_request_body(
        &post(),
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"send_email"}}"#,
    );
    assert!(matches!(a, BodyAction::Forward(_)));
    assert_eq!(
        d[0].record.dry_run,
        vec!["would block send_email".to_string()]
    );
    // Audit mode: decided and recorded as a denial, forwarded unchanged.
    let cfg = serde_json::json!({"policy": {"modules": {"p.rego": policy}}, "mode": "audit"});
    let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
    let (a, d) = p.on_request_body(&post(), body);
    let BodyAction::Forward(f) = a else {
        panic!("audit mode forwards")
    };
    assert!(f.body.is_none());
    assert!(!d[0].allowed && d[0].reasons == vec!["no deletes".to_string()]);
    // Protocol rejections still apply in audit mode, and are recorded.
    let (a, d) = p.on_request_body(&post(), b"{nope");
    assert!(matches!(a, BodyAction::Reply(_)));
    assert_eq!(d[0].record.kind, "rejected");
    // So does an invalid element in a batch.
    let (a, _) = p.on_request_body(
        &post(),
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2}]"#,
    );
    assert!(matches!(a, BodyAction::Reply(_)));
    // And session binding: a security check, not a policy decision.
    let store = crate::state::store::MemoryStore::default();
    assert!(
        run(
            &mut p,
            &store,
            1,
            &with_identity("ann", Some("S50")),
            &call_body(1, "echo")
        )
        .allowed
    );
    let (a, d) = p.on_request_body_with(
        &with_identity("eve", Some("S50")),
        &call_body(2, "echo"),
        Some((&store, 2)),
    );
    assert!(matches!(a, BodyAction::Reply(_)));
    assert!(d[0].core);
}

#[test]
fn policy_errors_deny() {
    let mut p = plugin("package mcp\nallow if 1 / input.mcp.params.zero == 1\n");
    let r = reply(
        p.on_request_body(
            &post(),
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"zero":0}}"#,
        )
        .0,
    );
    let j = body_json(&r);
    assert_eq!(r.status, 200);
    assert_eq!(j["id"], 1);
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Denied by policy"),
        "{j}"
    );
}
