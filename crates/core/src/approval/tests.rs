//! The MAC, the canonical call, the retry's verification, the body
//! rewrite; and the question and the retry through the request path
//! (`flow` below).
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::keys::{ApprovalKey, ApprovalSettings};
use super::state::{self, Claims, Unreadable, STATE_PREFIX};
use super::*;
use crate::mcp::jsonrpc::{parse, Body, Message};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

mod flow;

const SECRET_1: &str = "0123456789abcdef0123456789abcdef-one";
const SECRET_2: &str = "0123456789abcdef0123456789abcdef-two";

fn settings(keys: &[(&str, &str)]) -> ApprovalSettings {
    ApprovalSettings {
        keys: keys
            .iter()
            .map(|(id, secret)| ApprovalKey {
                id: id.to_string(),
                secret: secret.to_string(),
            })
            .collect(),
        ttl_seconds: 300,
    }
}

fn k1() -> ApprovalSettings {
    settings(&[("k1", SECRET_1)])
}

const NOW_MS: u64 = 1_800_000_000_000;

fn call(args: &str, session: Option<&str>, principal: Option<&str>) -> Call {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"delete","arguments":{args}}}}}"#
    );
    with_message(&body, |m| {
        Call::of(m, session, principal.map(str::to_string)).unwrap()
    })
}

