//! The vocabulary both paths share: what the filter asks the adapter to do
//! (`HeadersAction`, `BodyAction`, `LocalReply`, `Forward`), what the
//! request side hands to the response side (`ResponseWatch`, `ToolsWatch`),
//! and what is recorded of a decision (`Decided`, from an `Outcome`).

use crate::mcp::routing::Routing;
use crate::observe::audit;
use crate::policy::engine::PolicyResult;
use crate::policy::input::{HttpRequest, Origin};

/// The response header carrying the decision id back to the client.
pub const DECISION_ID_HEADER: &str = "x-mcp-decision-id";

/// A response the filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Why, in one line, for the proxy log.
    pub log: String,
}

/// Watch the answer to a forwarded `tools/list` and remember the tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolsWatch {
    /// The request's id, as written.
    pub id_raw: String,
    /// The upstream the definitions belong to.
    pub upstream: String,
    /// A first page (no cursor): the list replaces what was known.
    pub replace: bool,
}

/// What to change on a request that is forwarded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Watch the response for tool definitions.
    pub watch: Option<ToolsWatch>,
    /// An `initialize` by this principal: bind the session id the server
    /// mints in its response to it.
    pub bind_on_response: Option<String>,
    /// The body to send instead (argument rewriting); `None`: unchanged.
    pub body: Option<Vec<u8>>,
    /// Headers to set on the request upstream.
    pub request_headers: Vec<(String, String)>,
    /// Headers to set on the response to the client.
    pub response_headers: Vec<(String, String)>,
    /// Inspect the response (docs/decision.md "Responses").
    pub response: Option<Box<ResponseWatch>>,
}

impl Forward {
    /// What audit mode forwards of an allowed request: nothing changed,
    /// except that inspected responses (recorded, not changed) are still
    /// asked for uncompressed; the tools/list watch, the session binding and
    /// the response inspection are kept.
    pub(crate) fn audited(self) -> Forward {
        Forward {
            watch: self.watch,
            bind_on_response: self.bind_on_response,
            request_headers: self
                .request_headers
                .into_iter()
                .filter(|(k, v)| k == "accept-encoding" && v == "identity")
                .collect(),
            response: self.response,
            ..Forward::default()
        }
    }
}

/// What to do after the request headers.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadersAction {
    /// Hold the headers and buffer the whole body, then call
    /// [`Plugin::on_request_body`].
    Inspect,
    /// Nothing to inspect and the policy allows it: let it through.
    Forward(Forward),
    /// Answer locally; the upstream sees nothing.
    Reply(LocalReply),
}

/// What to do with a complete body.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyAction {
    /// Forward the request (body unchanged unless rewritten).
    Forward(Forward),
    /// Answer locally; the upstream sees nothing.
    Reply(LocalReply),
}

/// What the request side hands over for the response: enough to decide
/// what the server sends back for this caller.
#[derive(Debug, Clone)]
pub struct ResponseWatch {
    /// The request (headers, identity…), for `input.http` and friends.
    pub http: HttpRequest,
    /// The requests in the body that expect an answer (one; several in a
    /// 2025-03-26 batch; none for the GET stream).
    pub origins: Vec<Origin>,
    /// The upstream the answer comes from (tool definitions are kept per
    /// upstream), as the request side computed it.
    pub upstream: String,
    /// The request's protocol version and session id, read once on the
    /// request side (the routing headers themselves are not part of a
    /// response's input).
    pub routing: Routing,
    /// Evaluate what the server sends (the policy rules on it).
    pub evaluate: bool,
    /// Filter list results per caller.
    pub filter_lists: bool,
    /// Learn the tool definitions of a tools/list answer.
    pub learn: Option<ToolsWatch>,
    /// The policy reads tool definitions: note list changes.
    pub definitions: bool,
    /// Scan results with the detectors (`input.mcp.findings`, `redact`).
    pub findings: bool,
    /// The policy reads `input.http`.
    pub http_input: bool,
    /// The origins were recalled from the shared store: this is a GET
    /// resuming an interrupted stream ([`crate::state::resume`]).
    pub resumed: bool,
}

impl PartialEq for ResponseWatch {
    fn eq(&self, other: &Self) -> bool {
        self.upstream == other.upstream
            && self.evaluate == other.evaluate
            && self.filter_lists == other.filter_lists
            && self.learn == other.learn
            && self.origins.len() == other.origins.len()
            && self
                .origins
                .iter()
                .zip(&other.origins)
                .all(|(a, b)| a.id_raw == b.id_raw && a.method == b.method)
    }
}

