//! Recorded messages decided in order with one session store, through
//! `mcp_policy_core::replay` (the code behind `mcp-policy eval`).

use crate::compile::{failed, Bundle, Problem};
use crate::listing::{self, ToolsAnswer};
use mcp_policy_core::mcp::attributes::Needs;
use mcp_policy_core::observe::audit;
use mcp_policy_core::pipeline::request::Plugin;
use mcp_policy_core::replay::drive::{drive, http_request};
use mcp_policy_core::replay::explain::Explainer;
use mcp_policy_core::replay::message::{self, CaptureAttributes, ReadOptions, Request};
use mcp_policy_core::replay::report;
use mcp_policy_core::state::store::MemoryStore;
use serde_json::{json, Value};

/// The messages to decide, in order: `message` (one text; a JSON array
/// there is a batch), `messages` (texts), or `session` (one text: a JSON
/// array of messages, or JSON Lines, one per line).
pub fn messages_of(request: &Value) -> Result<Vec<String>, String> {
    if let Some(one) = request.get("message") {
        return match one.as_str() {
            Some(text) => Ok(vec![text.to_string()]),
            None => Err("`message` must be the text of a message".into()),
        };
    }
    if let Some(list) = request.get("messages") {
        let Some(items) = list.as_array() else {
            return Err("`messages` must be an array of message texts".into());
        };
        return items
            .iter()
            .map(|m| match m {
                Value::String(s) => Ok(s.clone()),
                other => serde_json::to_string(other).map_err(|e| e.to_string()),
            })
            .collect();
    }
    match request.get("session").and_then(Value::as_str) {
        Some(text) => split_session(text),
        None => Err(
            "give `message` (text), `messages` (an array of message texts) or `session` (text)"
                .into(),
        ),
    }
}

/// A session: a JSON array whose elements are messages (`mcp-policy eval
/// --session`), or JSON Lines (one message per non-blank line).
pub fn split_session(text: &str) -> Result<Vec<String>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        if let Ok(items) = serde_json::from_str::<Vec<Box<serde_json::value::RawValue>>>(trimmed) {
            return Ok(items.into_iter().map(|r| r.get().to_string()).collect());
        }
    }
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return Err("the session has no messages".into());
    }
    Ok(lines)
}

fn headers_of(request: &Value) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    match request.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                match v.as_str() {
                    Some(s) => out.push((k.clone(), s.to_string())),
                    None => return Err(format!("header {k:?}: the value must be a string")),
                }
            }
        }
        Some(_) => return Err("`headers` must be an object {name: value}".into()),
    }
    if let Some(v) = request
        .get("protocol_version")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    {
        out.push(("mcp-protocol-version".into(), v.to_string()));
    }
    Ok(out)
}

fn identity_of(request: &Value) -> Result<CaptureAttributes, String> {
    match request.get("identity") {
        None | Some(Value::Null) => Ok(CaptureAttributes::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("identity: {e}")),
    }
}

fn seed_of(request: &Value) -> Option<[u8; 32]> {
    let items = request.get("seed")?.as_array()?;
    let mut seed = [0u8; 32];
    for (d, s) in seed.iter_mut().zip(items) {
        *d = u8::try_from(s.as_u64()?).ok()?;
    }
    Some(seed)
}

/// `v[key] = x` on an object (every report is one), without indexing.
pub(crate) fn set(v: &mut Value, key: &str, x: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.into(), x);
    }
}

/// One page's run: the policy, the session store and what the page adds
/// to every request; messages are decided through it in order.
pub(crate) struct Run {
    plugin: Plugin,
    needs: Needs,
    explainer: Result<Explainer, String>,
    store: MemoryStore,
    headers: Vec<(String, String)>,
    identity: CaptureAttributes,
    tools: Option<ToolsAnswer>,
    remembered: bool,
    print_input: bool,
    pub now_ms: u64,
}