fn with_message<T>(body: &str, f: impl FnOnce(&Message<'_>) -> T) -> T {
    match parse(body.as_bytes()).unwrap() {
        Body::Single(m) => f(&m),
        Body::Batch(_) => panic!("not a single message"),
    }
}

fn signed(c: &Call, s: &ApprovalSettings) -> String {
    let kid = s.signing().unwrap().id.clone();
    state::encode(
        s,
        &c.claims(&kid, NOW_MS / 1000, s.ttl_seconds, "n1".into(), None),
    )
    .unwrap()
}

/// A retry of `delete` with these arguments, the state and the answer.
fn retry(args: &str, state: &str, answer: Option<&str>) -> String {
    let responses = answer
        .map(|a| format!(r#","inputResponses":{{"{RESPONSE_KEY}":{a}}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"delete","arguments":{args},"requestState":"{state}"{responses}}}}}"#
    )
}

const YES: &str = r#"{"action":"accept","content":{"approve":true}}"#;

fn checked(
    s: Option<&ApprovalSettings>,
    body: &str,
    session: Option<&str>,
    principal: Option<&str>,
    now_ms: u64,
) -> Check {
    with_message(body, |m| {
        let c = Call::of(m, session, principal.map(str::to_string));
        check(s, m, c.as_ref(), now_ms)
    })
}

#[test]
fn canonical_call_ignores_key_order_and_round_trip_fields() {
    let a = call(
        r#"{"path":"/a","force":true}"#,
        Some("s"),
        Some("sub:alice"),
    );
    let b = call(
        r#"{"force":true,"path":"/a"}"#,
        Some("s"),
        Some("sub:alice"),
    );
    assert_eq!(a, b);
    assert!(a.arguments.starts_with("sha256:"));
    assert_ne!(
        a,
        call(
            r#"{"force":false,"path":"/a"}"#,
            Some("s"),
            Some("sub:alice")
        )
    );
    // No arguments reads as `{}`.
    let none = with_message(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete"}}"#,
        |m| Call::of(m, None, None).unwrap(),
    );
    assert_eq!(none.arguments, call("{}", None, None).arguments);
    // Only tools/call has a call.
    with_message(
        r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#,
        |m| assert!(Call::of(m, None, None).is_none()),
    );
}

#[test]
fn state_round_trips_and_is_marked() {
    let s = k1();
    let c = call(r#"{"path":"/a"}"#, Some("s1"), Some("sub:alice"));
    let st = signed(&c, &s);
    assert!(st.starts_with(STATE_PREFIX));
    let claims = state::decode(&s, &st).unwrap();
    assert_eq!(claims.kid, "k1");
    assert_eq!(claims.t, "delete");
    assert_eq!(claims.exp, NOW_MS / 1000 + 300);
    assert_eq!(claims.n, "n1");
    // Nothing in clear: the session and principal are hashed.
    let json = URL_SAFE_NO_PAD
        .decode(
            st.strip_prefix(STATE_PREFIX)
                .unwrap()
                .split('.')
                .next()
                .unwrap(),
        )
        .unwrap();
    let text = String::from_utf8(json).unwrap();
    assert!(!text.contains("alice") && !text.contains("s1"), "{text}");
}

/// Re-sign claims changed by `f` under a key the attacker does not have,
/// or splice them under the original MAC: both are refused.
#[test]
fn altered_claims_do_not_verify() {
    let s = k1();
    let c = call(r#"{"path":"/a"}"#, None, None);
    let st = signed(&c, &s);
    let (payload, tag) = st
        .strip_prefix(STATE_PREFIX)
        .unwrap()
        .split_once('.')
        .unwrap();
    let mut claims: Claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims.exp += 3600;
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let spliced = format!("{STATE_PREFIX}{forged_payload}.{tag}");
    assert_eq!(
        state::decode(&s, &spliced),
        Err(Unreadable::BadMac("k1".into()))
    );
    // Signed with another secret under the same key id.
    let other = settings(&[("k1", SECRET_2)]);
    assert_eq!(
        state::decode(&s, &signed(&c, &other)),
        Err(Unreadable::BadMac("k1".into()))
    );
    // One flipped character of the MAC.
    let mut bad = st.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    assert!(matches!(
        state::decode(&s, &bad),
        Err(Unreadable::BadMac(_)) | Err(Unreadable::Malformed(_))
    ));
}

#[test]
fn rotation_old_key_verifies_while_listed_and_unknown_ids_are_refused() {
    let old = k1();
    let c = call("{}", None, None);
    let st = signed(&c, &old);
    // New key first (it signs), old key still listed: the old state verifies.
    let rotated = settings(&[("k2", SECRET_2), ("k1", SECRET_1)]);
    assert!(state::decode(&rotated, &st).is_ok());
    assert!(signed(&c, &rotated).contains('.'));
    assert_eq!(
        state::decode(&rotated, &signed(&c, &rotated)).unwrap().kid,
        "k2"
    );
    // Old key removed: refused, naming the key.
    let only_new = settings(&[("k2", SECRET_2)]);
    assert_eq!(
        state::decode(&only_new, &st),
        Err(Unreadable::UnknownKey("k1".into()))
    );
    let msg = state::decode(&only_new, &st).unwrap_err().to_string();
    assert!(
        msg.contains("\"k1\"") && msg.contains("not configured"),
        "{msg}"
    );
}

#[test]
fn malformed_states_are_refused_as_forged() {
    let s = k1();
    for (st, why) in [
        (STATE_PREFIX.to_string(), "no signature"),
        (format!("{STATE_PREFIX}abc"), "no signature"),
        (
            format!("{STATE_PREFIX}!!!.AAAA"),
            "claims are not base64url",
        ),
        (
            format!("{STATE_PREFIX}e30.!!"),
            "signature is not base64url",
        ),
        (format!("{STATE_PREFIX}e30.AAAA"), "claims are not valid"),
        (
            format!("{STATE_PREFIX}{}.AA", "A".repeat(17_000)),
            "too long",
        ),
    ] {
        assert_eq!(
            state::decode(&s, &st),
            Err(Unreadable::Malformed(why)),
            "{st}"
        );
        let got = checked(Some(&s), &retry("{}", &st, Some(YES)), None, None, NOW_MS);
        assert!(
            matches!(got, Check::Refused(Status::Forged, _, None)),
            "{got:?}"
        );
    }
}

#[test]
fn approved_retry_of_the_same_call() {
    let s = k1();
    let c = call(r#"{"path":"/a"}"#, Some("s1"), Some("sub:alice"));
    let st = signed(&c, &s);
    let got = checked(
        Some(&s),
        &retry(r#"{"path":"/a"}"#, &st, Some(YES)),
        Some("s1"),
        Some("sub:alice"),
        NOW_MS + 10_000,
    );
    let Check::Approved(a) = got else {
        panic!("{got:?}")
    };
    assert_eq!(a.id, "n1");
    assert_eq!(a.by.as_deref(), Some("sub:alice"));
    assert_eq!(a.at, NOW_MS / 1000 + 10);
    assert_eq!(a.asked_at, NOW_MS / 1000);
    let v = a.to_value();
    assert_eq!(v["by"], regorus::Value::from("sub:alice"));
    assert_eq!(v["expires_at"], regorus::Value::from(NOW_MS / 1000 + 300));
}

#[test]
fn each_bound_field_tampered_is_refused_with_its_reason() {
    let s = k1();
    let c = call(r#"{"path":"/a"}"#, Some("s1"), Some("sub:alice"));
    let st = signed(&c, &s);
    let refused =
        |body: String, session: Option<&str>, principal: Option<&str>, now: u64| match checked(
            Some(&s),
            &body,
            session,
            principal,
            now,
        ) {
            Check::Refused(status, reason, id) => {
                assert_eq!(id.as_deref(), Some("n1"));
                (status, reason)
            }
            other => panic!("{other:?}"),
        };
    let (st_, r) = refused(
        retry(r#"{"path":"/b"}"#, &st, Some(YES)),
        Some("s1"),
        Some("sub:alice"),
        NOW_MS,
    );
    assert_eq!(st_, Status::Mismatch);
    assert!(r.contains("arguments differ"), "{r}");
    let (st_, r) = refused(
        retry(r#"{"path":"/a"}"#, &st, Some(YES)),
        Some("s2"),
        Some("sub:alice"),
        NOW_MS,
    );
    assert_eq!(st_, Status::Mismatch);
    assert!(r.contains("another session"), "{r}");
    let (st_, r) = refused(
        retry(r#"{"path":"/a"}"#, &st, Some(YES)),
        None,
        Some("sub:alice"),
        NOW_MS,
    );
    assert_eq!(st_, Status::Mismatch);
    assert!(r.contains("another session"), "{r}");
    let (st_, r) = refused(
        retry(r#"{"path":"/a"}"#, &st, Some(YES)),
        Some("s1"),
        Some("sub:mallory"),
        NOW_MS,
    );
    assert_eq!(st_, Status::Mismatch);
    assert!(r.contains("another principal"), "{r}");
    // Another tool.
    let other_tool =
        retry(r#"{"path":"/a"}"#, &st, Some(YES)).replace(r#""name":"delete""#, r#""name":"wipe""#);
    let (st_, r) = refused(other_tool, Some("s1"), Some("sub:alice"), NOW_MS);
    assert_eq!(st_, Status::Mismatch);
    assert!(r.contains("\"delete\"") && r.contains("\"wipe\""), "{r}");
    // Expired: at the expiry second and after.
    for now in [NOW_MS + 300_000, NOW_MS + 3_600_000] {
        let (st_, r) = refused(
            retry(r#"{"path":"/a"}"#, &st, Some(YES)),
            Some("s1"),
            Some("sub:alice"),
            now,
        );
        assert_eq!(st_, Status::Expired);
        assert!(r.contains("expired at") && r.contains("300 s"), "{r}");
    }
    // Just before expiry, and replayed within the window: accepted.
    for now in [NOW_MS + 299_999, NOW_MS + 1] {
        assert!(matches!(
            checked(
                Some(&s),
                &retry(r#"{"path":"/a"}"#, &st, Some(YES)),
                Some("s1"),
                Some("sub:alice"),
                now
            ),
            Check::Approved(_)
        ));
    }
}

#[test]
fn the_persons_answer() {
    let s = k1();
    let c = call("{}", None, None);
    let st = signed(&c, &s);
    let answer = |a: Option<&str>| checked(Some(&s), &retry("{}", &st, a), None, None, NOW_MS);
    assert!(matches!(answer(Some(YES)), Check::Approved(_)));
    assert_eq!(answer(None), Check::Unanswered);
    for (a, why) in [
        (
            r#"{"action":"accept","content":{"approve":false}}"#,
            "did not approve",
        ),
        (
            r#"{"action":"accept","content":{}}"#,
            "no approve/decline answer",
        ),
        (
            r#"{"action":"accept","content":{"approve":"yes"}}"#,
            "no approve/decline answer",
        ),
        (r#"{"action":"decline"}"#, "declined"),
        (r#"{"action":"cancel"}"#, "dismissed"),
        (r#"{"action":"maybe"}"#, "unreadable"),
        ("42", "unreadable"),
    ] {
        match answer(Some(a)) {
            Check::Refused(Status::Declined, r, Some(id)) => {
                assert!(r.contains(why), "{a}: {r}");
                assert_eq!(id, "n1");
            }
            other => panic!("{a}: {other:?}"),
        }
    }
}

#[test]
fn upstream_state_is_not_ours_and_no_keys_refuses_ours() {
    let s = k1();
    let upstream = retry("{}", "eyJzZXJ2ZXIiOiJzdGF0ZSJ9", Some(YES));
    assert_eq!(
        checked(Some(&s), &upstream, None, None, NOW_MS),
        Check::None
    );
    assert_eq!(checked(None, &upstream, None, None, NOW_MS), Check::None);
    let no_state = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete"}}"#;
    assert_eq!(checked(Some(&s), no_state, None, None, NOW_MS), Check::None);
    let ours = retry("{}", &signed(&call("{}", None, None), &s), Some(YES));
    assert!(matches!(
        checked(None, &ours, None, None, NOW_MS),
        Check::Refused(Status::Unavailable, ref r, None) if r.contains("approval.keys")
    ));
    // Our state on another method.
    let on_prompt = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{{"name":"p","requestState":"{}"}}}}"#,
        signed(&call("{}", None, None), &s)
    );
    assert!(matches!(
        checked(Some(&s), &on_prompt, None, None, NOW_MS),
        Check::Refused(Status::Mismatch, ref r, None) if r.contains("prompts/get")
    ));
}

#[test]
fn strip_replaces_the_round_trip_with_the_upstreams_own() {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"delete","arguments":{{"n":12345678901234567890}},"requestState":"x","inputResponses":{{"{RESPONSE_KEY}":{YES},"injected":{{"action":"accept"}}}}}}}}"#
    );
    let read = |b: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&b).unwrap();
    // No upstream round trip: both members go, whatever else they held.
    let out = read(reply::strip(body.as_bytes(), None).unwrap());
    let p = &out["params"];
    assert!(
        p.get("requestState").is_none() && p.get("inputResponses").is_none(),
        "{p}"
    );
    assert_eq!(p["arguments"]["n"].to_string(), "12345678901234567890");
    // The upstream's own round trip, signed with the question: restored.
    let up = serde_json::json!({"requestState": "server-1", "inputResponses": {"color": {"action": "accept", "content": {"color": "teal"}}}});
    let out = read(reply::strip(body.as_bytes(), Some(&up)).unwrap());
    assert_eq!(out["params"]["requestState"], "server-1");
    assert_eq!(out["params"]["inputResponses"], up["inputResponses"]);
    assert!(reply::strip(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", None).is_err());
}

#[test]
fn settings_are_checked() {
    assert!(k1().validate().is_ok());
    let e = |s: ApprovalSettings| s.validate().unwrap_err();
    assert!(e(settings(&[])).contains("empty"));
    assert!(e(settings(&[("k1", "short")])).contains("at least 32"));
    assert!(e(settings(&[("k 1", SECRET_1)])).contains("keys[0].id"));
    assert!(e(settings(&[("k1", SECRET_1), ("k1", SECRET_2)])).contains("twice"));
    let mut s = k1();
    s.ttl_seconds = 0;
    assert!(e(s).contains("ttl_seconds"));
    // The secret never shows in Debug.
    assert!(!format!("{:?}", k1()).contains(SECRET_1));
}
