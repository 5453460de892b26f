//! `mcp-policy eval PATH... MESSAGE`
//!
//! The message goes through `pipeline::Plugin` exactly as the proxy-wasm
//! adapter (crates/filter/src/proxy/http/) drives it: the request headers (with the request
//! attributes the policy can read), then, unless the pipeline answered at
//! the headers, the whole body. The policy records every evaluation it
//! makes ([`mcp_policy_core::policy::engine::Policy::set_recording`]), so the output shows the
//! very inputs and results of the request path; [`super::explain`] adds
//! which rule definitions produced them.

use super::explain::{Explainer, Explanation};
use super::message::{self, CaptureAttributes, ReadOptions, Request};
use super::{config_json, emit, emit_json, load, EvalArgs, Failure, Format, EXIT_FAIL, EXIT_OK};
use mcp_policy_core::config::settings::{Config, ConfigError};
use mcp_policy_core::mcp::attributes::Needs;
use mcp_policy_core::mcp::jsonrpc::{self, Body};
use mcp_policy_core::pipeline::request::{
    BodyAction, Decided, Forward, HeadersAction, LocalReply, Plugin,
};
use mcp_policy_core::policy::engine::{Evaluation, PolicyResult};
use mcp_policy_core::policy::input::HttpRequest;
use mcp_policy_core::state::store::MemoryStore;
use std::io::{Read, Write};
use std::path::Path;

/// What the filter did with the request.
enum Outcome {
    Forwarded(Forward),
    Replied(LocalReply),
}

/// One message (or the transport request) and what happened to it.
struct Entry {
    kind: String,
    method: Option<String>,
    name: Option<String>,
    id: Option<String>,
    decided: Option<Decided>,
    evaluation: Option<Evaluation>,
    explanation: Option<Result<Explanation, String>>,
    /// A batch element that is not a valid message.
    invalid: Option<String>,
}

