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

use crate::mcp::attributes::Needs;
use crate::policy::engine::{Policy, PolicyError, DEFAULT_MAX_INSTRUCTIONS};
use crate::state::store::SessionSettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Default for `max_body_bytes`: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default for `max_eval_ms`: the interpreter's per-message time budget.
pub const DEFAULT_MAX_EVAL_MS: u64 = 50;
/// Default JSON-RPC error code for a policy denial. JSON-RPC reserves
/// −32768…−32000 (and MCP −32020…−32099 within it), so the default sits just
/// outside: −31403 ("forbidden").
pub const DEFAULT_DENY_CODE: i64 = -31403;
/// Default for `max_response_bytes`: 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

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
}

/// Where audit events go besides Envoy's filter state (always written).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// One `mcp-policy audit {json}` line per decision in the proxy log.
    pub log: bool,
    /// An HTTP collector: an Envoy cluster that receives batches of events.
    pub collector: Option<CollectorSettings>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            log: true,
            collector: None,
        }
    }
}

/// Events are POSTed as newline-delimited JSON (`application/x-ndjson`).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CollectorSettings {
    /// The Envoy cluster of the collector.
    pub cluster: String,
    #[serde(default = "default_collector_path")]
    pub path: String,
    /// `:authority` of the requests (default: the cluster name).
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    #[serde(default = "default_queue_limit")]
    pub queue_limit: usize,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_collector_path() -> String {
    "/".into()
}
fn default_batch_size() -> usize {
    100
}
fn default_flush_interval_ms() -> u64 {
    200
}
fn default_queue_limit() -> usize {
    10_000
}
fn default_max_retries() -> u32 {
    3
}
fn default_timeout_ms() -> u64 {
    2_000
}

/// A policy bundle source (docs/bundles.md): an Envoy cluster and path,
/// polled with `If-None-Match`, serving OPA's bundle layout (tar.gz).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleSettings {
    /// The Envoy cluster serving the bundle.
    pub cluster: String,
    #[serde(default = "default_bundle_path")]
    pub path: String,
    /// `:authority` of the requests (default: the cluster name).
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Up to this much is added at random to each interval, so the VMs and
    /// replicas polling one source spread out (default: a tenth of the
    /// interval).
    #[serde(default)]
    pub poll_jitter_ms: Option<u64>,
    #[serde(default = "default_bundle_timeout_ms")]
    pub timeout_ms: u64,
    /// Largest bundle accepted, compressed (the download).
    #[serde(default = "default_bundle_max_bytes")]
    pub max_bytes: usize,
    #[serde(default = "default_bundle_max_uncompressed_bytes")]
    pub max_uncompressed_bytes: u64,
    #[serde(default = "default_bundle_max_files")]
    pub max_files: usize,
}

impl BundleSettings {
    /// The unpacking bounds.
    pub fn limits(&self) -> crate::config::limits::Limits {
        crate::config::limits::Limits {
            max_bytes: self.max_bytes,
            max_uncompressed_bytes: self.max_uncompressed_bytes,
            max_files: self.max_files,
        }
    }

    /// The jitter bound actually used.
    pub fn jitter_ms(&self) -> u64 {
        self.poll_jitter_ms.unwrap_or(self.poll_interval_ms / 10)
    }

    fn validate(&self) -> Result<(), String> {
        if self.cluster.is_empty() {
            return Err("`cluster` must name an Envoy cluster".into());
        }
        if !self.path.starts_with('/') {
            return Err(format!("`path` {:?} must start with /", self.path));
        }
        if !(100..=86_400_000).contains(&self.poll_interval_ms) {
            return Err(format!(
                "`poll_interval_ms` {} is out of range (100 to 86400000)",
                self.poll_interval_ms
            ));
        }
        if self.jitter_ms() > self.poll_interval_ms {
            return Err("`poll_jitter_ms` must not exceed `poll_interval_ms`".into());
        }
        if !(1..=600_000).contains(&self.timeout_ms) {
            return Err(format!(
                "`timeout_ms` {} is out of range (1 to 600000)",
                self.timeout_ms
            ));
        }
        if self.max_bytes == 0 || self.max_bytes > (1 << 30) {
            return Err(format!(
                "`max_bytes` {} is out of range (1 to 1073741824)",
                self.max_bytes
            ));
        }
        if self.max_uncompressed_bytes == 0 || self.max_uncompressed_bytes > (1 << 32) {
            return Err(format!(
                "`max_uncompressed_bytes` {} is out of range (1 to 4294967296)",
                self.max_uncompressed_bytes
            ));
        }
        if self.max_files == 0 || self.max_files > 1_000_000 {
            return Err(format!(
                "`max_files` {} is out of range (1 to 1000000)",
                self.max_files
            ));
        }
        Ok(())
    }
}

