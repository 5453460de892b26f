//! mcp-policy-web: the filter's core for the browser (docs/playground.md).
//!
//! Two calls, JSON in and JSON out, so the page needs no bindings beyond
//! strings:
//!
//! - [`compile`]: a policy (modules `{name: source}`, `data`, filter
//!   settings) compiled exactly as the filter's configuration compiles it:
//!   the revision, the engine, warnings (the `mcp-policy check` lint), or the
//!   errors with module, line and column;
//! - [`decide`]: recorded messages (the message files and `--session`
//!   arrays `mcp-policy eval` reads, or JSON Lines of them) sent through the
//!   filter's request path (`mcp_policy_core::replay`, the code behind
//!   `mcp-policy eval`) with one session store, in order: per request the
//!   decision, the reasons, the rule definitions that produced them, the
//!   exact input document and the reply the client would get, in the JSON
//!   shape of `mcp-policy eval --format json --print-input`.
//!
//! Nothing here reads a clock or an entropy source of its own: the page
//! passes the time (`now_ms`) and a seed for decision ids (`seed`); the
//! evaluation-time clock is `Date.now()`.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod audit;
mod compile;
mod decide;
mod listing;

pub use compile::compile_value;
pub use decide::decide_value;

use wasm_bindgen::prelude::wasm_bindgen;

/// Compile a policy. `request`: `{"modules": {name: source}, "data": {…},
/// "settings": {…}}`. Returns JSON: `{"ok": true, "revision", "engine",
/// "warnings": [problem]}` or `{"ok": false, "errors": [problem],
/// "warnings": […]}`; a problem is `{"module", "line", "column",
/// "location", "message", "code"?, "suggestion"?}`.
#[wasm_bindgen]
pub fn compile(request: &str) -> String {
    respond(parse(request).map(|r| compile_value(&r)))
}

/// Decide recorded messages. `request`: the policy (as [`compile`]) plus
/// `message` (one message text: a JSON-RPC body, a batch, or a captured
/// HTTP request), `messages` (an array of message texts), or `session` (one
/// text: a JSON array of messages, or JSON Lines), `headers` (`{name: value}` added to every request),
/// `protocol_version` (the `mcp-protocol-version` header), `identity`
/// (`claims`, `principal`, `source_address`, `tls_version`, `mtls`,
/// `route_name`, `cluster_name`), `tools` (a `tools/list` answer), `now_ms`,
/// `seed` (32 numbers, decision ids); or, instead of messages, `audit` (the
/// text of an audit log: each event decided again next to its recorded
/// decision). Returns JSON: `{"ok": true, "policy",
/// "results": [report]}` or `{"ok": false, "errors": […]}`.
#[wasm_bindgen]
pub fn decide(request: &str) -> String {
    respond(parse(request).map(|r| decide_value(&r)))
}

/// The version of this build (the workspace's).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

fn parse(request: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(request).map_err(|e| format!("the request is not JSON: {e}"))
}

fn respond(r: Result<serde_json::Value, String>) -> String {
    let v = r.unwrap_or_else(
        |e| serde_json::json!({"ok": false, "errors": [{"message": e}], "warnings": []}),
    );
    serde_json::to_string(&v).unwrap_or_else(|_| "{\"ok\":false}".into())
}

/// The evaluation-time clock: microseconds, from the page's `Date.now()`.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
fn page_clock() -> u64 {
    (js_sys::Date::now() * 1000.0) as u64
}

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
fn page_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

// Native only: the wasm32 runs (`make web-test`) take wasm_bindgen_test
// tests, which crates/web/tests/ holds.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