pub(super) fn run(args: &EvalArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let (policy_paths, message_path) = split_paths(args)?;
    let loaded = load::load(&policy_paths)?;
    if loaded.policy_modules().is_empty() {
        return Err(Failure::usage(
            "no policy modules given (only *_test.rego files)",
        ));
    }
    let json = config_json(&loaded, &args.set)?;
    let config = Config::from_json(&json).map_err(|e| Failure {
        code: match e {
            ConfigError::Policy(_) => EXIT_FAIL,
            _ => super::EXIT_USAGE,
        },
        message: match e {
            ConfigError::Policy(p) => format!(
                "policy does not compile: {}",
                match &p.location {
                    Some(l) => format!("{}: {}", loaded.display_location(l), p.message),
                    None => p.message.clone(),
                }
            ),
            other => other.to_string(),
        },
    })?;
    let needs = config.needs;
    let mut plugin = Plugin::from(config);
    plugin.policy.set_recording(true);
    let data = loaded.data()?;
    let mut explainer = Explainer::new(&loaded.policy_modules(), data.as_ref());
    let store = MemoryStore::default();
    let mut replayed: Vec<(String, bool)> = Vec::new();

    let (outcome, mut entries, form) = match &args.input {
        Some(path) => {
            let text = read_file(path)?;
            let v: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| Failure::usage(format!("{}: not JSON: {e}", path.display())))?;
            let input = mcp_policy_core::policy::engine::json_to_value(&v)
                .map_err(|e| Failure::usage(e.to_string()))?;
            let result = plugin.policy.evaluate(input);
            let allowed = matches!(&result, Ok(r) if r.permits());
            let entry = Entry {
                kind: "input".into(),
                method: v
                    .pointer("/mcp/method")
                    .and_then(|m| m.as_str())
                    .map(str::to_string),
                name: None,
                id: None,
                decided: None,
                evaluation: plugin.policy.take_recorded().into_iter().next(),
                explanation: None,
                invalid: None,
            };
            (Outcome::from_input(allowed), vec![entry], "input document")
        }
        None => {
            let bytes = read_file(message_path.as_deref().unwrap_or(Path::new("-")))?;
            let mut req = message::read(
                &bytes,
                ReadOptions {
                    raw: args.raw,
                    no_routing_headers: args.no_routing_headers,
                },
            )
            .map_err(|e| Failure::usage(format!("{}: {e}", display(message_path.as_deref()))))?;
            message::set_headers(&mut req, &args.header);
            let flags = identity_flags(args)?;
            req.attributes.overlay(&flags);
            // Tool definitions, as if the upstream had answered tools/list.
            if let Some(tools) = tool_definitions(args)? {
                let upstream =
                    mcp_policy_core::pipeline::request::upstream_of(&http_request(&req, needs)?);
                mcp_policy_core::catalog::tools::remember(&store, &upstream, &tools, true);
            }
            // Earlier messages of the session, decided first with the same
            // store, so the message sees their history and rates.
            for (i, earlier) in session_messages(args)?.into_iter().enumerate() {
                let mut r = message::read(
                    &earlier,
                    ReadOptions {
                        raw: false,
                        no_routing_headers: args.no_routing_headers,
                    },
                )
                .map_err(|e| Failure::usage(format!("--session message {i}: {e}")))?;
                message::set_headers(&mut r, &args.header);
                r.attributes.overlay(&flags);
                let (o, entries) = drive(&mut plugin, &r, needs, &store)?;
                replayed.push(summary(i, &o, &entries));
            }
            let (outcome, entries) = drive(&mut plugin, &req, needs, &store)?;
            (outcome, entries, req.form)
        }
    };
    if let Ok(x) = &mut explainer {
        for e in &mut entries {
            if let Some(ev) = &e.evaluation {
                e.explanation = Some(x.explain(&ev.input));
            }
        }
    }
    let explain_error = explainer.as_ref().err().cloned();
    let forwarded = matches!(outcome, Outcome::Forwarded(_));
    if args.format == Format::Json {
        let mut j = json_report(
            args,
            &loaded,
            &plugin,
            &outcome,
            &entries,
            form,
            explain_error.as_deref(),
        );
        if let Some(o) = j.as_object_mut() {
            let session: Vec<serde_json::Value> = replayed
                .iter()
                .map(|(what, fwd)| serde_json::json!({"message": what, "decision": if *fwd { "allow" } else { "deny" }}))
                .collect();
            o.insert("session".into(), session.into());
        }
        emit_json(out, &j);
    } else {
        let mut text = String::new();
        if !replayed.is_empty() {
            text.push_str("session (decided first, in order):\n");
            for (what, fwd) in &replayed {
                text.push_str(&format!(
                    "  {what}: {}\n",
                    if *fwd { "allow" } else { "deny" }
                ));
            }
        }
        text.push_str(&text_report(
            args,
            &loaded,
            &plugin,
            &outcome,
            &entries,
            form,
            explain_error.as_deref(),
        ));
        emit(out, &text);
    }
    Ok(if forwarded { EXIT_OK } else { EXIT_FAIL })
}

impl Outcome {
    /// `--input`: no request path, only the policy's answer.
    fn from_input(allowed: bool) -> Outcome {
        if allowed {
            Outcome::Forwarded(Forward::default())
        } else {
            Outcome::Replied(LocalReply {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                log: String::new(),
            })
        }
    }
}

fn split_paths(
    args: &EvalArgs,
) -> Result<(Vec<std::path::PathBuf>, Option<std::path::PathBuf>), Failure> {
    if args.input.is_some() || args.message.is_some() {
        return Ok((args.paths.clone(), args.message.clone()));
    }
    match args.paths.split_last() {
        Some((msg, rest)) if !rest.is_empty() => Ok((rest.to_vec(), Some(msg.clone()))),
        _ => Err(Failure::usage(
            "eval needs policy PATHs and a MESSAGE file (the last argument, or --message FILE, or --input FILE)",
        )),
    }
}

