//! The retry: the filter's state read back and checked against the call
//! it comes with, then the person's answer.

use super::keys::ApprovalSettings;
use super::state::{self, Claims, STATE_PREFIX};
use super::{Approval, Check, Status, APPROVE_FIELD, RESPONSE_KEY};
use crate::mcp::jsonrpc::Message;
use crate::mcp::keys::key;
use crate::observe::audit;
use regorus::Value;

/// What an approval is bound to, read from the call being made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub tool: String,
    /// `sha256:` of the arguments' canonical JSON (absent arguments: `{}`).
    pub arguments: String,
    pub session: Option<String>,
    pub principal: Option<String>,
}

impl Call {
    /// The call of a `tools/call` message (`None` for any other message).
    pub fn of(m: &Message<'_>, session: Option<&str>, principal: Option<String>) -> Option<Call> {
        let method = m.method()?;
        if !crate::pipeline::subject::is_tool_call(Some(method)) {
            return None;
        }
        let tool = m.routing_name()?;
        let args = &m.params[&key("arguments")];
        let arguments = match args {
            Value::Undefined => audit::digest(&Value::new_object()),
            a => audit::digest(a),
        }?;
        Some(Call {
            method: method.to_string(),
            tool: tool.to_string(),
            arguments,
            session: session.map(str::to_string),
            principal,
        })
    }

    /// The claims of a question about this call.
    pub(crate) fn claims(
        &self,
        kid: &str,
        now_s: u64,
        ttl: u64,
        nonce: String,
        upstream: Option<serde_json::Value>,
    ) -> Claims {
        Claims {
            kid: kid.to_string(),
            m: self.method.clone(),
            t: self.tool.clone(),
            a: self.arguments.clone(),
            s: state::bound(self.session.as_deref()),
            p: state::bound(self.principal.as_deref()),
            iat: now_s,
            exp: now_s.saturating_add(ttl),
            n: nonce,
            u: upstream,
        }
    }
}

/// The `requestState` of a message, when it is the filter's.
pub fn our_state<'v>(m: &'v Message<'_>) -> Option<&'v str> {
    match &m.params[&key("requestState")] {
        Value::String(s) if s.starts_with(STATE_PREFIX) => Some(s.as_ref()),
        _ => None,
    }
}

/// Check the filter's state on a message (`now_ms`: the host's clock).
/// An upstream's state, or none, is [`Check::None`]: left untouched.
pub fn check(
    settings: Option<&ApprovalSettings>,
    m: &Message<'_>,
    call: Option<&Call>,
    now_ms: u64,
) -> Check {
    let Some(state) = our_state(m) else {
        return Check::None;
    };
    let Some(settings) = settings else {
        return Check::Refused(
            Status::Unavailable,
            "the request carries an approval state, but no approval keys are configured (`approval.keys`) to verify it".into(),
            None,
        );
    };
    let Some(call) = call else {
        return Check::Refused(
            Status::Mismatch,
            format!(
                "an approval state is only valid on the tools/call it was given for, not on {}",
                m.method().unwrap_or(m.kind.as_str())
            ),
            None,
        );
    };
    let claims = match state::decode(settings, state) {
        Ok(c) => c,
        Err(e) => return Check::Refused(Status::Forged, e.to_string(), None),
    };
    if let Err((status, reason)) = bound_to(&claims, call, now_ms) {
        return Check::Refused(status, reason, Some(claims.n));
    }
    answer(m, &claims, call, now_ms)
}

/// The claims against the call: expiry first, then each bound field, so
/// the reason names what differs.
fn bound_to(c: &Claims, call: &Call, now_ms: u64) -> Result<(), (Status, String)> {
    if now_ms / 1000 >= c.exp {
        return Err((
            Status::Expired,
            format!(
                "the approval expired at {} (approvals are valid for {} s); the call must be confirmed again",
                audit::rfc3339(c.exp.saturating_mul(1000)),
                c.exp.saturating_sub(c.iat)
            ),
        ));
    }
    let mismatch = |what: String| Err((Status::Mismatch, what));
    if c.m != call.method || c.t != call.tool {
        return mismatch(format!(
            "the approval was given for {} {:?}, not for {} {:?}",
            c.m, c.t, call.method, call.tool
        ));
    }
    if c.a != call.arguments {
        return mismatch("the arguments differ from the ones the person approved".into());
    }
    if c.s != state::bound(call.session.as_deref()) {
        return mismatch("the approval was given in another session".into());
    }
    if c.p != state::bound(call.principal.as_deref()) {
        return mismatch("the approval was given to another principal".into());
    }
    Ok(())
}

/// The person's answer, from `inputResponses`.
fn answer(m: &Message<'_>, c: &Claims, call: &Call, now_ms: u64) -> Check {
    let r = &m.params[&key("inputResponses")][&Value::from(RESPONSE_KEY)];
    if *r == Value::Undefined {
        return Check::Unanswered;
    }
    let declined = |why: &str| {
        Check::Refused(
            Status::Declined,
            format!("the person {why} the call to {:?}", call.tool),
            Some(c.n.clone()),
        )
    };
    let action = r[&Value::from("action")]
        .as_string()
        .ok()
        .map(|s| s.to_string());
    match action.as_deref() {
        Some("accept") => match r[&Value::from("content")][&Value::from(APPROVE_FIELD)] {
            Value::Bool(true) => Check::Approved(Approval {
                id: c.n.clone(),
                key_id: c.kid.clone(),
                by: call.principal.clone(),
                asked_at: c.iat,
                at: now_ms / 1000,
                expires_at: c.exp,
                upstream: c.u.clone(),
            }),
            Value::Bool(false) => declined("did not approve"),
            _ => declined("gave no approve/decline answer to"),
        },
        Some("decline") => declined("declined"),
        Some("cancel") => declined("dismissed the confirmation of"),
        _ => declined("gave an unreadable answer to the confirmation of"),
    }
}
