//! `mcp-policy check PATH...`

use super::{
    config_json, emit, emit_json, load, split_location, CheckArgs, Failure, Format, EXIT_FAIL,
    EXIT_OK,
};
use mcp_policy_core::config::settings::{Config, ConfigError};
use std::io::Write;

/// A located problem.
#[derive(Default)]
struct Problem {
    /// `file:line:col`, or a file, or nothing.
    location: Option<String>,
    message: String,
    /// The lint finding's code (`input-path`…), for findings of [`mcp_policy_core::policy::lint`].
    code: Option<&'static str>,
    /// Its suggested rewrite.
    suggestion: Option<String>,
}

impl Problem {
    fn text(&self, kind: &str) -> String {
        // Lint errors say so: `file:line:col: error: message; suggestion`.
        let kind = if kind.is_empty() && self.code.is_some() {
            "error"
        } else {
            kind
        };
        let message = match &self.suggestion {
            Some(s) => format!("{}; {s}", self.message),
            None => self.message.clone(),
        };
        match (&self.location, kind) {
            (Some(l), "") => format!("{l}: {message}"),
            (Some(l), k) => format!("{l}: {k}: {message}"),
            (None, "") => format!("error: {message}"),
            (None, k) => format!("{k}: {message}"),
        }
    }

    fn json(&self) -> serde_json::Value {
        let (file, line, column) = match &self.location {
            Some(l) => {
                let (f, l, c) = split_location(l);
                (Some(f), l, c)
            }
            None => (None, None, None),
        };
        let mut v = serde_json::json!({"file": file, "line": line, "column": column, "message": self.message});
        if let Some(obj) = v.as_object_mut() {
            if let Some(code) = self.code {
                obj.insert("code".into(), code.into());
            }
            if let Some(s) = &self.suggestion {
                obj.insert("suggestion".into(), s.clone().into());
            }
        }
        v
    }
}

pub(super) fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let loaded = match load::load(&args.paths) {
        Ok(l) => l,
        Err(e) if !e.usage => {
            let p = Problem {
                message: e.message,
                ..Problem::default()
            };
            report(args, out, &load::Loaded::default(), None, &[p], &[], true);
            return Ok(EXIT_FAIL);
        }
        Err(e) => return Err(e.into()),
    };
    let mut errors: Vec<Problem> = Vec::new();
    let mut warnings: Vec<Problem> = Vec::new();

    // 1. The policy, exactly as the filter's configuration compiles it.
    let mut config = None;
    if loaded.policy_modules().is_empty() {
        errors.push(Problem {
            location: None,
            message: "no policy modules (every .rego file given is a *_test.rego test)".into(),
            ..Problem::default()
        });
    } else {
        match config_json(&loaded, &[]) {
            Err(f) => errors.push(Problem {
                location: None,
                message: f.message,
                ..Problem::default()
            }),
            Ok(json) => match Config::from_json(&json) {
                Ok(c) => config = Some(c),
                Err(ConfigError::Policy(e)) => errors.push(Problem {
                    location: e.location.as_deref().map(|l| loaded.display_location(l)),
                    message: e.message,
                    ..Problem::default()
                }),
                Err(e) => errors.push(Problem {
                    location: None,
                    message: e.to_string(),
                    ..Problem::default()
                }),
            },
        }
    }

    // 2. Test modules: they must parse too (the filter never loads them).
    let mut parsed = regorus::Engine::new();
    parsed.set_rego_v0(false);
    for m in &loaded.modules {
        if let Err(e) = parsed.add_policy(m.name.clone(), m.source.clone()) {
            if m.is_test {
                let e =
                    mcp_policy_core::policy::engine::PolicyError::from_regorus(&e, Some(&m.name));
                errors.push(Problem {
                    location: e.location.as_deref().map(|l| loaded.display_location(l)),
                    message: e.message,
                    ..Problem::default()
                });
            }
        }
    }

    // 3. Static analyses (src/lint): input paths the documented input does
    //    not have, sprintf calls that cannot format, constructs regorus
    //    decides differently from OPA.
    let mut failing_warnings = 0usize;
    for f in mcp_policy_core::policy::lint::lint_parsed(parsed.get_modules()) {
        let file = loaded
            .display_of(&f.module)
            .unwrap_or(&f.module)
            .to_string();
        let p = Problem {
            location: Some(format!("{file}:{}:{}", f.line, f.column)),
            message: f.message,
            code: Some(f.code),
            suggestion: f.suggestion,
        };
        match f.severity {
            mcp_policy_core::policy::lint::Severity::Error => errors.push(p),
            mcp_policy_core::policy::lint::Severity::Warning => {
                if f.code == "input-path" && !args.allow_unknown_input {
                    failing_warnings += 1;
                }
                warnings.push(p);
            }
        }
    }
    if let Some(c) = &config {
        if let Some(reason) = c.policy.listing_fallback() {
            warnings.push(Problem {
                location: None,
                message: format!(
                    "the policy rewritten for listing did not compile, so every rule as written also decides lists (please report this): {}",
                    loaded.display_location(reason)
                ),
                ..Problem::default()
            });
        }
        if let Some(reason) = c.policy.rvm_fallback_reason() {
            warnings.push(Problem {
                location: None,
                message: format!(
                    "the policy runs on the interpreter (its steps bounded by max_instructions, its time by max_eval_ms) because the RVM compiler refused it: {}",
                    loaded.display_location(reason)
                ),
                ..Problem::default()
            });
        }
    }

    let failed =
        !errors.is_empty() || failing_warnings > 0 || (args.strict && !warnings.is_empty());
    report(
        args,
        out,
        &loaded,
        config.as_ref(),
        &errors,
        &warnings,
        failed,
    );
    Ok(if failed { EXIT_FAIL } else { EXIT_OK })
}

