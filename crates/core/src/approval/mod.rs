//! Human approval bound to the exact call (docs/approval.md).
//!
//! A policy that asks for confirmation (`confirm`) gets the `tools/call`
//! answered by the filter itself with an MCP 2026-07-28
//! `InputRequiredResult`: a form elicitation (approve or not) and a
//! `requestState` the filter signs ([`state`]) over the call (method,
//! tool, arguments digest), the session, the principal and an expiry. When
//! the client retries with the person's answer, [`check`] verifies the
//! state against the retried call; an approved retry is evaluated again
//! with `input.approval`, and the filter's own `inputResponses` entry and
//! `requestState` are removed from the body before it is forwarded
//! ([`reply::strip`]). Nothing is stored: any replica with the key
//! verifies.
//!
//! `keys.rs` is the `approval` setting, `state.rs` the signed state,
//! `verify.rs` the retry's check, `reply.rs` the question and the body
//! rewrite.

pub mod keys;
pub mod reply;
pub mod state;
pub mod verify;

#[cfg(test)]
mod tests;

pub use keys::{ApprovalKey, ApprovalSettings};
pub use verify::{check, Call};

use crate::pipeline::actions::Outcome;
use regorus::Value;

/// The key of the filter's question in `inputRequests` / `inputResponses`.
pub const RESPONSE_KEY: &str = "mcp-policy/approval";
/// The field of the form the person answers.
pub const APPROVE_FIELD: &str = "approve";
/// The first protocol version with input_required results.
pub const MIN_VERSION: &str = "2026-07-28";
/// The reason that opens a denial because confirmation is needed (the
/// request path turns it into the question when it can).
pub const NEEDS_CONFIRMATION: &str = "needs a person's confirmation";

/// What became of a confirmation (the audit event's `approval.status` and
/// the `mcp_policy_approvals` counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The filter asked (answered with the question).
    Asked,
    /// A verified approval let the call through.
    Approved,
    /// The person declined or dismissed the question.
    Declined,
    /// The approval's window had passed.
    Expired,
    /// The state does not verify (altered, forged, unknown key).
    Forged,
    /// A valid state presented for another call, session or principal.
    Mismatch,
    /// Confirmation was needed but cannot be asked (older protocol, no
    /// elicitation capability, no keys, not a tools/call).
    Unavailable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Asked => "asked",
            Status::Approved => "approved",
            Status::Declined => "declined",
            Status::Expired => "expired",
            Status::Forged => "forged",
            Status::Mismatch => "mismatch",
            Status::Unavailable => "unavailable",
        }
    }
}

/// A verified approval: `input.approval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The approval id (the nonce of the question).
    pub id: String,
    pub key_id: String,
    /// The principal the call is made by (and the approval was given to).
    pub by: Option<String>,
    /// Asked, approved (the retry) and expiry times, seconds since the epoch.
    pub asked_at: u64,
    pub at: u64,
    pub expires_at: u64,
    /// The upstream's round trip to restore on the forwarded call (not
    /// part of `input.approval`).
    pub upstream: Option<serde_json::Value>,
}

impl Approval {
    /// `input.approval`.
    pub fn to_value(&self) -> Value {
        let mut o = std::collections::BTreeMap::new();
        o.insert(Value::from("id"), Value::from(self.id.as_str()));
        o.insert(Value::from("key_id"), Value::from(self.key_id.as_str()));
        o.insert(
            Value::from("by"),
            self.by.as_deref().map(Value::from).unwrap_or(Value::Null),
        );
        o.insert(Value::from("asked_at"), Value::from(self.asked_at));
        o.insert(Value::from("at"), Value::from(self.at));
        o.insert(Value::from("expires_at"), Value::from(self.expires_at));
        Value::from(o)
    }
}

/// What the filter's state on a message says (before the evaluation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// No state of the filter's (none, or an upstream server's own).
    None,
    /// Verified and approved.
    Approved(Approval),
    /// Verified, but the question was not answered: ask again.
    Unanswered,
    /// Refused before any evaluation: why, specifically.
    Refused(Status, String, Option<String>),
}

impl Check {
    /// The message carries the filter's state (which must not reach the
    /// server).
    pub fn ours(&self) -> bool {
        !matches!(self, Check::None)
    }

    /// The approval id the state carried, if it verified.
    pub fn approval_id(&self) -> Option<&str> {
        match self {
            Check::Approved(a) => Some(&a.id),
            Check::Refused(_, _, id) => id.as_deref(),
            _ => None,
        }
    }
}

/// After the evaluation: an allowed message the policy wants confirmed
/// and that carries no verified approval is denied with
/// [`NEEDS_CONFIRMATION`] and the policy's messages (fail closed; the
/// request path asks the question instead where it can).
pub(crate) fn gate(o: &mut Outcome, check: &Check) {
    if o.allowed && !o.result.confirm.is_empty() && !matches!(check, Check::Approved(_)) {
        o.allowed = false;
        o.reasons = vec![format!(
            "{NEEDS_CONFIRMATION}: {}",
            o.result.confirm.join("; ")
        )];
    }
}

/// The outcome is a denial by [`gate`]: the question may be asked.
pub(crate) fn wants_question(o: &Outcome) -> bool {
    !o.allowed
        && !o.result.confirm.is_empty()
        && o.reasons
            .first()
            .is_some_and(|r| r.starts_with(NEEDS_CONFIRMATION))
}

/// The outcome of a message whose approval state is refused before any
/// evaluation: the filter's own refusal (enforced in audit mode too).
pub(crate) fn refusal(reason: String) -> Outcome {
    Outcome {
        allowed: false,
        reasons: vec![reason],
        result: crate::policy::engine::PolicyResult::default(),
        eval_us: 0,
        core: true,
    }
}
