//! Faults in the core, without a proxy: policies that fail at run time, and
//! the shared store under more sessions than it has room for. The same
//! request path as the filter (`Plugin::on_request_body_with`), with a
//! store that counts what it holds. docs/hardening.md, "Faults", describes
//! the outcomes checked here.
// Tests may unwrap and index: the data-path lints ([workspace.lints]) are
// for the library code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_policy_core::config::settings::Config;
use mcp_policy_core::pipeline::request::{BodyAction, Decided, Plugin};
use mcp_policy_core::policy::input::HttpRequest;
use mcp_policy_core::state::store::{MemoryStore, Store, StoreError};
use regorus::Value;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// A store that remembers every key written and the largest value.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    keys: RefCell<BTreeSet<String>>,
    largest: Cell<usize>,
}

impl Store for Counting {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.keys.borrow_mut().insert(key.to_string());
        self.largest.set(self.largest.get().max(value.len()));
        self.inner.set(key, value, cas)
    }
}

fn plugin(policy: &str, extra: serde_json::Value) -> Plugin {
    let mut cfg = serde_json::json!({"policy": {"modules": {"p.rego": policy}}});
    if let (Some(o), serde_json::Value::Object(e)) = (cfg.as_object_mut(), extra) {
        o.extend(e);
    }
    Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap())
}

