//! Server-sourced tool facts: the filter watches the upstream's answers to
//! `tools/list` (JSON or SSE) and remembers each tool's definition per
//! upstream, so a policy deciding a `tools/call` sees what the *server* says
//! the tool is (`input.mcp.tool.definition`: title, description, input
//! schema, annotations) — never what the client claims.
//!
//! Each definition is stored under its own shared-data key, so deciding a
//! call reads and parses one definition, not the whole list. An index per
//! upstream lets a later full listing forget tools the server dropped.

use crate::mcp::methods::{self, SubjectKind};
use crate::mcp::sse;
use crate::state::store::Store;

/// The member a tool definition is named by.
const TOOL_NAME: &str = SubjectKind::Tool.param();
use regorus::Value;

/// Largest tools/list response the watcher reads.
pub const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;
/// Largest single definition kept.
const MAX_DEFINITION_BYTES: usize = 64 * 1024;
/// Most tools kept per upstream.
const MAX_TOOLS: usize = 10_000;

fn tool_key(upstream: &str, name: &str) -> String {
    format!("mcp-policy/tool/{upstream}/{name}")
}

fn index_key(upstream: &str) -> String {
    format!("mcp-policy/tools/{upstream}")
}

/// Watches one `tools/list` response as it streams past (the response is
/// never held): collects the JSON body, or parses SSE events, and keeps the
/// `result.tools` of the response whose id matches the request's.
pub struct Watcher {
    id: serde_json::Value,
    sse: Option<sse::Parser>,
    buf: Vec<u8>,
    failed: bool,
    tools: Option<Vec<serde_json::Value>>,
}

impl Watcher {
    /// `id_raw`: the request's id as written; `content_type` of the
    /// response. `None` for a response that cannot carry the result.
    pub fn new(id_raw: &str, content_type: &str) -> Option<Watcher> {
        let id = serde_json::from_str(id_raw).ok()?;
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let sse = match media.as_str() {
            "application/json" => None,
            "text/event-stream" => Some(sse::Parser::new(MAX_LIST_BYTES)),
            _ => return None,
        };
        Some(Watcher {
            id,
            sse,
            buf: Vec::new(),
            failed: false,
            tools: None,
        })
    }

