//! A policy compiled exactly as the filter's configuration compiles it
//! (`Config::from_json` on `{"policy": {"modules", "data"}, …settings}`,
//! what `mcp-policy check`/`eval` build from files), plus the static lint
//! `mcp-policy check` runs.

use mcp_policy_core::config::settings::{Config, ConfigError};
use mcp_policy_core::policy::engine::PolicyError;
use mcp_policy_core::policy::lint::{self, Severity};
use serde_json::{json, Map, Value};

/// The policy part of a request: modules (tests excluded, as the filter
/// never loads them) and the data document.
pub(crate) struct Bundle {
    pub modules: Vec<(String, String)>,
    pub data: Option<Value>,
    pub settings: Map<String, Value>,
}

impl Bundle {
    pub fn from_request(r: &Value) -> Result<Bundle, String> {
        let modules = match r.get("modules") {
            Some(Value::Object(m)) => m
                .iter()
                .filter(|(name, _)| !name.ends_with("_test.rego"))
                .map(|(name, src)| match src.as_str() {
                    Some(s) => Ok((name.clone(), s.to_string())),
                    None => Err(format!("module {name:?}: the source must be a string")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("`modules` must be an object {name: source}".into()),
        };
        if modules.is_empty() {
            return Err("no policy modules given (only *_test.rego modules)".into());
        }
        let data = match r.get("data") {
            None | Some(Value::Null) => None,
            Some(d @ Value::Object(_)) => Some(d.clone()),
            Some(_) => return Err("data must be a JSON object".into()),
        };
        let settings = match r.get("settings") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(s)) => s.clone(),
            Some(_) => return Err("settings must be a JSON object".into()),
        };
        Ok(Bundle {
            modules,
            data,
            settings,
        })
    }

    /// The filter configuration: exactly what the filter would be given.
    pub fn config(&self) -> Result<Config, Problem> {
        let modules: Map<String, Value> = self
            .modules
            .iter()
            .map(|(n, s)| (n.clone(), Value::String(s.clone())))
            .collect();
        let mut policy = Map::new();
        policy.insert("modules".into(), Value::Object(modules));
        if let Some(d) = &self.data {
            policy.insert("data".into(), d.clone());
        }
        let mut cfg = Map::new();
        cfg.insert("policy".into(), Value::Object(policy));
        for (k, v) in &self.settings {
            cfg.insert(k.clone(), v.clone());
        }
        let json = serde_json::to_vec(&Value::Object(cfg)).map_err(Problem::plain)?;
        Config::from_json(&json).map_err(|e| match e {
            ConfigError::Policy(p) => Problem::of_policy(&p),
            other => Problem::plain(other),
        })
    }
}

/// An error or a warning, at a module's line and column when known.
#[derive(Debug, Clone, Default)]
pub(crate) struct Problem {
    pub module: Option<String>,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
    pub code: Option<&'static str>,
    pub suggestion: Option<String>,
}

impl Problem {
    pub fn plain(message: impl std::fmt::Display) -> Problem {
        Problem {
            message: message.to_string(),
            ..Problem::default()
        }
    }

    pub fn of_policy(p: &PolicyError) -> Problem {
        let mut out = Problem::plain(&p.message);
        if let Some(loc) = &p.location {
            let (module, line, column) =
                mcp_policy_core::replay::report::split_location(loc.as_str());
            out.module = Some(module);
            out.line = line;
            out.column = column;
        }
        out
    }

    pub fn json(&self) -> Value {
        let location = match (&self.module, self.line, self.column) {
            (Some(m), Some(l), Some(c)) => Some(format!("{m}:{l}:{c}")),
            (Some(m), _, _) => Some(m.clone()),
            _ => None,
        };
        let mut o = json!({
            "module": self.module,
            "line": self.line,
            "column": self.column,
            "location": location,
            "message": self.message,
        });
        if let Some(map) = o.as_object_mut() {
            if let Some(c) = self.code {
                map.insert("code".into(), c.into());
            }
            if let Some(s) = &self.suggestion {
                map.insert("suggestion".into(), s.clone().into());
            }
        }
        o
    }
}

/// The lint of `mcp-policy check` on the modules: (errors, warnings).
fn lint(modules: &[(String, String)]) -> (Vec<Problem>, Vec<Problem>) {
    let mut parsed = regorus::Engine::new();
    parsed.set_rego_v0(false);
    for (name, source) in modules {
        // A module that does not parse is reported by the compile itself.
        let _ = parsed.add_policy(name.clone(), source.clone());
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for f in lint::lint_parsed(parsed.get_modules()) {
        let p = Problem {
            module: Some(f.module.clone()),
            line: Some(u64::from(f.line)),
            column: Some(u64::from(f.column)),
            message: f.message,
            code: Some(f.code),
            suggestion: f.suggestion,
        };
        match f.severity {
            Severity::Error => errors.push(p),
            Severity::Warning => warnings.push(p),
        }
    }
    (errors, warnings)
}

/// `compile`: the revision and engine, or the errors; the lint's findings.
pub fn compile_value(request: &Value) -> Value {
    let bundle = match Bundle::from_request(request) {
        Ok(b) => b,
        Err(e) => return failed(&[Problem::plain(e)], &[]),
    };
    let (mut errors, mut warnings) = lint(&bundle.modules);
    match bundle.config() {
        Ok(c) => {
            if let Some(reason) = c.policy.listing_fallback() {
                warnings.push(Problem::plain(format!(
                    "the policy rewritten for listing did not compile, so every rule as written also decides lists (please report this): {reason}"
                )));
            }
            if let Some(reason) = c.policy.rvm_fallback_reason() {
                warnings.push(Problem::plain(format!(
                    "the policy runs on the interpreter (its steps bounded by max_instructions, its time by max_eval_ms) because the RVM compiler refused it: {reason}"
                )));
            }
            if !errors.is_empty() {
                return failed(&errors, &warnings);
            }
            json!({
                "ok": true,
                "revision": c.policy.revision(),
                "engine": c.policy.engine_kind().as_str(),
                "warnings": warnings.iter().map(Problem::json).collect::<Vec<_>>(),
            })
        }
        Err(p) => {
            errors.insert(0, p);
            failed(&errors, &warnings)
        }
    }
}

pub(crate) fn failed(errors: &[Problem], warnings: &[Problem]) -> Value {
    json!({
        "ok": false,
        "errors": errors.iter().map(Problem::json).collect::<Vec<_>>(),
        "warnings": warnings.iter().map(Problem::json).collect::<Vec<_>>(),
    })
}
