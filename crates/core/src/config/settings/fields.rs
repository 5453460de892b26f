//! The settings other than the policy and the bundle source: their types,
//! defaults and bounds.

use crate::policy::engine::DEFAULT_MAX_INSTRUCTIONS;
use crate::state::store::SessionSettings;
use serde::Deserialize;

use super::source::BundleSettings;

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

/// Default for `audit.log_flush_ms`.
pub const DEFAULT_AUDIT_LOG_FLUSH_MS: u64 = 250;
/// Default for `audit.log_batch`.
pub const DEFAULT_AUDIT_LOG_BATCH: usize = 32;

/// Where audit events go besides Envoy's filter state (always written).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// One `mcp-policy audit {json}` line per decision in the proxy log.
    pub log: bool,
    /// Audit lines are gathered per worker and written together: at most
    /// this long after the first waiting one (milliseconds; `0`: each line
    /// at once).
    pub log_flush_ms: u64,
    /// ... or as soon as this many lines wait.
    pub log_batch: usize,
    /// Events carry the SHA-256 of the arguments (`arguments.digest`).
    pub arguments_digest: bool,
    /// The request's decision is written to Envoy's filter state for the
    /// access log (`wasm.mcp_policy.*`).
    pub filter_state: bool,
    /// An HTTP collector: an Envoy cluster that receives batches of events.
    pub collector: Option<CollectorSettings>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            log: true,
            log_flush_ms: DEFAULT_AUDIT_LOG_FLUSH_MS,
            log_batch: DEFAULT_AUDIT_LOG_BATCH,
            arguments_digest: true,
            filter_state: true,
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
    /// Keys and validity of human approvals (docs/approval.md); `None`: a
    /// policy that asks for confirmation is denied.
    pub approval: Option<crate::approval::ApprovalSettings>,
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
            approval: None,
        }
    }
}

/// Most entries in `passthrough_paths`.
pub const MAX_PASSTHROUGH_PATHS: usize = 64;
