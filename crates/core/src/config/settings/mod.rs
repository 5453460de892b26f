//! The plugin configuration: JSON, given as Envoy's `configuration`
//! (a `google.protobuf.StringValue`) or Istio's `pluginConfig`.
//!
//! ```json
//! {"policy": {"modules": {"authz.rego": "package mcp ..."}, "data": {}},
//!  "max_body_bytes": 1048576}
//! ```
//!
//! Unknown keys are errors (a typo must not silently drop a setting), and
//! so is a missing or non-compiling policy. See docs/configuration.md.
//!
//! [`fields`] holds the settings' types, defaults and bounds, [`source`] the
//! bundle source's; this module reads the JSON into them, checks each
//! setting in turn and compiles the policy ([`Config::from_json`]).

mod fields;
mod source;

pub use fields::{
    AuditSettings, CollectorSettings, DebugSettings, Mode, Settings, DEFAULT_DENY_CODE,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_EVAL_MS, DEFAULT_MAX_RESPONSE_BYTES, MAX_PASSTHROUGH_PATHS,
};
pub use source::{
    BundleSettings, BundleSettingsError, BUNDLE_PENDING_REASON, BUNDLE_PENDING_REVISION,
};

use crate::mcp::attributes::Needs;
use crate::policy::engine::{Policy, PolicyError};
use crate::state::store::SessionSettings;
use serde::Deserialize;
use source::BUNDLE_PENDING_POLICY;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    policy: Option<RawPolicy>,
    #[serde(default)]
    bundle: Option<BundleSettings>,
    #[serde(default)]
    max_body_bytes: Option<u64>,
    #[serde(default)]
    deny_code: Option<i64>,
    #[serde(default)]
    max_instructions: Option<u64>,
    #[serde(default)]
    max_eval_ms: Option<u64>,
    #[serde(default)]
    policy_errors: Option<crate::policy::engine::BuiltinErrors>,
    #[serde(default)]
    hold_headers: Option<bool>,
    #[serde(default)]
    sessions: Option<SessionSettings>,
    #[serde(default)]
    debug: Option<DebugSettings>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    audit: Option<AuditSettings>,
    #[serde(default)]
    max_response_bytes: Option<u64>,
    #[serde(default)]
    filter_lists: Option<bool>,
    #[serde(default)]
    passthrough_paths: Option<Vec<String>>,
    #[serde(default)]
    approval: Option<crate::approval::ApprovalSettings>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    modules: BTreeMap<String, String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// A configuration problem, said in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The JSON itself, or its shape (unknown/missing key, wrong type).
    Json(String),
    /// A setting with a value outside its range.
    Setting { key: &'static str, message: String },
    /// The policy does not compile.
    Policy(PolicyError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Json(m) => write!(f, "invalid configuration: {m}"),
            ConfigError::Setting { key, message } => {
                write!(f, "invalid configuration: `{key}`: {message}")
            }
            ConfigError::Policy(e) => write!(f, "policy does not compile: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A loaded configuration: settings and the compiled policy.
#[derive(Debug)]
pub struct Config {
    pub settings: Settings,
    pub policy: Policy,
    /// The request attributes the policy can read (fetched per request).
    pub needs: Needs,
    /// No inline policy: `policy` is the placeholder that denies everything
    /// until the first bundle loads.
    pub bundle_pending: bool,
}

impl Config {
    /// Parse and compile a configuration: the JSON's shape, then each
    /// setting in turn (the first one out of range is the error), then the
    /// policy's sources, compiled.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        let (settings, policy) = raw.into_settings()?;
        let (modules, data, bundle_pending) = policy_sources(policy, settings.bundle.is_some())?;
        let policy = compile(&modules, data.as_ref(), &settings, bundle_pending)?;
        let needs = Needs::from_sources(modules.iter().map(|(_, s)| s.as_str()));
        Ok(Config {
            settings,
            policy,
            needs,
            bundle_pending,
        })
    }
}

/// A setting out of its range.
fn out_of_range(key: &'static str, message: String) -> ConfigError {
    ConfigError::Setting { key, message }
}

impl RawConfig {
    /// The settings, each checked in the order they are listed here, and
    /// the policy part left to [`policy_sources`].
    fn into_settings(self) -> Result<(Settings, Option<RawPolicy>), ConfigError> {
        let mut settings = Settings::default();
        self.budgets(&mut settings)?;
        if let Some(paths) = self.passthrough_paths {
            settings.passthrough_paths = passthrough_paths(paths)?;
        }
        if let Some(h) = self.hold_headers {
            settings.hold_headers = h;
        }
        if let Some(a) = self.audit {
            if let Some(c) = &a.collector {
                check_collector(c)?;
            }
            if a.log_flush_ms > 60_000 {
                return Err(out_of_range(
                    "audit.log_flush_ms",
                    format!("{} is out of range (0-60000)", a.log_flush_ms),
                ));
            }
            if a.log_batch == 0 || a.log_batch > 1_000 {
                return Err(out_of_range(
                    "audit.log_batch",
                    format!("{} is out of range (1-1000)", a.log_batch),
                ));
            }
            settings.audit = a;
        }
        if let Some(m) = self.mode {
            settings.mode = m;
        }
        if let Some(d) = self.debug {
            settings.debug = debug(d)?;
        }
        if let Some(s) = self.sessions {
            s.validate()
                .map_err(|e| out_of_range("sessions", e.to_string()))?;
            settings.sessions = s;
        }
        if let Some(a) = self.approval {
            a.validate().map_err(|e| out_of_range("approval", e))?;
            settings.approval = Some(a);
        }
        if let Some(b) = self.bundle {
            b.validate()
                .map_err(|e| out_of_range("bundle", e.to_string()))?;
            settings.bundle = Some(b);
        }
        Ok((settings, self.policy))
    }

    /// Sizes, budgets, the denial code, builtin errors and list filtering.
    fn budgets(&self, settings: &mut Settings) -> Result<(), ConfigError> {
        if let Some(n) = self.max_body_bytes {
            if n == 0 || n > (1 << 30) {
                return Err(out_of_range(
                    "max_body_bytes",
                    format!("{n} is out of range (1 to 1073741824)"),
                ));
            }
            settings.max_body_bytes = n as usize;
        }
        if let Some(code) = self.deny_code {
            if (-32768..=-32000).contains(&code) {
                return Err(out_of_range(
                    "deny_code",
                    format!(
                        "{code} is in the range JSON-RPC reserves (-32768 to -32000); choose a code outside it"
                    ),
                ));
            }
            settings.deny_code = code;
        }
        if let Some(n) = self.max_instructions {
            if n == 0 || n > u32::MAX as u64 {
                return Err(out_of_range(
                    "max_instructions",
                    format!("{n} is out of range (1 to 4294967295)"),
                ));
            }
            settings.max_instructions = n as usize;
        }
        if let Some(ms) = self.max_eval_ms {
            if ms == 0 || ms > 60_000 {
                return Err(out_of_range(
                    "max_eval_ms",
                    format!("{ms} is out of range (1 to 60000)"),
                ));
            }
            settings.max_eval_ms = ms;
        }
        if let Some(mode) = self.policy_errors {
            settings.policy_errors = mode;
        }
        if let Some(n) = self.max_response_bytes {
            if n == 0 || n > (1 << 30) {
                return Err(out_of_range(
                    "max_response_bytes",
                    format!("{n} is out of range (1 to 1073741824)"),
                ));
            }
            settings.max_response_bytes = n as usize;
        }
        if let Some(f) = self.filter_lists {
            settings.filter_lists = f;
        }
        Ok(())
    }
}

/// `passthrough_paths`: at most [`MAX_PASSTHROUGH_PATHS`] plain paths.
fn passthrough_paths(paths: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let bad = |message: String| out_of_range("passthrough_paths", message);
    if paths.len() > MAX_PASSTHROUGH_PATHS {
        return Err(bad(format!(
            "{} paths is more than the {MAX_PASSTHROUGH_PATHS} allowed",
            paths.len()
        )));
    }
    for p in &paths {
        if !p.starts_with('/') || p.len() > 1024 || p.contains(['?', '#']) {
            return Err(bad(format!(
                "{p:?} must be a path starting with / (at most 1024 bytes, no query or fragment)"
            )));
        }
    }
    Ok(paths)
}

/// `audit.collector`: a cluster, a path, and batching within bounds.
fn check_collector(c: &CollectorSettings) -> Result<(), ConfigError> {
    let bad = |message: String| out_of_range("audit.collector", message);
    if c.cluster.is_empty() {
        return Err(bad("`cluster` must name an Envoy cluster".into()));
    }
    if !c.path.starts_with('/') {
        return Err(bad(format!("`path` {:?} must start with /", c.path)));
    }
    if c.batch_size == 0 || c.batch_size > 10_000 || c.queue_limit == 0 || c.queue_limit > 1_000_000
    {
        return Err(bad(
            "`batch_size` (1-10000) and `queue_limit` (1-1000000) are out of range".into(),
        ));
    }
    if c.flush_interval_ms == 0 || c.timeout_ms == 0 {
        return Err(bad(
            "`flush_interval_ms` and `timeout_ms` must be at least 1".into(),
        ));
    }
    Ok(())
}

/// `debug`: a trap header, when given, is a (lower-cased) header name.
fn debug(d: DebugSettings) -> Result<DebugSettings, ConfigError> {
    if d.trap_header.as_deref().is_some_and(str::is_empty) {
        return Err(out_of_range(
            "debug.trap_header",
            "must be a header name".into(),
        ));
    }
    Ok(DebugSettings {
        trap_header: d.trap_header.map(|h| h.to_ascii_lowercase()),
    })
}

/// The policy modules are one Rego source: (name, text).
type Modules = Vec<(String, String)>;

/// The modules and data to compile: the inline policy, else (with a bundle
/// source) the placeholder that denies until the first bundle loads
/// (`true`: pending).
fn policy_sources(
    policy: Option<RawPolicy>,
    has_bundle: bool,
) -> Result<(Modules, Option<serde_json::Value>, bool), ConfigError> {
    match policy {
        Some(p) => {
            if p.modules.is_empty() {
                return Err(out_of_range(
                    "policy.modules",
                    "no Rego modules given".into(),
                ));
            }
            Ok((p.modules.into_iter().collect(), p.data, false))
        }
        None if has_bundle => Ok((
            vec![(
                "<bundle pending>".to_string(),
                BUNDLE_PENDING_POLICY.to_string(),
            )],
            None,
            true,
        )),
        None => Err(ConfigError::Json(
            "missing field `policy` (inline modules, or a `bundle` source)".into(),
        )),
    }
}

/// Compile the modules with the settings' budgets and builtin-error mode.
fn compile(
    modules: &Modules,
    data: Option<&serde_json::Value>,
    settings: &Settings,
    bundle_pending: bool,
) -> Result<Policy, ConfigError> {
    let mut policy =
        Policy::compile(modules, data, settings.max_instructions).map_err(ConfigError::Policy)?;
    policy.set_interpreter_time_limit(std::time::Duration::from_millis(settings.max_eval_ms));
    policy.set_builtin_errors(settings.policy_errors);
    if bundle_pending {
        policy.set_revision(BUNDLE_PENDING_REVISION.into());
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const OK: &str = r#"{"policy":{"modules":{"a.rego":"package mcp\nallow := true\n"}}}"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_json(OK.as_bytes()).unwrap();
        assert_eq!(c.settings, Settings::default());
    }

    #[test]
    fn all_settings() {
        let c = Config::from_json(
            br#"{"policy":{"modules":{"a.rego":"package mcp\nallow := data.x\n"},"data":{"x":true}},
                 "max_body_bytes": 4096, "deny_code": 4031, "max_instructions": 5000, "hold_headers": false}"#,
        )
        .unwrap();
        assert_eq!(c.settings.max_body_bytes, 4096);
        assert_eq!(c.settings.deny_code, 4031);
        assert_eq!(c.settings.max_instructions, 5000);
        assert!(!c.settings.hold_headers);
    }

    fn err(json: &str) -> String {
        Config::from_json(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(err(r#"{"policy":{"modules":{}},"max_body_byte":1}"#)
            .contains("unknown field `max_body_byte`"));
        assert!(err(r#"{"policy":{"modules":{},"dat":{}}}"#).contains("unknown field `dat`"));
        assert!(err(r#"{}"#).contains("missing field `policy`"));
        assert!(err(r#"{"policy":{"modules":{}}}"#).contains("policy.modules"));
        assert!(err(
            r#"{"policy":{"modules":{"a.rego":"package mcp\nallow := true\n"}},"deny_code":-32001}"#
        )
        .contains("deny_code"));
        assert!(err(
            r#"{"policy":{"modules":{"a.rego":"package mcp\nallow := true\n"}},"max_body_bytes":0}"#
        )
        .contains("max_body_bytes"));
        assert!(err("not json").contains("invalid configuration"));
        let e = err(r#"{"policy":{"modules":{"authz.rego":"package mcp\n\nallow if {\n"}}}"#);
        assert!(
            e.starts_with("policy does not compile: authz.rego:4:"),
            "{e}"
        );
        assert!(err(
            r#"{"policy":{"modules":{"a.rego":"package mcp\nallow := true\n"},"data":[1]}}"#
        )
        .contains("data"));
    }

    #[test]
    fn audit_lines_are_batched_within_bounds() {
        let audit = |a: &str| {
            format!(r#"{{"policy":{{"modules":{{"a.rego":"package mcp\nallow := true\n"}}}},"audit":{a}}}"#)
        };
        let d = AuditSettings::default();
        assert_eq!((d.log_flush_ms, d.log_batch), (250, 32));
        let c = Config::from_json(audit(r#"{"log_flush_ms":0,"log_batch":1000}"#).as_bytes()).unwrap();
        assert_eq!((c.settings.audit.log_flush_ms, c.settings.audit.log_batch), (0, 1000));
        let e = err(&audit(r#"{"log_flush_ms":60001}"#));
        assert!(e.contains("audit.log_flush_ms") && e.contains("0-60000"), "{e}");
        let e = err(&audit(r#"{"log_batch":0}"#));
        assert!(e.contains("audit.log_batch") && e.contains("1-1000"), "{e}");
        assert!(err(&audit(r#"{"log_batch":1001}"#)).contains("audit.log_batch"));
    }
}
