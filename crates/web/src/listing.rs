//! List filtering in the page: the `tools` answer (a `tools/list` answer)
//! fed to the filter's own response path for each decided `tools/list`
//! request that was forwarded, as if the server had sent it: which tools
//! the policy hides from this caller and the exact answer the client gets.

use mcp_policy_core::config::settings::Mode;
use mcp_policy_core::mcp::methods;
use mcp_policy_core::pipeline::request::Plugin;
use mcp_policy_core::pipeline::response::{self, Start};
use mcp_policy_core::replay::drive::{Entry, Outcome};
use mcp_policy_core::state::store::MemoryStore;
use serde_json::{json, Value};

/// The server's `tools/list` answer: its `result` (kept whole, with
/// `nextCursor` and the like) and the tool definitions in it.
pub(crate) struct ToolsAnswer {
    pub tools: Vec<Value>,
    result: Value,
}

impl ToolsAnswer {
    /// `tools`: a `tools/list` response, its `result`, or the array of tools.
    pub fn from_request(request: &Value) -> Result<Option<ToolsAnswer>, String> {
        let Some(v) = request.get("tools").filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let result = match v.get("result") {
            Some(r) => r.clone(),
            None if v.is_array() => json!({ "tools": v }),
            None => v.clone(),
        };
        match result.get("tools").and_then(Value::as_array) {
            Some(tools) => Ok(Some(ToolsAnswer {
                tools: tools.clone(),
                result,
            })),
            None => Err(
                "tools: expected a tools/list response, its result, or an array of tools".into(),
            ),
        }
    }
}

/// The answer as the client gets it, when `entries` is one forwarded
/// `tools/list` request: `{"hidden", "shown", "decision", "reasons",
/// "answer"}` (the answer as text, exactly as the filter releases it).
pub(crate) fn filter(
    plugin: &mut Plugin,
    outcome: &Outcome,
    entries: &[Entry],
    answer: &ToolsAnswer,
    store: &MemoryStore,
    now_ms: u64,
) -> Option<Value> {
    let Outcome::Forwarded(forward) = outcome else {
        return None;
    };
    let [entry] = entries else { return None };
    let id = entry.id.as_deref()?;
    if entry.method.as_deref() != Some(methods::TOOLS_LIST) {
        return None;
    }
    let watch = forward.response.clone()?;
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#,
        answer.result
    );
    let audit = plugin.settings.mode == Mode::Audit;
    let max = plugin.settings.max_response_bytes;
    let Start::Inspect { mut stream, .. } =
        response::start(watch, Some(200), "application/json", "", max, audit)
    else {
        return None;
    };
    let out = stream.feed(plugin, body.as_bytes(), true, Some((store, now_ms)));
    // The response's evaluations are not the next message's.
    let _ = plugin.policy.take_recorded();
    let hidden: Vec<String> = out
        .decided
        .iter()
        .flat_map(|d| d.record.hidden.iter().cloned())
        .collect();
    let released: Value = serde_json::from_slice(&out.bytes).unwrap_or(Value::Null);
    let shown: Vec<Value> = released
        .pointer("/result/tools")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(|t| t.get("name").cloned()).collect())
        .unwrap_or_default();
    let allowed = out.decided.iter().all(|d| d.allowed);
    Some(json!({
        "decision": if allowed { "allow" } else { "deny" },
        "reasons": out.decided.iter().flat_map(|d| d.reasons.iter().cloned()).collect::<Vec<_>>(),
        "hidden": hidden,
        "shown": shown,
        "answer": String::from_utf8_lossy(&out.bytes),
    }))
}