fn report(
    args: &CheckArgs,
    out: &mut dyn Write,
    loaded: &load::Loaded,
    config: Option<&Config>,
    errors: &[Problem],
    warnings: &[Problem],
    failed: bool,
) {
    let policy_files: Vec<&str> = loaded
        .modules
        .iter()
        .filter(|m| !m.is_test)
        .map(|m| m.display.as_str())
        .collect();
    let test_files: Vec<&str> = loaded
        .modules
        .iter()
        .filter(|m| m.is_test)
        .map(|m| m.display.as_str())
        .collect();
    let data_files: Vec<&str> = loaded
        .data_files
        .iter()
        .map(|d| d.display.as_str())
        .collect();
    let reads: Vec<&str> = config
        .map(|c| {
            let n = c.needs;
            [
                (n.identity, "identity"),
                (n.source, "source"),
                (n.connection, "connection"),
                (n.xds, "xds"),
                (n.state, "state"),
                (n.definition, "definition"),
            ]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, s)| s)
            .collect()
        })
        .unwrap_or_default();
    // Rule definitions that depend on the call (docs/input.md, "Listing").
    let listing: Vec<(&str, &mcp_policy_core::policy::listing::CallDependent)> = config
        .map(|c| {
            c.policy
                .call_dependent_rules()
                .iter()
                .map(|r| (loaded.display_of(&r.module).unwrap_or(&r.module), r))
                .collect()
        })
        .unwrap_or_default();
    if args.format == Format::Json {
        emit_json(
            out,
            &serde_json::json!({
                "ok": !failed,
                "engine": config.map(|c| c.policy.engine_kind().as_str()),
                "rvm_fallback_reason": config.and_then(|c| c.policy.rvm_fallback_reason()).map(|r| loaded.display_location(r)),
                "revision": config.map(|c| c.policy.revision()),
                "modules": policy_files,
                "tests": test_files,
                "data": data_files,
                "attributes": reads,
                "errors": errors.iter().map(Problem::json).collect::<Vec<_>>(),
                "warnings": warnings.iter().map(Problem::json).collect::<Vec<_>>(),
                "call_dependent": listing.iter().map(|(file, r)| {
                    serde_json::json!({
                        "file": file,
                        "line": r.line,
                        "rule": r.rule,
                        "because": r.because,
                        "when_listing": if r.relaxed { "relaxed" } else { "not_applied" },
                    })
                }).collect::<Vec<_>>(),
            }),
        );
        return;
    }
    for e in errors {
        emit(out, &format!("{}\n", e.text("")));
    }
    for w in warnings {
        emit(out, &format!("{}\n", w.text("warning")));
    }
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let files = format!(
        "{}, {}, {}",
        count(policy_files.len(), "module"),
        count(test_files.len(), "test module"),
        count(data_files.len(), "data file")
    );
    match config {
        Some(c) if !failed => {
            let attrs = if reads.is_empty() {
                String::new()
            } else {
                format!("; reads {}", reads.join(", "))
            };
            emit(
                out,
                &format!(
                    "ok: {files}; engine {}; revision {}{attrs}{}\n",
                    c.policy.engine_kind().as_str(),
                    c.policy.revision(),
                    if warnings.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", count(warnings.len(), "warning"))
                    }
                ),
            );
        }
        _ => {
            let warned = if warnings.is_empty() {
                String::new()
            } else {
                format!(", {}", count(warnings.len(), "warning"))
            };
            emit(
                out,
                &format!(
                    "failed: {files}; {}{warned}\n",
                    count(errors.len(), "error")
                ),
            )
        }
    }
    for (file, r) in &listing {
        let what = if r.relaxed {
            "applied when listing without its conditions on the call"
        } else {
            "not applied when listing"
        };
        emit(
            out,
            &format!(
                "{file}:{}: {} depends on the call ({}): {what}\n",
                r.line, r.rule, r.because
            ),
        );
    }
}
