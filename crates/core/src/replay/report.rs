//! The JSON shape of a replayed request (`mcp-policy eval --format json`,
//! docs/cli.md; the playground shows the same documents): one object per
//! message, and the reply the client gets or what is forwarded.

use super::drive::{Entry, Outcome};
use crate::policy::engine::{Evaluation, PolicyError, PolicyResult};

/// The input document an evaluation saw, as JSON.
pub fn json_input(ev: &Evaluation) -> serde_json::Value {
    ev.input
        .to_json_str()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The policy's result, or its error.
pub fn result_json(r: &Result<PolicyResult, PolicyError>) -> serde_json::Value {
    match r {
        Ok(r) => serde_json::json!({"allow": r.allow, "deny": r.deny, "labels": r.labels}),
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}

/// A body as JSON when it is JSON, else as text.
pub fn body_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// One message: kind, method, name, id, decision, reasons, the policy's
/// result, the input (with `print_input`), the rule values and the rule
/// definitions that produced them (`location` maps module, line, column to
/// what the user sees).
pub fn message_json(
    index: usize,
    e: &Entry,
    location: &dyn Fn(&str, u32, u32) -> String,
    print_input: bool,
    explain_error: Option<&str>,
) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("index".into(), index.into());
    m.insert("kind".into(), e.kind.clone().into());
    if let Some(v) = &e.method {
        m.insert("method".into(), v.clone().into());
    }
    if let Some(v) = &e.name {
        m.insert("name".into(), v.clone().into());
    }
    if let Some(v) = &e.id {
        m.insert("id".into(), body_json(v.as_bytes()));
    }
    if let Some(v) = &e.invalid {
        m.insert("invalid".into(), v.clone().into());
    }
    if let Some(d) = &e.decided {
        m.insert(
            "decision".into(),
            if d.allowed { "allow" } else { "deny" }.into(),
        );
        m.insert("reasons".into(), d.reasons.clone().into());
    } else if let Some(ev) = &e.evaluation {
        let allowed = matches!(&ev.result, Ok(r) if r.permits());
        m.insert(
            "decision".into(),
            if allowed { "allow" } else { "deny" }.into(),
        );
    }
    if let Some(ev) = &e.evaluation {
        m.insert("result".into(), result_json(&ev.result));
        if print_input {
            m.insert("input".into(), json_input(ev));
        }
    }
    match &e.explanation {
        Some(Ok(x)) => {
            let mut values = serde_json::Map::new();
            if let Some(a) = &x.allow {
                values.insert("allow".into(), a.clone());
            }
            if let Some(d) = &x.deny {
                values.insert("deny".into(), d.clone());
            }
            m.insert("values".into(), values.into());
            let rules: Vec<serde_json::Value> = x
                .contributions
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "rule": c.rule,
                        "location": location(&c.module, c.line, c.col),
                        "value": c.value,
                        "default": c.is_default,
                    })
                })
                .collect();
            m.insert("rules".into(), rules.into());
        }
        Some(Err(err)) => {
            m.insert("explanation_error".into(), err.clone().into());
        }
        None if e.evaluation.is_some() => {
            if let Some(err) = explain_error {
                m.insert("explanation_error".into(), err.into());
            }
        }
        None => {}
    }
    serde_json::Value::Object(m)
}

/// Whether the request was forwarded, the reply the client gets (status,
/// headers, body) when it was not, and what is forwarded (rewritten body,
/// headers set) when it was. `input_only`: an input document evaluated on
/// its own, which has no reply.
pub fn outcome_json(
    outcome: &Outcome,
    input_only: bool,
) -> (bool, serde_json::Value, serde_json::Value) {
    match outcome {
        Outcome::Forwarded(f) => (
            true,
            serde_json::Value::Null,
            serde_json::json!({
                "body": f.body.as_deref().map(body_json),
                "request_headers": f.request_headers,
                "response_headers": f.response_headers,
            }),
        ),
        Outcome::Replied(_) if input_only => {
            (false, serde_json::Value::Null, serde_json::Value::Null)
        }
        Outcome::Replied(r) => (
            false,
            serde_json::json!({
                "status": r.status,
                "headers": r.headers,
                "body": body_json(&r.body),
                "body_text": String::from_utf8_lossy(&r.body),
            }),
            serde_json::Value::Null,
        ),
    }
}

/// `file:line:col` split into its parts (for JSON output).
pub fn split_location(loc: &str) -> (String, Option<u64>, Option<u64>) {
    let mut parts = loc.rsplitn(3, ':');
    let c = parts.next();
    let l = parts.next();
    let f = parts.next();
    match (
        f,
        l.and_then(|l| l.parse().ok()),
        c.and_then(|c| c.parse().ok()),
    ) {
        (Some(f), Some(l), Some(c)) => (f.to_string(), Some(l), Some(c)),
        _ => (loc.to_string(), None, None),
    }
}