    /// Feed a chunk. On an SSE stream, returns the tools as soon as the
    /// event carrying them is complete — within the callback that sees its
    /// last bytes, so before the client can have read them (and call a
    /// tool). A JSON body is complete only at its end: see [`finish`].
    pub fn feed(&mut self, chunk: &[u8]) -> Option<Vec<serde_json::Value>> {
        if self.failed || self.tools.is_some() {
            return None;
        }
        match &mut self.sse {
            Some(p) => match p.feed(chunk) {
                Ok(events) => {
                    for e in events {
                        if let Some(msg) = read_message(e.data.as_bytes()) {
                            self.take(msg);
                        }
                    }
                    if self.tools.is_some() {
                        // Handed over once; `finish` then returns nothing.
                        self.failed = true;
                        return self.tools.take();
                    }
                }
                Err(_) => self.failed = true,
            },
            None => {
                if self.buf.len() + chunk.len() > MAX_LIST_BYTES {
                    self.failed = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
        }
        None
    }

    fn take(&mut self, mut msg: serde_json::Value) {
        if msg.get("id") != Some(&self.id) {
            return;
        }
        if let Some(serde_json::Value::Array(tools)) = msg
            .get_mut("result")
            .and_then(|r| r.get_mut(methods::TOOLS_MEMBER))
            .map(std::mem::take)
        {
            self.tools = Some(tools);
        }
    }

    /// The tools of the response, once the stream has ended.
    pub fn finish(mut self) -> Option<Vec<serde_json::Value>> {
        if self.sse.is_none() && !self.failed {
            if let Some(msg) = read_message(&self.buf) {
                self.take(msg);
            }
        }
        self.tools
    }
}

/// A message of the server's, read only if it passes the structural
/// pre-scan every body goes through ([`crate::mcp::jsonrpc::check_structure`]): the
/// definitions learnt from it are later read by regorus, which must never
/// see a number it would expand at great cost (`0e20000000`).
fn read_message(bytes: &[u8]) -> Option<serde_json::Value> {
    crate::mcp::jsonrpc::check_structure(bytes).ok()?;
    serde_json::from_slice(bytes).ok()
}

fn changed_key(upstream: &str) -> String {
    format!("mcp-policy/tools-changed/{upstream}")
}

/// The facts the filter adds to a definition as the server listed it:
/// `pin` (the tool's pin state: new, pinned, or changed since pinned —
/// observing it pins a tool seen for the first time) and `poisoning` (the
/// findings of the poisoning checks). A pin that cannot be kept fails
/// closed: status `changed`.
pub fn annotate(
    store: &dyn Store,
    upstream: &str,
    def: &serde_json::Value,
    now_ms: u64,
) -> serde_json::Value {
    let mut out = def.clone();
    let name = def
        .get(TOOL_NAME)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let hash = crate::catalog::pins::tool_hash(def);
    let pin = match crate::catalog::pins::Pins::new(store).observe(upstream, name, &hash, now_ms) {
        Ok(view) => view.to_json(),
        Err(e) => serde_json::json!({
            "status": "changed",
            "hash": hash,
            "pinned_hash": null,
            "pinned_at_ms": null,
            "error": format!("{e:?}"),
        }),
    };
    let poisoning: Vec<serde_json::Value> = crate::catalog::poison::scan_tool(def, &[])
        .iter()
        .map(crate::catalog::poison::PoisonFinding::to_json)
        .collect();
    if let Some(o) = out.as_object_mut() {
        o.insert("pin".into(), pin);
        o.insert("poisoning".into(), serde_json::Value::Array(poisoning));
        o.insert("learnt_at_ms".into(), serde_json::Value::from(now_ms));
    }
    out
}

/// The server announced `notifications/tools/list_changed`: definitions
/// learnt before now are stale until the next listing.
pub fn note_list_changed(store: &dyn Store, upstream: &str, now_ms: u64) {
    let _ = store.set(&changed_key(upstream), now_ms.to_string().as_bytes(), None);
}

/// Remember `tools` for `upstream`, each with its pin and poisoning facts
/// ([`annotate`]); returns the annotated definitions. `replace`: this is a
/// complete first page (no cursor), so tools missing from it are
/// forgotten.
pub fn remember_at(
    store: &dyn Store,
    upstream: &str,
    tools: &[serde_json::Value],
    replace: bool,
    now_ms: u64,
) -> Vec<serde_json::Value> {
    let annotated: Vec<serde_json::Value> = tools
        .iter()
        .take(MAX_TOOLS)
        .map(|t| annotate(store, upstream, t, now_ms))
        .collect();
    remember(store, upstream, &annotated, replace);
    annotated
}

/// Remember `tools` (as given) for `upstream`. `replace`: this is a
/// complete first page (no cursor), so tools missing from it are forgotten.
pub fn remember(store: &dyn Store, upstream: &str, tools: &[serde_json::Value], replace: bool) {
    let mut names: Vec<String> = Vec::new();
    for t in tools.iter().take(MAX_TOOLS) {
        let Some(name) = t.get(TOOL_NAME).and_then(serde_json::Value::as_str) else {
            continue;
        };
        let Ok(bytes) = serde_json::to_vec(t) else {
            continue;
        };
        if bytes.len() > MAX_DEFINITION_BYTES {
            continue;
        }
        let _ = store.set(&tool_key(upstream, name), &bytes, None);
        names.push(name.to_string());
    }
    let old: Vec<String> = store
        .get(&index_key(upstream))
        .and_then(|(b, _)| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let index: Vec<String> = if replace {
        for gone in old.iter().filter(|n| !names.contains(n)) {
            let _ = store.set(&tool_key(upstream, gone), b"", None);
        }
        names
    } else {
        let mut all = old;
        for n in names {
            if !all.contains(&n) {
                all.push(n);
            }
        }
        all.truncate(MAX_TOOLS);
        all
    };
    if let Ok(bytes) = serde_json::to_vec(&index) {
        let _ = store.set(&index_key(upstream), &bytes, None);
    }
}

/// The remembered definition of `name` at `upstream`. When the server has
/// announced `notifications/tools/list_changed` since it was learnt,
/// `pin.stale` is true (the definition may no longer be the server's).
pub fn definition(store: &dyn Store, upstream: &str, name: &str) -> Option<Value> {
    let (bytes, _) = store.get(&tool_key(upstream, name))?;
    if bytes.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(&bytes).ok()?;
    let mut v = Value::from_json_str(text).ok()?;
    let changed_at = store
        .get(&changed_key(upstream))
        .and_then(|(b, _)| std::str::from_utf8(&b).ok()?.parse::<u64>().ok());
    if let Some(at) = changed_at {
        let learnt = v["learnt_at_ms"].as_u64().unwrap_or(0);
        if learnt <= at {
            if let Ok(o) = v.as_object_mut() {
                if let Some(Ok(pin)) = o.get_mut(&Value::from("pin")).map(Value::as_object_mut) {
                    pin.insert(Value::from("stale"), Value::from(true));
                }
            }
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::MemoryStore;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const LIST: &str = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo","description":"Echo","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true}},{"name":"rm","inputSchema":{"type":"object"},"annotations":{"destructiveHint":true}}]}}"#;