fn default_bundle_path() -> String {
    "/bundle.tar.gz".into()
}
fn default_poll_interval_ms() -> u64 {
    10_000
}
fn default_bundle_timeout_ms() -> u64 {
    5_000
}
fn default_bundle_max_bytes() -> usize {
    crate::config::limits::DEFAULT_MAX_BYTES
}
fn default_bundle_max_uncompressed_bytes() -> u64 {
    crate::config::limits::DEFAULT_MAX_UNCOMPRESSED_BYTES
}
fn default_bundle_max_files() -> usize {
    crate::config::limits::DEFAULT_MAX_FILES
}

/// The reason every message is denied while a bundle-only configuration
/// waits for its first bundle.
pub const BUNDLE_PENDING_REASON: &str = "policy bundle not loaded yet";
/// The revision shown meanwhile.
pub const BUNDLE_PENDING_REVISION: &str = "bundle-pending";

/// The policy in force until the first bundle loads, when no inline policy
/// is configured: deny everything (HTTP 503), saying why.
const BUNDLE_PENDING_POLICY: &str = "package mcp\n\nimport rego.v1\n\ndefault allow := false\n\n\
deny contains \"policy bundle not loaded yet\"\n\n\
denial := {\"http_status\": 503, \"message\": \"mcp-policy: policy bundle not loaded yet; the request was not forwarded\"}\n";

/// `enforce` (default): decisions are carried out. `audit`: every decision
/// is made and recorded as it would have been, nothing is blocked or
/// changed (a dry run of the whole policy).
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// Fault injection for testing how the host handles a failing module
/// (`failure_policy`). Never set in production.
#[derive(Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DebugSettings {
    /// A request carrying this header makes the module trap (the VM fails).
    #[serde(default)]
    pub trap_header: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    modules: BTreeMap<String, String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// Settings other than the policy itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Largest request body decided; anything larger is rejected (413).
    pub max_body_bytes: usize,
    /// JSON-RPC error code of a policy denial.
    pub deny_code: i64,
    /// RVM instruction budget per evaluation.
    pub max_instructions: usize,
    /// Wall-clock budget per evaluation on the interpreter (milliseconds).
    pub max_eval_ms: u64,
    /// How a builtin that fails at run time is read: `deny` (default) or
    /// `undefined` (OPA's non-strict default).
    pub policy_errors: crate::policy::engine::BuiltinErrors,
    /// Hold the request headers until the body is decided (needs Envoy's
    /// `allow_on_headers_stop_iteration: true`). When false, the headers go
    /// upstream at once and only the body is held: a denied message still
    /// never reaches the server, but the server sees a request start and
    /// then a reset.
    pub hold_headers: bool,
    /// Session state: history, binding, rates, kills.
    pub sessions: SessionSettings,
    /// Fault injection (testing only).
    pub debug: DebugSettings,
    /// Enforce or audit (dry run).
    pub mode: Mode,
    /// Audit event destinations.
    pub audit: AuditSettings,
    /// A policy bundle source, polled by the filter.
    pub bundle: Option<BundleSettings>,
    /// Largest response body (JSON) or single SSE event the filter reads
    /// when it inspects responses; past it the response fails closed.
    pub max_response_bytes: usize,
    /// Filter tools/prompts/resources lists per caller by the policy.
    pub filter_lists: bool,
    /// Request paths (exact, query aside) that are not MCP endpoints: such
    /// requests pass through undecided (e.g. an authorization server's
    /// `/token` on the same host).
    pub passthrough_paths: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            deny_code: DEFAULT_DENY_CODE,
            max_instructions: DEFAULT_MAX_INSTRUCTIONS,
            max_eval_ms: DEFAULT_MAX_EVAL_MS,
            policy_errors: crate::policy::engine::BuiltinErrors::Deny,
            hold_headers: true,
            sessions: SessionSettings::default(),
            debug: DebugSettings::default(),
            mode: Mode::Enforce,
            audit: AuditSettings::default(),
            bundle: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            filter_lists: true,
            passthrough_paths: Vec::new(),
        }
    }
}