impl Eq for ResponseWatch {}

/// One decided message, for logging and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub method: String,
    pub allowed: bool,
    pub reasons: Vec<String>,
    pub labels: Vec<String>,
    /// The audit record (docs/audit.md).
    pub record: audit::Record,
    /// Refused by the filter itself, not by the policy (session binding):
    /// enforced even in audit mode.
    pub core: bool,
}

impl Decided {
    /// The one builder of a decision and its audit record: `kind` (the
    /// record's: `request`, `transport`, `response`, `rejected`…), the
    /// method, the verdict and its reasons, shown the same in both. The
    /// callers add what is particular to them (labels and timing from an
    /// [`Outcome`], the subject, `core`).
    pub(crate) fn new(kind: &str, method: String, allowed: bool, reasons: Vec<String>) -> Decided {
        Decided {
            method: method.clone(),
            allowed,
            reasons: reasons.clone(),
            labels: Vec::new(),
            core: false,
            record: audit::Record {
                kind: kind.into(),
                method,
                allowed,
                reasons,
                ..audit::Record::default()
            },
        }
    }

    /// The labels, dry-run rules and evaluation time of the policy's
    /// outcome, in the decision and its record.
    pub(crate) fn with_outcome(mut self, o: &Outcome) -> Decided {
        self.labels = o.result.labels.clone();
        self.record.labels = o.result.labels.clone();
        self.record.dry_run = o.result.dry_run.clone();
        self.record.eval_us = o.eval_us;
        self
    }

    /// Something refused by the filter itself before (or without) any
    /// policy: a request that is not JSON, a header mismatch, too large, a
    /// wrong encoding…, or a response that cannot be read. Enforced even in
    /// audit mode; its record names no method.
    pub(crate) fn rejected(reason: &str) -> Decided {
        let mut d = Decided::new("rejected", String::new(), false, vec![reason.to_string()]);
        d.method = "rejected".into();
        d.core = true;
        d
    }

    /// An invalid element of a batch: a protocol rejection like
    /// [`Decided::rejected`], recorded as `invalid`, which audit mode does
    /// not lift either (the batch is not forwarded).
    pub(crate) fn invalid(reason: &str) -> Decided {
        let mut d = Decided::rejected(reason);
        d.method = "invalid".into();
        d.record.kind = "invalid".into();
        d.core = false;
        d
    }
}

/// The policy's outcome for one message.
pub(crate) struct Outcome {
    pub(crate) allowed: bool,
    pub(crate) reasons: Vec<String>,
    pub(crate) result: PolicyResult,
    pub(crate) eval_us: u64,
    /// A refusal of the filter itself (session binding), not the policy's.
    pub(crate) core: bool,
}

impl Outcome {
    /// The policy could not be evaluated (an error denies).
    pub(crate) fn failed(&self) -> bool {
        !self.allowed
            && self
                .reasons
                .first()
                .is_some_and(|r| r.starts_with(EVAL_FAILED))
    }
}

/// The reason that opens a failed evaluation's denial.
pub(crate) const EVAL_FAILED: &str = "policy evaluation failed";

/// The upstream a request goes to: its cluster, else its authority.
/// Computed once per exchange (request side) and carried to the response
/// side in [`ResponseWatch::upstream`].
pub fn upstream_of(http: &HttpRequest) -> String {
    http.attributes
        .cluster_name
        .clone()
        .unwrap_or_else(|| http.host.clone())
}

/// The fields every record of a request shares (`upstream`: the
/// exchange's, see [`upstream_of`]).
pub(crate) fn fill_request_fields(r: &mut audit::Record, http: &HttpRequest, upstream: &str) {
    let a = &http.attributes;
    r.subject = a.jwt_claims.as_ref().and_then(|c| {
        c[&crate::mcp::keys::key("sub")]
            .as_string()
            .ok()
            .map(|s| s.to_string())
    });
    r.principal = a.peer_principal.clone();
    r.session_id = http
        .header("mcp-session-id")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    if r.protocol_version.is_none() {
        r.protocol_version = http
            .header("mcp-protocol-version")
            .map(|v| String::from_utf8_lossy(v).into_owned());
    }
    r.upstream = Some(upstream.to_string());
}