fn display(p: Option<&Path>) -> String {
    p.map(|p| p.display().to_string())
        .unwrap_or_else(|| "-".into())
}

fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::usage(format!("standard input: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn identity_flags(args: &EvalArgs) -> Result<CaptureAttributes, Failure> {
    let a = &args.identity;
    let claims = match &a.claims {
        Some(p) => {
            let text = read_file(p)?;
            Some(
                serde_json::from_slice::<serde_json::Value>(&text)
                    .map_err(|e| Failure::usage(format!("{}: not JSON: {e}", p.display())))?,
            )
        }
        None => None,
    };
    Ok(CaptureAttributes {
        claims,
        principal: a.principal.clone(),
        source_address: a.source_address.clone(),
        tls_version: a.tls_version.clone(),
        mtls: a.mtls.then_some(true),
        route_name: a.route_name.clone(),
        cluster_name: a.cluster_name.clone(),
    })
}

/// The messages of `--session FILE`: a JSON array whose elements are
/// message files' contents (a JSON-RPC body or a capture).
fn session_messages(args: &EvalArgs) -> Result<Vec<Vec<u8>>, Failure> {
    let Some(path) = &args.identity.session else {
        return Ok(Vec::new());
    };
    let text = read_file(path)?;
    let items: Vec<Box<serde_json::value::RawValue>> =
        serde_json::from_slice(&text).map_err(|e| {
            Failure::usage(format!(
                "{}: expected a JSON array of messages: {e}",
                path.display()
            ))
        })?;
    Ok(items
        .into_iter()
        .map(|r| r.get().as_bytes().to_vec())
        .collect())
}

/// One line about a replayed message.
fn summary(i: usize, o: &Outcome, entries: &[Entry]) -> (String, bool) {
    let what: Vec<String> = entries
        .iter()
        .map(|e| {
            let mut t = e.method.clone().unwrap_or_else(|| e.kind.clone());
            if let Some(n) = &e.name {
                t.push_str(&format!(" {n:?}"));
            }
            t
        })
        .collect();
    let what = if what.is_empty() {
        "(refused before the policy)".to_string()
    } else {
        what.join(", ")
    };
    (format!("[{i}] {what}"), matches!(o, Outcome::Forwarded(_)))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The request as the filter sees it: headers and the attributes it reads.
fn http_request(req: &Request, needs: Needs) -> Result<HttpRequest, Failure> {
    let mut http = HttpRequest::from_headers(req.headers.clone());
    let attributes = req.attributes.to_attributes().map_err(Failure::usage)?;
    http.attributes = attributes.visible(needs);
    Ok(http)
}

/// `--tools FILE`: tool definitions, as the upstream would list them: a
/// `tools/list` response, its `result`, or the array of tools.
fn tool_definitions(args: &EvalArgs) -> Result<Option<Vec<serde_json::Value>>, Failure> {
    let Some(path) = &args.identity.tools else {
        return Ok(None);
    };
    let text = read_file(path)?;
    let v: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Failure::usage(format!("{}: not JSON: {e}", path.display())))?;
    let tools = v
        .pointer("/result/tools")
        .or_else(|| v.get("tools"))
        .unwrap_or(&v)
        .as_array()
        .cloned()
        .ok_or_else(|| {
            Failure::usage(format!(
                "{}: expected a tools/list response, its result, or an array of tools",
                path.display()
            ))
        })?;
    Ok(Some(tools))
}

/// Drive the pipeline as the adapter's HTTP context does: headers (with the request
/// attributes the policy reads), then, unless answered, the whole body
/// with the session store.
fn drive(
    plugin: &mut Plugin,
    req: &Request,
    needs: Needs,
    store: &MemoryStore,
) -> Result<(Outcome, Vec<Entry>), Failure> {
    let http = http_request(req, needs)?;
    let end_of_stream = req.body.is_none();
    let action = plugin.on_request_headers(&http, end_of_stream);
    let body = req.body.clone().unwrap_or_default();
    let (outcome, decided) = match action {
        HeadersAction::Forward(f) => (Outcome::Forwarded(f), Vec::new()),
        HeadersAction::Reply(r) => (Outcome::Replied(r), Vec::new()),
        HeadersAction::Inspect => match plugin.check_body_size(body.len()) {
            Some(r) => (Outcome::Replied(r), Vec::new()),
            None => {
                let (a, d) = plugin.on_request_body_with(&http, &body, Some((store, now_ms())));
                match a {
                    BodyAction::Forward(f) => (Outcome::Forwarded(f), d),
                    BodyAction::Reply(r) => (Outcome::Replied(r), d),
                }
            }
        },
    };
    let evaluations = plugin.policy.take_recorded();
    let mut entries = Vec::new();
    if decided.is_empty() {
        // A transport request (decided at the headers), or a request
        // answered before the policy ran.
        if let Some(ev) = evaluations.into_iter().next() {
            entries.push(Entry {
                kind: "transport".into(),
                method: Some(http.method.clone()),
                name: Some(http.path.clone()),
                id: None,
                decided: None,
                evaluation: Some(ev),
                explanation: None,
                invalid: None,
            });
        }
        return Ok((outcome, entries));
    }
    let items: Vec<Result<jsonrpc::Message<'_>, jsonrpc::Invalid>> = match jsonrpc::parse(&body) {
        Ok(Body::Single(m)) => vec![Ok(m)],
        Ok(Body::Batch(items)) => items,
        Err(_) => Vec::new(),
    };
    let batch = items.len() > 1 || matches!(jsonrpc::parse(&body), Ok(Body::Batch(_)));
    // Match each evaluation to its message: by `input.mcp.batch.index` in a
    // batch (a message denied before the policy, e.g. a session hijack, has
    // none).
    let mut by_index: Vec<Option<Evaluation>> =
        (0..items.len().max(decided.len())).map(|_| None).collect();
    for ev in evaluations {
        let index = if batch {
            match &ev.input["mcp"]["batch"]["index"] {
                regorus::Value::Number(n) => n.as_u64().map(|i| i as usize),
                _ => None,
            }
        } else {
            Some(0)
        };
        if let Some(slot) = index.and_then(|i| by_index.get_mut(i)) {
            *slot = Some(ev);
        }
    }
    for (i, d) in decided.into_iter().enumerate() {
        let evaluation = by_index.get_mut(i).and_then(Option::take);
        let entry = match items.get(i) {
            Some(Ok(m)) => Entry {
                kind: m.kind.as_str().into(),
                method: m.method().map(str::to_string),
                name: m.routing_name().map(str::to_string),
                id: m.id_raw.map(|r| r.get().to_string()),
                decided: Some(d),
                evaluation,
                explanation: None,
                invalid: None,
            },
            Some(Err(inv)) => Entry {
                kind: "invalid".into(),
                method: None,
                name: None,
                id: inv.id_raw.clone(),
                invalid: Some(inv.reason.clone()),
                decided: Some(d),
                evaluation: None,
                explanation: None,
            },
            None => Entry {
                kind: "message".into(),
                method: Some(d.method.clone()),
                name: None,
                id: None,
                decided: Some(d),
                evaluation,
                explanation: None,
                invalid: None,
            },
        };
        entries.push(entry);
    }
    Ok((outcome, entries))
}