fn request(sub: Option<&str>, session: Option<&str>) -> HttpRequest {
    let mut h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"upstream".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ];
    if let Some(s) = session {
        h.push(("mcp-session-id".into(), s.as_bytes().to_vec()));
    }
    let mut r = HttpRequest::from_headers(h);
    if let Some(sub) = sub {
        r.attributes.jwt_claims =
            Some(Value::from_json_str(&format!(r#"{{"sub":"{sub}"}}"#)).unwrap());
    }
    r
}

fn call(tool: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#)
        .into_bytes()
}

fn decide(
    p: &mut Plugin,
    store: &dyn Store,
    now: u64,
    http: &HttpRequest,
    tool: &str,
) -> (bool, Decided) {
    let (action, mut decided) = p.on_request_body_with(http, &call(tool), Some((store, now)));
    assert_eq!(decided.len(), 1);
    let d = decided.remove(0);
    let forwarded = matches!(action, BodyAction::Forward(_));
    assert_eq!(forwarded, d.allowed, "action and record disagree");
    assert_eq!(
        d.record.allowed, d.allowed,
        "audit record and decision disagree"
    );
    assert!(!d.record.decision_id.is_empty(), "no audit record");
    (forwarded, d)
}

// --- policies that fail at run time ---------------------------------------------

/// The fault policy, shared with tests/e2e/test_e2e_faults.py.
const FAULTY: &str = include_str!("../../../tests/fixtures/policies/faults/faults.rego");

fn faulty() -> Plugin {
    plugin(FAULTY, serde_json::json!({"max_instructions": 20000}))
}

#[test]
fn an_exhausted_instruction_budget_denies_with_the_reason() {
    let mut p = faulty();
    let store = MemoryStore::default();
    let (fwd, d) = decide(&mut p, &store, 1, &request(None, None), "budget");
    assert!(!fwd);
    assert_eq!(d.reasons.len(), 1);
    assert!(
        d.reasons[0].starts_with("policy evaluation failed:"),
        "{:?}",
        d.reasons
    );
    assert!(d.reasons[0].contains("instruction"), "{:?}", d.reasons);
    assert_eq!(d.record.reasons, d.reasons);
    // The next message is decided normally: the budget is per evaluation.
    assert!(decide(&mut p, &store, 2, &request(None, None), "ok").0);
}

#[test]
fn a_failing_builtin_in_an_allow_rule_denies() {
    let mut p = faulty();
    let store = MemoryStore::default();
    let (fwd, d) = decide(&mut p, &store, 1, &request(None, None), "builtin_in_allow");
    assert!(!fwd);
    assert_eq!(d.reasons.len(), 1);
    assert!(
        d.reasons[0].starts_with("policy evaluation failed: builtin error at "),
        "{:?}",
        d.reasons
    );
}

#[test]
fn outputs_of_the_wrong_type_deny() {
    for bad in [
        "package mcp\nallow := true\ndeny := \"not a set\"\n",
        "package mcp\nallow := true\ndenial := 5\ndeny := {\"x\"}\n",
        "package mcp\nallow := true\nrewrite := [1]\n",
        "package mcp\nallow := true\nrequest_headers := {\"bad name\": \"v\"}\n",
        "package mcp\nallow := true\nkill := 7\n",
    ] {
        let mut p = plugin(bad, serde_json::json!({}));
        let store = MemoryStore::default();
        let (fwd, d) = decide(&mut p, &store, 1, &request(None, None), "ok");
        assert!(!fwd, "{bad}: allowed");
        assert!(
            d.reasons
                .iter()
                .any(|r| r.starts_with("policy evaluation failed") || r.contains("x")),
            "{bad}: {:?}",
            d.reasons
        );
    }
}

/// A failing builtin, or a complete rule with conflicting values, inside a
/// `deny` rule denies (regorus 0.14.1's RVM made them undefined, so the rule
/// silently did not fire; vendor/regorus/PATCHES.md).
#[test]
fn a_failing_builtin_or_a_conflict_in_a_deny_rule_denies() {
    let mut p = faulty();
    let store = MemoryStore::default();
    for (tool, kind) in [("builtin_in_deny", "builtin"), ("conflict", "conflict")] {
        let (fwd, d) = decide(&mut p, &store, 1, &request(None, None), tool);
        assert!(!fwd, "{tool}: allowed");
        assert!(
            d.reasons[0].starts_with(&format!("policy evaluation failed: {kind} error at ")),
            "{tool}: {:?}",
            d.reasons
        );
    }
}

// --- shared data under pressure ---------------------------------------------------

const SESSIONS: &str = r#"package mcp
import rego.v1
default allow := true
labels contains "sensitive" if input.mcp.tool.name == "read_db"
deny contains "no send after a sensitive read" if {
    input.mcp.tool.name == "send_email"
    "sensitive" in input.session.labels
}
kill := "stop" if input.mcp.tool.name == "kill_me"
"#;

fn pressured() -> Plugin {
    plugin(
        SESSIONS,
        serde_json::json!({"sessions": {"slots": 8, "slot_records": 2, "max_calls": 4}}),
    )
}

fn flood(p: &mut Plugin, store: &dyn Store, now: u64, n: usize) {
    for i in 0..n {
        let who = format!("flood-{i}");
        let (fwd, _) = decide(p, store, now, &request(Some(&who), Some(&who)), "echo");
        assert!(fwd, "flood message {i} refused");
    }
}

#[test]
fn many_sessions_beyond_the_slots_stay_bounded() {
    let mut p = pressured();
    let store = Counting::default();
    flood(&mut p, &store, 1000, 1000);
    let keys = store.keys.borrow();
    assert!(keys.len() <= 8, "{} keys", keys.len());
    assert!(
        keys.iter().all(|k| k.starts_with("mcp-policy/state/")),
        "{keys:?}"
    );
    // Two records of at most four calls each per slot.
    assert!(
        store.largest.get() < 4096,
        "a slot of {} bytes",
        store.largest.get()
    );
}

#[test]
fn history_of_an_evicted_session_is_forgotten() {
    // Documented behaviour: under pressure, the least recently used
    // session loses its history, so a flow rule reads a fresh session.
    let mut p = pressured();
    let store = MemoryStore::default();
    let alice = request(Some("alice"), Some("S-alice"));
    assert!(decide(&mut p, &store, 1000, &alice, "read_db").0);
    assert!(!decide(&mut p, &store, 1001, &alice, "send_email").0);
    flood(&mut p, &store, 1002, 200);
    assert!(decide(&mut p, &store, 1003, &alice, "send_email").0);
}

#[test]
fn an_evicted_binding_is_forgotten_too() {
    // Documented behaviour: the binding lives in the session's record, so
    // a session evicted under pressure can be presented by another
    // principal (who must know its id). Size `sessions.slots` for the
    // number of live sessions (docs/hardening.md).
    let mut p = pressured();
    let store = MemoryStore::default();
    assert!(
        decide(
            &mut p,
            &store,
            1000,
            &request(Some("alice"), Some("S1")),
            "echo"
        )
        .0
    );
    let (fwd, d) = decide(
        &mut p,
        &store,
        1001,
        &request(Some("mallory"), Some("S1")),
        "echo",
    );
    assert!(!fwd);
    assert!(
        d.reasons[0].contains("belongs to another principal"),
        "{:?}",
        d.reasons
    );
    flood(&mut p, &store, 1002, 200);
    assert!(
        decide(
            &mut p,
            &store,
            1003,
            &request(Some("mallory"), Some("S1")),
            "echo"
        )
        .0
    );
}

#[test]
fn kills_outlast_unkilled_records_under_pressure() {
    let mut p = pressured();
    let store = MemoryStore::default();
    let m = request(Some("mallory"), Some("S-m"));
    assert!(!decide(&mut p, &store, 1000, &m, "kill_me").0);
    flood(&mut p, &store, 1001, 1000);
    let (fwd, d) = decide(&mut p, &store, 1002, &m, "echo");
    assert!(!fwd, "a kill was evicted by unkilled records");
    assert!(
        d.reasons[0].starts_with("session killed"),
        "{:?}",
        d.reasons
    );
}

/// A host whose shared data refuses every write (full, or failing).
struct Full;

impl Store for Full {
    fn get(&self, _key: &str) -> Option<(Vec<u8>, u32)> {
        None
    }
    fn set(&self, _key: &str, _value: &[u8], _cas: Option<u32>) -> Result<(), StoreError> {
        Err(StoreError::Failed("shared data full".into()))
    }
}

#[test]
fn a_store_that_refuses_writes_fails_closed_even_in_audit_mode() {
    for mode in ["enforce", "audit"] {
        let mut p = plugin(SESSIONS, serde_json::json!({"mode": mode}));
        let (fwd, d) = decide(
            &mut p,
            &Full,
            1000,
            &request(Some("alice"), Some("S1")),
            "echo",
        );
        assert!(!fwd, "{mode}: forwarded without session state");
        assert!(
            d.reasons[0].starts_with("session state unavailable"),
            "{mode}: {:?}",
            d.reasons
        );
    }
}
