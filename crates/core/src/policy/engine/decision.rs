//! The decision a policy gives for one message: `allow`, `deny` and the
//! optional outputs (docs/decision.md), as the data path reads them.

use regorus::Value;

/// The policy's answer for one message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyResult {
    /// `allow` evaluated to exactly `true`.
    pub allow: bool,
    /// The members of `deny`, in the set's (sorted) order.
    pub deny: Vec<String>,
    /// `denial`: how to answer if the message is denied.
    pub denial: Denial,
    /// `rewrite`: argument name (or JSON pointer into the arguments,
    /// starting with `/`) → new value.
    pub rewrite: Vec<(String, Value)>,
    /// `request_headers`: set on the request forwarded upstream.
    pub request_headers: Vec<(String, String)>,
    /// `response_headers`: set on the response to the client.
    pub response_headers: Vec<(String, String)>,
    /// `labels`: recorded with the decision.
    pub labels: Vec<String>,
    /// `kill`: deny this and every further message of the session (or
    /// principal) until the kill expires or is cleared.
    pub kill: Option<KillOrder>,
    /// `clear_kill`: lift a kill on this session/principal (operators push
    /// this through policy data).
    pub clear_kill: bool,
    /// `reveal`: argument names shown as they are in the audit event.
    pub reveal: Vec<String>,
    /// `dry_run`: reasons that would deny, recorded but not enforced (to
    /// roll out one new rule under an enforced policy).
    pub dry_run: Vec<String>,
    /// `rate_limit`: a rate-limit descriptor for Envoy's rate-limit filters
    /// (docs/decision.md#rate-limit-descriptors).
    pub rate_limit: Option<RateLimitOrder>,
    /// `visible`: when deciding one item of a list (`input.mcp.listing`),
    /// an explicit answer to "is this item listed" (else: listed when the
    /// synthesized request is not denied).
    pub visible: Option<bool>,
    /// `redact`: which findings of a result to replace in the forwarded
    /// result (server-to-client responses).
    pub redact: Redact,
    /// `confirm`: messages shown to a person who must approve this exact
    /// call before it runs (docs/approval.md); empty: no confirmation.
    pub confirm: Vec<String>,
}

/// The `rate_limit` output: descriptor entries and a cost, handed to Envoy's
/// `local_ratelimit` / `ratelimit` filters as request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitOrder {
    /// Entry key → value, in key order. Keys are `[a-z0-9_]`, 1–32 bytes.
    pub entries: Vec<(String, String)>,
    /// Hits this message adds (Envoy's `hits_addend`); 1 unless given.
    pub cost: u64,
}

/// Request headers carrying a `rate_limit` descriptor: one
/// `x-mcp-ratelimit-<key>` per entry, and `x-mcp-ratelimit-cost`.
pub const RATE_LIMIT_HEADER_PREFIX: &str = "x-mcp-ratelimit-";

/// The largest `rate_limit.cost`.
pub const MAX_RATE_LIMIT_COST: u64 = 1_000_000;

impl RateLimitOrder {
    /// The request headers that carry this descriptor.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = self
            .entries
            .iter()
            .map(|(k, v)| (format!("{RATE_LIMIT_HEADER_PREFIX}{k}"), v.clone()))
            .collect();
        h.push((
            format!("{RATE_LIMIT_HEADER_PREFIX}cost"),
            self.cost.to_string(),
        ));
        h
    }
}

/// The `redact` output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Redact {
    /// Nothing is redacted.
    #[default]
    None,
    /// `redact := true`: every finding.
    All,
    /// A set of detector names and/or kinds.
    Only(Vec<String>),
}

impl Redact {
    /// Whether a finding of this kind from this detector is redacted.
    pub fn selects(&self, kind: &str, detector: &str) -> bool {
        match self {
            Redact::None => false,
            Redact::All => true,
            Redact::Only(names) => names.iter().any(|n| n == kind || n == detector),
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Redact::None
    }
}

/// The `kill` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillOrder {
    pub reason: String,
    /// Kill the principal (every session of it), not just the session.
    pub principal: bool,
    pub ttl_seconds: Option<u64>,
}

/// The `denial` output: the form of the answer to a denied message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Denial {
    /// Answer a denied `tools/call` with a tool result carrying
    /// `isError: true` (the model reads it and can adapt) instead of a
    /// JSON-RPC error.
    pub as_tool_result: bool,
    /// JSON-RPC error code (instead of `deny_code`).
    pub code: Option<i64>,
    /// The message (instead of `Denied by policy: <reasons>`).
    pub message: Option<String>,
    /// HTTP status of the answer (instead of 200).
    pub http_status: Option<u32>,
}

impl PolicyResult {
    /// The message may pass: allowed and nothing denies it.
    pub fn permits(&self) -> bool {
        self.allow && self.deny.is_empty()
    }
}