fn json_input(ev: &Evaluation) -> serde_json::Value {
    ev.input
        .to_json_str()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn result_json(
    r: &Result<PolicyResult, mcp_policy_core::policy::engine::PolicyError>,
) -> serde_json::Value {
    match r {
        Ok(r) => serde_json::json!({"allow": r.allow, "deny": r.deny, "labels": r.labels}),
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}

fn body_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn rule_location(loaded: &load::Loaded, module: &str, line: u32, col: u32) -> String {
    format!(
        "{}:{line}:{col}",
        loaded.display_of(module).unwrap_or(module)
    )
}

fn json_report(
    args: &EvalArgs,
    loaded: &load::Loaded,
    plugin: &Plugin,
    outcome: &Outcome,
    entries: &[Entry],
    form: &str,
    explain_error: Option<&str>,
) -> serde_json::Value {
    let messages: Vec<serde_json::Value> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut m = serde_json::Map::new();
            m.insert("index".into(), i.into());
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
                if args.print_input {
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
                                "location": rule_location(loaded, &c.module, c.line, c.col),
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
        })
        .collect();
    let (forwarded, reply, forward) = match outcome {
        Outcome::Forwarded(f) => (
            true,
            serde_json::Value::Null,
            serde_json::json!({
                "body": f.body.as_deref().map(body_json),
                "request_headers": f.request_headers,
                "response_headers": f.response_headers,
            }),
        ),
        Outcome::Replied(_) if args.input.is_some() => {
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
    };
    serde_json::json!({
        "decision": if forwarded { "allow" } else { "deny" },
        "forwarded": forwarded,
        "message_form": form,
        "reply": reply,
        "forward": forward,
        "messages": messages,
        "policy": {
            "engine": plugin.policy.engine_kind().as_str(),
            "revision": plugin.policy.revision(),
            "modules": loaded.modules.iter().filter(|m| !m.is_test).map(|m| m.display.clone()).collect::<Vec<_>>(),
        },
    })
}

fn text_report(
    args: &EvalArgs,
    loaded: &load::Loaded,
    plugin: &Plugin,
    outcome: &Outcome,
    entries: &[Entry],
    form: &str,
    explain_error: Option<&str>,
) -> String {
    let mut s = String::new();
    let modules: Vec<&str> = loaded
        .modules
        .iter()
        .filter(|m| !m.is_test)
        .map(|m| m.display.as_str())
        .collect();
    s.push_str(&format!(
        "policy: {} (engine {}, revision {})\nmessage: {form}\n",
        modules.join(", "),
        plugin.policy.engine_kind().as_str(),
        short_revision(plugin.policy.revision()),
    ));
    let several = entries.len() > 1;
    for (i, e) in entries.iter().enumerate() {
        s.push('\n');
        let mut title = if several {
            format!("[{i}] {}", e.kind)
        } else {
            e.kind.clone()
        };
        if let Some(m) = &e.method {
            title.push_str(&format!(" {m}"));
        }
        if let Some(n) = &e.name {
            title.push_str(&format!(" {n:?}"));
        }
        if let Some(id) = &e.id {
            title.push_str(&format!(" (id {id})"));
        }
        s.push_str(&format!("{title}\n"));
        if let Some(inv) = &e.invalid {
            s.push_str(&format!("  invalid: {inv}\n"));
        }
        if let Some(ev) = &e.evaluation {
            match &ev.result {
                Ok(r) => {
                    let deny = if r.deny.is_empty() {
                        "{}".to_string()
                    } else {
                        format!(
                            "{{{}}}",
                            r.deny
                                .iter()
                                .map(|d| format!("{d:?}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    s.push_str(&format!(
                        "  policy:   allow == true: {}, deny = {deny}\n",
                        r.allow
                    ));
                    if !r.labels.is_empty() {
                        s.push_str(&format!("  labels:   {}\n", r.labels.join(", ")));
                    }
                }
                Err(err) => s.push_str(&format!("  policy:   evaluation failed: {err}\n")),
            }
            match &e.explanation {
                Some(Ok(x)) if !x.contributions.is_empty() => {
                    s.push_str("  rules:\n");
                    for c in &x.contributions {
                        let value = match (&c.value, c.is_default) {
                            (v, true) => {
                                format!("default allow := {v} (no other allow rule holds)")
                            }
                            (serde_json::Value::Array(items), false) => items
                                .iter()
                                .map(|i| {
                                    i.as_str()
                                        .map(|t| format!("{t:?}"))
                                        .unwrap_or_else(|| i.to_string())
                                })
                                .collect::<Vec<_>>()
                                .join(", "),
                            (v, false) => v.to_string(),
                        };
                        s.push_str(&format!(
                            "    {:<5}  {}  {value}\n",
                            c.rule,
                            rule_location(loaded, &c.module, c.line, c.col)
                        ));
                    }
                }
                Some(Ok(x)) => {
                    if x.allow.is_none() {
                        s.push_str(
                            "  rules:    no allow rule holds, and there is no default allow\n",
                        );
                    }
                }
                Some(Err(err))
                    if ev.result.is_ok()
                        && plugin.policy.engine_kind()
                            == mcp_policy_core::policy::engine::EngineKind::Rvm =>
                {
                    s.push_str(&format!("  rules:    (not available: {err})\n"));
                    s.push_str(
                        "  warning:  the interpreter fails on this input where the RVM did not: on the RVM a failing\n            \
                         expression is undefined, so a rule may have silently not fired (docs/policy.md, \"Differences from OPA\")\n",
                    );
                }
                Some(Err(err)) => s.push_str(&format!("  rules:    (not available: {err})\n")),
                None => {
                    if let Some(err) = explain_error {
                        s.push_str(&format!("  rules:    (not available: {err})\n"));
                    }
                }
            }
            if args.print_input {
                let text = serde_json::to_string_pretty(&json_input(ev)).unwrap_or_default();
                s.push_str("  input:\n");
                for line in text.lines() {
                    s.push_str(&format!("    {line}\n"));
                }
            }
        }
        let decision = match (&e.decided, &e.evaluation) {
            (Some(d), _) => Some((d.allowed, d.reasons.clone())),
            (None, Some(ev)) => Some(match &ev.result {
                Ok(r) if r.permits() => (true, Vec::new()),
                Ok(r) if r.deny.is_empty() => (
                    false,
                    vec!["no policy rule allows this message".to_string()],
                ),
                Ok(r) => (false, r.deny.clone()),
                Err(err) => (false, vec![format!("policy evaluation failed: {err}")]),
            }),
            _ => None,
        };
        if let Some((allowed, reasons)) = decision {
            if allowed {
                s.push_str("  decision: allow\n");
            } else {
                s.push_str(&format!("  decision: deny: {}\n", reasons.join("; ")));
            }
        }
    }
    s.push('\n');
    match outcome {
        Outcome::Forwarded(f) => {
            s.push_str(if args.input.is_some() {
                "result: allow\n"
            } else {
                "result: allow: the filter forwards the request to the server\n"
            });
            if let Some(b) = &f.body {
                s.push_str(&format!("rewritten body: {}\n", String::from_utf8_lossy(b)));
            }
            for (k, v) in &f.request_headers {
                s.push_str(&format!("request header set: {k}: {v}\n"));
            }
            for (k, v) in &f.response_headers {
                s.push_str(&format!("response header set: {k}: {v}\n"));
            }
        }
        Outcome::Replied(_) if args.input.is_some() => s.push_str("result: deny\n"),
        Outcome::Replied(r) => {
            let before = entries.is_empty();
            s.push_str(&format!(
                "result: deny: the filter answers HTTP {}{}; the server never sees the request\n",
                r.status,
                if before {
                    " before the policy runs"
                } else {
                    ""
                }
            ));
            if before {
                s.push_str(&format!("reason: {}\n", r.log));
            }
            for (k, v) in &r.headers {
                s.push_str(&format!("{k}: {v}\n"));
            }
            s.push_str(&format!("{}\n", String::from_utf8_lossy(&r.body)));
        }
    }
    s
}

fn short_revision(r: &str) -> &str {
    r.get(..19).unwrap_or(r)
}
