//! An audit log decided again (`decide` with `audit`): each event read back
//! by `mcp_policy_core::replay::audit` into the request it records, decided
//! in order with one session store at the event's own time, next to the
//! decision the filter recorded for it.

use crate::decide::{set, Run};
use mcp_policy_core::replay::audit::{self, Replayed};
use serde_json::{json, Map, Value};

/// The event's fields the page shows as the recorded decision.
const RECORDED: [&str; 13] = [
    "decision",
    "reasons",
    "decision_id",
    "time",
    "mode",
    "kind",
    "method",
    "tool",
    "prompt",
    "resource",
    "session_id",
    "http_status",
    "policy_revision",
];

fn recorded(r: &Replayed) -> Value {
    let mut o: Map<String, Value> = RECORDED
        .iter()
        .filter_map(|k| r.event.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    o.insert("line".into(), r.line.into());
    o.insert("event".into(), Value::Object(r.event.clone()));
    Value::Object(o)
}

/// Every event of the log: the report of the request it was replayed as
/// (see [`Run::decide`]) with `recorded`, `reconstructed` and `changed`
/// (the policy's decision differs from the recorded one), or `skipped`
/// (why the event cannot be decided again) with `recorded`.
pub(crate) fn decide(run: &mut Run, text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, r) in audit::read(text)?.into_iter().enumerate() {
        let was = recorded(&r);
        let was_decision = r.decision().to_string();
        let mut v = match r.request {
            Err(why) => json!({"index": i, "skipped": why}),
            Ok(req) => {
                let now_ms = r.time_ms.unwrap_or(run.now_ms);
                let mut v = run.decide(i, req, now_ms);
                // The policy's decision (in audit mode, the one that would
                // have been enforced), as the event records it.
                let now = v
                    .pointer("/messages/0/decision")
                    .or_else(|| v.get("decision"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let Some(now) = now {
                    set(&mut v, "changed", (now != was_decision).into());
                }
                set(&mut v, "reconstructed", r.reconstructed.clone().into());
                v
            }
        };
        set(&mut v, "recorded", was);
        out.push(v);
    }
    Ok(out)
}