impl Run {
    /// One request driven through the filter's request path: the report of
    /// `mcp-policy eval --format json`, plus `list` for a filtered
    /// `tools/list` answer.
    pub fn decide(&mut self, i: usize, mut req: Request, now_ms: u64) -> Value {
        message::set_headers(&mut req, &self.headers);
        req.attributes.overlay(&self.identity);
        // Tool definitions, as if the upstream had answered tools/list
        // before the first message.
        if let (Some(t), false) = (&self.tools, self.remembered) {
            match http_request(&req, self.needs) {
                Ok(http) => {
                    let upstream = mcp_policy_core::pipeline::request::upstream_of(&http);
                    mcp_policy_core::catalog::tools::remember(
                        &self.store,
                        &upstream,
                        &t.tools,
                        true,
                    );
                    self.remembered = true;
                }
                Err(e) => return json!({"index": i, "error": e}),
            }
        }
        let (outcome, mut entries) =
            match drive(&mut self.plugin, &req, self.needs, &self.store, now_ms) {
                Ok(d) => d,
                Err(e) => return json!({"index": i, "error": e}),
            };
        if let Ok(x) = &mut self.explainer {
            for e in &mut entries {
                if let Some(ev) = &e.evaluation {
                    e.explanation = Some(x.explain(&ev.input));
                }
            }
        }
        let location = |module: &str, line: u32, col: u32| format!("{module}:{line}:{col}");
        let explain_error = self.explainer.as_ref().err().map(String::as_str);
        let messages: Vec<Value> = entries
            .iter()
            .enumerate()
            .map(|(j, e)| report::message_json(j, e, &location, self.print_input, explain_error))
            .collect();
        let (forwarded, reply, forward) = report::outcome_json(&outcome, false);
        let mut out = json!({
            "index": i,
            "decision": if forwarded { "allow" } else { "deny" },
            "forwarded": forwarded,
            "message_form": req.form,
            "reply": reply,
            "forward": forward,
            "messages": messages,
        });
        if let Some(t) = &self.tools {
            let store = &self.store;
            if let Some(list) =
                listing::filter(&mut self.plugin, &outcome, &entries, t, store, now_ms)
            {
                set(&mut out, "list", list);
            }
        }
        out
    }
}

/// `decide`: every message in order, one report each (the JSON of
/// `mcp-policy eval --format json --print-input`, without `session`); with
/// `audit`, each event of an audit log with its recorded decision.
pub fn decide_value(request: &Value) -> Value {
    let bundle = match Bundle::from_request(request) {
        Ok(b) => b,
        Err(e) => return failed(&[Problem::plain(e)], &[]),
    };
    let inputs = (|| -> Result<_, String> {
        Ok((
            headers_of(request)?,
            identity_of(request)?,
            ToolsAnswer::from_request(request)?,
        ))
    })();
    let (headers, identity, tools) = match inputs {
        Ok(i) => i,
        Err(e) => return failed(&[Problem::plain(e)], &[]),
    };
    let config = match bundle.config() {
        Ok(c) => c,
        Err(p) => return failed(&[p], &[]),
    };
    let flag = |name: &str, default: bool| {
        request
            .get(name)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    };
    let opts = ReadOptions {
        raw: flag("raw", false),
        no_routing_headers: flag("no_routing_headers", false),
    };
    let needs = config.needs;
    let mut plugin = Plugin::from(config);
    plugin.policy.set_recording(true);
    plugin.clock = crate::page_clock;
    if let Some(seed) = seed_of(request) {
        plugin.ids = audit::Ids::new(seed);
    }
    let mut run = Run {
        plugin,
        needs,
        explainer: Explainer::new(&bundle.modules, bundle.data.as_ref()),
        store: MemoryStore::default(),
        headers,
        identity,
        tools,
        remembered: false,
        print_input: flag("print_input", true),
        now_ms: request
            .get("now_ms")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| crate::page_clock() / 1000),
    };
    let results = match request.get("audit") {
        Some(log) => match log.as_str() {
            Some(text) => crate::audit::decide(&mut run, text),
            None => Err("`audit` must be the text of an audit log".into()),
        },
        None => messages_of(request).map(|texts| {
            let now_ms = run.now_ms;
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| match message::read(text.as_bytes(), opts) {
                    Ok(req) => run.decide(i, req, now_ms),
                    Err(e) => json!({"index": i, "error": e}),
                })
                .collect()
        }),
    };
    let results: Vec<Value> = match results {
        Ok(r) => r,
        Err(e) => return failed(&[Problem::plain(e)], &[]),
    };
    json!({
        "ok": true,
        "policy": {
            "engine": run.plugin.policy.engine_kind().as_str(),
            "revision": run.plugin.policy.revision(),
            "modules": bundle.modules.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        },
        "results": results,
    })
}
