//! `mcp-policy eval PATH... MESSAGE`
//!
//! The message goes through `pipeline::Plugin` exactly as the proxy-wasm
//! adapter (crates/filter/src/proxy/http/) drives it: the request headers (with the request
//! attributes the policy can read), then, unless the pipeline answered at
//! the headers, the whole body. The policy records every evaluation it
//! makes ([`mcp_policy_core::policy::engine::Policy::set_recording`]), so the output shows the
//! very inputs and results of the request path; [`super::explain`] adds
//! which rule definitions produced them.

use super::explain::Explainer;
use super::message::{self, CaptureAttributes, ReadOptions};
use super::{config_json, emit, emit_json, load, EvalArgs, Failure, Format, EXIT_FAIL, EXIT_OK};
use mcp_policy_core::config::settings::{Config, ConfigError};
use mcp_policy_core::pipeline::request::Plugin;
use mcp_policy_core::replay::drive::{drive, http_request, summary, Entry, Outcome};
use mcp_policy_core::replay::report::{self, json_input};
use mcp_policy_core::state::store::MemoryStore;
use std::io::{Read, Write};
use std::path::Path;

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
                let upstream = mcp_policy_core::pipeline::request::upstream_of(
                    &http_request(&req, needs).map_err(Failure::usage)?,
                );
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
                let (o, entries) =
                    drive(&mut plugin, &r, needs, &store, now_ms()).map_err(Failure::usage)?;
                replayed.push(summary(i, &o, &entries));
            }
            let (outcome, entries) =
                drive(&mut plugin, &req, needs, &store, now_ms()).map_err(Failure::usage)?;
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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
    let location = |module: &str, line: u32, col: u32| rule_location(loaded, module, line, col);
    let messages: Vec<serde_json::Value> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| report::message_json(i, e, &location, args.print_input, explain_error))
        .collect();
    let (forwarded, reply, forward) = report::outcome_json(outcome, args.input.is_some());
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