/// Most entries in `passthrough_paths`.
pub const MAX_PASSTHROUGH_PATHS: usize = 64;

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
    /// Parse and compile a configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        let mut settings = Settings::default();
        if let Some(n) = raw.max_body_bytes {
            if n == 0 || n > (1 << 30) {
                return Err(ConfigError::Setting {
                    key: "max_body_bytes",
                    message: format!("{n} is out of range (1 to 1073741824)"),
                });
            }
            settings.max_body_bytes = n as usize;
        }
        if let Some(code) = raw.deny_code {
            if (-32768..=-32000).contains(&code) {
                return Err(ConfigError::Setting {
                    key: "deny_code",
                    message: format!(
                        "{code} is in the range JSON-RPC reserves (-32768 to -32000); choose a code outside it"
                    ),
                });
            }
            settings.deny_code = code;
        }
        if let Some(n) = raw.max_instructions {
            if n == 0 || n > u32::MAX as u64 {
                return Err(ConfigError::Setting {
                    key: "max_instructions",
                    message: format!("{n} is out of range (1 to 4294967295)"),
                });
            }
            settings.max_instructions = n as usize;
        }
        if let Some(ms) = raw.max_eval_ms {
            if ms == 0 || ms > 60_000 {
                return Err(ConfigError::Setting {
                    key: "max_eval_ms",
                    message: format!("{ms} is out of range (1 to 60000)"),
                });
            }
            settings.max_eval_ms = ms;
        }
        if let Some(mode) = raw.policy_errors {
            settings.policy_errors = mode;
        }
        if let Some(n) = raw.max_response_bytes {
            if n == 0 || n > (1 << 30) {
                return Err(ConfigError::Setting {
                    key: "max_response_bytes",
                    message: format!("{n} is out of range (1 to 1073741824)"),
                });
            }
            settings.max_response_bytes = n as usize;
        }
        if let Some(f) = raw.filter_lists {
            settings.filter_lists = f;
        }
        if let Some(paths) = raw.passthrough_paths {
            let bad = |message: String| ConfigError::Setting {
                key: "passthrough_paths",
                message,
            };
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
            settings.passthrough_paths = paths;
        }
        if let Some(h) = raw.hold_headers {
            settings.hold_headers = h;
        }
        if let Some(a) = raw.audit {
            if let Some(c) = &a.collector {
                let bad = |message: String| ConfigError::Setting {
                    key: "audit.collector",
                    message,
                };
                if c.cluster.is_empty() {
                    return Err(bad("`cluster` must name an Envoy cluster".into()));
                }
                if !c.path.starts_with('/') {
                    return Err(bad(format!("`path` {:?} must start with /", c.path)));
                }
                if c.batch_size == 0
                    || c.batch_size > 10_000
                    || c.queue_limit == 0
                    || c.queue_limit > 1_000_000
                {
                    return Err(bad(
                        "`batch_size` (1-10000) and `queue_limit` (1-1000000) are out of range"
                            .into(),
                    ));
                }
                if c.flush_interval_ms == 0 || c.timeout_ms == 0 {
                    return Err(bad(
                        "`flush_interval_ms` and `timeout_ms` must be at least 1".into(),
                    ));
                }
            }
            settings.audit = a;
        }
        if let Some(m) = raw.mode {
            settings.mode = m;
        }
        if let Some(d) = raw.debug {
            if d.trap_header.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::Setting {
                    key: "debug.trap_header",
                    message: "must be a header name".into(),
                });
            }
            settings.debug = DebugSettings {
                trap_header: d.trap_header.map(|h| h.to_ascii_lowercase()),
            };
        }
        if let Some(s) = raw.sessions {
            s.validate().map_err(|message| ConfigError::Setting {
                key: "sessions",
                message: message.to_string(),
            })?;
            settings.sessions = s;
        }
        if let Some(b) = raw.bundle {
            b.validate().map_err(|message| ConfigError::Setting {
                key: "bundle",
                message,
            })?;
            settings.bundle = Some(b);
        }
        let (modules, data, bundle_pending) = match raw.policy {
            Some(p) => {
                if p.modules.is_empty() {
                    return Err(ConfigError::Setting {
                        key: "policy.modules",
                        message: "no Rego modules given".into(),
                    });
                }
                (p.modules.into_iter().collect::<Vec<_>>(), p.data, false)
            }
            None if settings.bundle.is_some() => (
                vec![(
                    "<bundle pending>".to_string(),
                    BUNDLE_PENDING_POLICY.to_string(),
                )],
                None,
                true,
            ),
            None => {
                return Err(ConfigError::Json(
                    "missing field `policy` (inline modules, or a `bundle` source)".into(),
                ))
            }
        };
        let mut policy = Policy::compile(&modules, data.as_ref(), settings.max_instructions)
            .map_err(ConfigError::Policy)?;
        policy.set_interpreter_time_limit(std::time::Duration::from_millis(settings.max_eval_ms));
        policy.set_builtin_errors(settings.policy_errors);
        if bundle_pending {
            policy.set_revision(BUNDLE_PENDING_REVISION.into());
        }
        let needs = Needs::from_sources(modules.iter().map(|(_, s)| s.as_str()));
        Ok(Config {
            settings,
            policy,
            needs,
            bundle_pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