    #[test]
    fn json_responses_in_chunks() {
        let mut w = Watcher::new("3", "application/json").unwrap();
        for c in LIST.as_bytes().chunks(7) {
            w.feed(c);
        }
        let tools = w.finish().unwrap();
        assert_eq!(tools.len(), 2);
    }

    #[test]
    fn definitions_that_fail_the_pre_scan_are_not_learnt() {
        // A number regorus would expand (read later as the definition), a
        // lone surrogate, deep nesting: the list is not learnt at all.
        for bad in [
            r#"{"default":0e20000000}"#,
            r#"{"x":"\ud800"}"#,
            &format!("{}{}", "[".repeat(200), "]".repeat(200)),
        ] {
            let list = LIST.replace(
                r#"{"type":"object"}"#,
                &format!(r#"{{"type":"object","x":{bad}}}"#),
            );
            let mut w = Watcher::new("3", "application/json").unwrap();
            w.feed(list.as_bytes());
            assert!(w.finish().is_none(), "{bad}");
            let mut w = Watcher::new("3", "text/event-stream").unwrap();
            assert!(
                w.feed(format!("data: {list}\n\n").as_bytes()).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn sse_responses_with_notifications_first() {
        let stream = format!(
            "event: message\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{}}}}\r\n\r\nevent: message\r\ndata: {LIST}\r\n\r\n"
        );
        let mut w = Watcher::new("3", "text/event-stream; charset=utf-8").unwrap();
        let mut found = None;
        for c in stream.as_bytes().chunks(5) {
            if let Some(t) = w.feed(c) {
                assert!(found.is_none(), "handed over once");
                found = Some(t);
            }
        }
        assert_eq!(found.unwrap().len(), 2);
        assert!(w.finish().is_none());
    }

    #[test]
    fn other_ids_and_types_are_ignored() {
        let mut w = Watcher::new("\"x\"", "application/json").unwrap();
        w.feed(LIST.as_bytes());
        assert!(w.finish().is_none());
        assert!(Watcher::new("3", "text/html").is_none());
    }

    #[test]
    fn remember_replace_and_merge() {
        let store = MemoryStore::default();
        let tools: serde_json::Value = serde_json::from_str(LIST).unwrap();
        let tools = tools["result"]["tools"].as_array().unwrap().clone();
        remember(&store, "c1", &tools, true);
        let d = definition(&store, "c1", "echo").unwrap();
        assert_eq!(d["annotations"]["readOnlyHint"], Value::from(true));
        assert!(definition(&store, "c2", "echo").is_none());
        // A later complete listing without rm forgets it.
        remember(&store, "c1", &tools[..1], true);
        assert!(definition(&store, "c1", "rm").is_none());
        // A cursor page merges.
        remember(&store, "c1", &tools[1..], false);
        assert!(definition(&store, "c1", "rm").is_some());
        assert!(definition(&store, "c1", "echo").is_some());
    }
}
