//! The question and the retry through the request path
//! (`Plugin::on_request_body_with`), as the filter runs them.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::{RESPONSE_KEY, SECRET_1, SECRET_2, STATE_PREFIX};
use crate::config::settings::Config;
use crate::pipeline::request::{BodyAction, Decided, Plugin};
use crate::policy::input::HttpRequest;
use crate::state::store::MemoryStore;

const POLICY: &str = r#"package mcp
default allow := true
confirm contains "deleting cannot be undone" if input.mcp.tool.name == "delete"
deny contains "approved calls must be made by alice" if {
    input.approval
    input.approval.by != "peer:alice"
}
"#;

const NOW: u64 = 1_800_000_000_000;

fn plugin_with(extra: serde_json::Value) -> Plugin {
    let mut cfg = serde_json::json!({"policy": {"modules": {"p.rego": POLICY}},
        "approval": {"keys": [{"id": "k2", "secret": SECRET_2}, {"id": "k1", "secret": SECRET_1}], "ttl_seconds": 60}});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap())
}

fn post(version: &str, tool: &str, peer: Option<&str>, session: Option<&str>) -> HttpRequest {
    let mut h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"127.0.0.1".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("mcp-protocol-version".into(), version.as_bytes().to_vec()),
    ];
    if version == "2026-07-28" {
        h.push(("mcp-method".into(), b"tools/call".to_vec()));
        h.push(("mcp-name".into(), tool.as_bytes().to_vec()));
    }
    if let Some(s) = session {
        h.push(("mcp-session-id".into(), s.as_bytes().to_vec()));
    }
    let mut r = HttpRequest::from_headers(h);
    r.attributes.peer_principal = peer.map(str::to_string);
    r
}

fn call(version: &str, tool: &str, args: &str, round: &str, elicitation: bool) -> String {
    let caps = if elicitation {
        r#"{"elicitation":{"form":{}}}"#
    } else {
        "{}"
    };
    format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{args}{round},"_meta":{{"io.modelcontextprotocol/protocolVersion":"{version}","io.modelcontextprotocol/clientCapabilities":{caps}}}}}}}"#
    )
}

fn round(state: &str, answer: &str) -> String {
    format!(r#","requestState":"{state}","inputResponses":{{"{RESPONSE_KEY}":{answer}}}"#)
}

const V: &str = "2026-07-28";
const YES: &str = r#"{"action":"accept","content":{"approve":true}}"#;

fn run(p: &mut Plugin, http: &HttpRequest, body: &str, now: u64) -> (BodyAction, Decided) {
    let store = MemoryStore::default();
    let (a, mut d) = p.on_request_body_with(http, body.as_bytes(), Some((&store, now)));
    assert_eq!(d.len(), 1);
    (a, d.remove(0))
}

fn reply_json(a: &BodyAction) -> serde_json::Value {
    match a {
        BodyAction::Reply(r) => serde_json::from_slice(&r.body).unwrap(),
        other => panic!("not a reply: {other:?}"),
    }
}

/// Ask, then return the state.
fn ask(p: &mut Plugin, http: &HttpRequest, args: &str) -> (String, Decided) {
    let (a, d) = run(p, http, &call(V, "delete", args, "", true), NOW);
    let v = reply_json(&a);
    assert_eq!(v["id"], 7);
    let r = &v["result"];
    assert_eq!(r["resultType"], "input_required");
    let q = &r["inputRequests"][RESPONSE_KEY];
    assert_eq!(q["method"], "elicitation/create");
    assert_eq!(q["params"]["mode"], "form");
    let msg = q["params"]["message"].as_str().unwrap();
    assert!(
        msg.contains("deleting cannot be undone") && msg.contains("delete"),
        "{msg}"
    );
    assert!(msg.contains(r#""path":"/tmp/x""#) || args == "{}", "{msg}");
    assert_eq!(q["params"]["requestedSchema"]["required"][0], "approve");
    let state = r["requestState"].as_str().unwrap().to_string();
    assert!(state.starts_with(STATE_PREFIX));
    (state, d)
}

#[test]
fn asked_then_approved_call_is_forwarded_without_the_round_trip() {
    let mut p = plugin_with(serde_json::json!({}));
    let http = post(V, "delete", Some("alice"), None);
    let (state, d) = ask(&mut p, &http, r#"{"path":"/tmp/x"}"#);
    assert!(!d.allowed);
    assert_eq!(d.record.approval.as_deref(), Some("asked"));
    assert_eq!(
        d.record.confirm,
        vec!["deleting cannot be undone".to_string()]
    );
    let id = d.record.approval_id.clone().unwrap();
    // Signed with the first key.
    assert!(
        crate::approval::state::decode(p.settings.approval.as_ref().unwrap(), &state)
            .unwrap()
            .kid
            == "k2"
    );

    let retry = call(
        V,
        "delete",
        r#"{"path":"/tmp/x"}"#,
        &round(&state, YES),
        true,
    );
    let (a, d) = run(&mut p, &http, &retry, NOW + 5_000);
    assert!(d.allowed, "{:?}", d.reasons);
    assert_eq!(d.record.approval.as_deref(), Some("approved"));
    assert_eq!(d.record.approval_id.as_deref(), Some(id.as_str()));
    let BodyAction::Forward(f) = a else {
        panic!("{a:?}")
    };
    let sent: serde_json::Value = serde_json::from_slice(f.body.as_deref().unwrap()).unwrap();
    assert!(sent["params"].get("requestState").is_none());
    assert!(sent["params"].get("inputResponses").is_none());
    assert_eq!(sent["params"]["arguments"]["path"], "/tmp/x");
    assert_eq!(sent["id"], 7);

    // Replayed within the window (same call, session, principal): accepted.
    let (_, d) = run(&mut p, &http, &retry, NOW + 30_000);
    assert!(d.allowed);
    // Past the window: refused.
    let (a, d) = run(&mut p, &http, &retry, NOW + 61_000);
    assert!(!d.allowed);
    assert_eq!(d.record.approval.as_deref(), Some("expired"));
    let v = reply_json(&a);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );
}

#[test]
fn policy_still_decides_with_input_approval() {
    let mut p = plugin_with(serde_json::json!({}));
    let http = post(V, "delete", Some("bob"), None);
    let (state, _) = ask(&mut p, &http, "{}");
    let (_, d) = run(
        &mut p,
        &http,
        &call(V, "delete", "{}", &round(&state, YES), true),
        NOW,
    );
    assert!(!d.allowed);
    assert_eq!(
        d.reasons,
        vec!["approved calls must be made by alice".to_string()]
    );
}

#[test]
fn tampered_declined_and_replayed_elsewhere_are_denied_specifically() {
    let mut p = plugin_with(serde_json::json!({}));
    let alice = post(V, "delete", Some("alice"), Some("s1"));
    let (state, _) = ask(&mut p, &alice, r#"{"path":"/tmp/x"}"#);
    let cases = [
        (
            alice.clone(),
            call(V, "delete", r#"{"path":"/etc"}"#, &round(&state, YES), true),
            "mismatch",
            "arguments differ",
        ),
        (
            post(V, "delete", Some("alice"), Some("s2")),
            call(
                V,
                "delete",
                r#"{"path":"/tmp/x"}"#,
                &round(&state, YES),
                true,
            ),
            "mismatch",
            "another session",
        ),
        (
            post(V, "delete", Some("eve"), Some("s1")),
            call(
                V,
                "delete",
                r#"{"path":"/tmp/x"}"#,
                &round(&state, YES),
                true,
            ),
            "mismatch",
            "another principal",
        ),
        (
            alice.clone(),
            call(
                V,
                "delete",
                r#"{"path":"/tmp/x"}"#,
                &round(&state, r#"{"action":"decline"}"#),
                true,
            ),
            "declined",
            "declined",
        ),
        (
            alice.clone(),
            call(
                V,
                "delete",
                r#"{"path":"/tmp/x"}"#,
                &round(&format!("{state}x"), YES),
                true,
            ),
            "forged",
            "does not verify",
        ),
    ];
    for (http, body, status, why) in cases {
        let (a, d) = run(&mut p, &http, &body, NOW + 1_000);
        assert!(!d.allowed, "{why}");
        assert!(d.core, "{why}: the filter's own refusal");
        assert_eq!(d.record.approval.as_deref(), Some(status), "{why}");
        let v = reply_json(&a);
        assert!(v["error"]["message"].as_str().unwrap().contains(why), "{v}");
    }
}

#[test]
fn older_versions_and_clients_without_elicitation_are_denied_naming_why() {
    let mut p = plugin_with(serde_json::json!({}));
    let http = post("2025-11-25", "delete", None, None);
    let (a, d) = run(
        &mut p,
        &http,
        &call("2025-11-25", "delete", "{}", "", true),
        NOW,
    );
    let msg = reply_json(&a)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("2026-07-28")
            && msg.contains("2025-11-25")
            && msg.contains("deleting cannot be undone"),
        "{msg}"
    );
    assert_eq!(d.record.approval.as_deref(), Some("unavailable"));
    let (a, _) = run(
        &mut p,
        &post(V, "delete", None, None),
        &call(V, "delete", "{}", "", false),
        NOW,
    );
    let msg = reply_json(&a)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("elicitation capability"), "{msg}");
}

#[test]
fn other_calls_and_upstream_state_pass_untouched() {
    let mut p = plugin_with(serde_json::json!({}));
    let http = post(V, "read", None, None);
    let body = call(
        V,
        "read",
        "{}",
        &round("server-own-state", r#"{"action":"accept"}"#),
        true,
    );
    let (a, d) = run(&mut p, &http, &body, NOW);
    assert!(d.allowed);
    assert_eq!(d.record.approval, None);
    let BodyAction::Forward(f) = a else {
        panic!("{a:?}")
    };
    assert_eq!(f.body, None, "forwarded byte for byte");
}

#[test]
fn audit_mode_records_what_would_have_been_asked() {
    let mut p = plugin_with(serde_json::json!({"mode": "audit"}));
    let http = post(V, "delete", None, None);
    let (a, d) = run(&mut p, &http, &call(V, "delete", "{}", "", true), NOW);
    assert!(matches!(a, BodyAction::Forward(_)), "{a:?}");
    assert_eq!(d.record.approval.as_deref(), Some("asked"));
}

#[test]
fn bad_keys_are_refused_and_a_policy_asking_without_keys_is_denied() {
    let cfg = serde_json::json!({"policy": {"modules": {"p.rego": POLICY}},
        "approval": {"keys": [{"id": "k1", "secret": "short"}]}});
    let e = Config::from_json(cfg.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("`approval`") && e.contains("at least 32"), "{e}");
    // No keys: the policy loads (a library module may define `confirm`
    // and stay inert), and every call it wants confirmed is denied.
    let cfg = serde_json::json!({"policy": {"modules": {"p.rego": POLICY}}});
    let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
    let (a, d) = run(
        &mut p,
        &post(V, "delete", None, None),
        &call(V, "delete", "{}", "", true),
        NOW,
    );
    let msg = reply_json(&a)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("no approval keys are configured"), "{msg}");
    assert_eq!(d.record.approval.as_deref(), Some("unavailable"));
    let (_, d) = run(
        &mut p,
        &post(V, "read", None, None),
        &call(V, "read", "{}", "", true),
        NOW,
    );
    assert!(d.allowed);
}

#[test]
fn without_held_headers_an_approved_call_is_refused_not_forwarded_with_the_state() {
    let mut p = plugin_with(serde_json::json!({"hold_headers": false}));
    let http = post(V, "delete", Some("alice"), None);
    let (state, _) = ask(&mut p, &http, "{}");
    let (a, d) = run(
        &mut p,
        &http,
        &call(V, "delete", "{}", &round(&state, YES), true),
        NOW,
    );
    assert!(!d.allowed);
    assert!(
        d.reasons[0].contains("hold_headers: true"),
        "{:?}",
        d.reasons
    );
    assert!(matches!(a, BodyAction::Reply(_)));
}

#[test]
fn an_upstreams_own_round_trip_is_kept_across_the_question() {
    let mut p = plugin_with(serde_json::json!({}));
    let http = post(V, "delete", Some("alice"), None);
    // The server's second leg: its state and the answer to its question.
    let server_leg = round(
        "server-state-1",
        r#"{"action":"accept","content":{"color":"teal"}}"#,
    )
    .replace(RESPONSE_KEY, "color");
    let (a, _) = run(
        &mut p,
        &http,
        &call(V, "delete", "{}", &server_leg, true),
        NOW,
    );
    let state = reply_json(&a)["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(state.starts_with(STATE_PREFIX));
    // Approved: the server gets its own round trip back, not the filter's.
    let (a, d) = run(
        &mut p,
        &http,
        &call(V, "delete", "{}", &round(&state, YES), true),
        NOW,
    );
    assert!(d.allowed, "{:?}", d.reasons);
    let BodyAction::Forward(f) = a else {
        panic!("{a:?}")
    };
    let sent: serde_json::Value = serde_json::from_slice(f.body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["params"]["requestState"], "server-state-1");
    assert_eq!(
        sent["params"]["inputResponses"],
        serde_json::json!({"color": {"action": "accept", "content": {"color": "teal"}}})
    );
}

#[test]
fn a_server_round_trip_too_large_to_carry_is_denied_not_asked() {
    let mut p = plugin_with(serde_json::json!({"max_body_bytes": 1 << 20}));
    let http = post(V, "delete", Some("alice"), None);
    let big = format!(
        r#"{{"action":"accept","content":{{"text":"{}"}}}}"#,
        "x".repeat(20_000)
    );
    let leg = round("server-state-1", &big).replace(RESPONSE_KEY, "q");
    let (a, d) = run(&mut p, &http, &call(V, "delete", "{}", &leg, true), NOW);
    let msg = reply_json(&a)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("too large to carry"), "{msg}");
    assert_eq!(d.record.approval.as_deref(), Some("unavailable"));
}
