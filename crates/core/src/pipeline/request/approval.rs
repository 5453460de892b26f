//! The request path's side of human approval (approval/): the state on a
//! message checked before its evaluation, the question asked, the filter's
//! round trip taken out of an approved call, and the audit record's
//! approval fields.

use super::exchange::Exchange;
use super::message::Context;
use super::watch::is_modern;
use crate::approval::{self, reply, Check, Status};
use crate::mcp::jsonrpc::Message;
use crate::pipeline::actions::{Decided, Forward, LocalReply, Outcome};
use crate::pipeline::plugin::Plugin;

impl Plugin {
    /// The host's time in milliseconds: the store's, else the plugin's
    /// clock (which the host replaces).
    fn approval_now_ms(&self, ex: &Exchange<'_>) -> u64 {
        ex.store
            .map(|(_, clock)| clock.now_ms())
            .unwrap_or_else(|| (self.clock)() / 1000)
    }

    fn approval_call(
        &self,
        ex: &Exchange<'_>,
        ctx: &Context<'_>,
        m: &Message<'_>,
    ) -> Option<approval::Call> {
        approval::Call::of(
            m,
            ctx.routing.session_id.as_deref(),
            ex.http.attributes.principal(),
        )
    }

    /// Check the filter's state on a single message; a verified approval
    /// becomes `input.approval`.
    pub(super) fn check_approval(&self, ex: &Exchange<'_>, ctx: &mut Context<'_>, m: &Message<'_>) {
        if approval::verify::our_state(m).is_none() {
            return;
        }
        let call = self.approval_call(ex, ctx, m);
        let now = self.approval_now_ms(ex);
        ctx.approval = approval::check(self.settings.approval.as_ref(), m, call.as_ref(), now);
        if let Check::Approved(a) = &ctx.approval {
            ctx.http.push(("approval", a.to_value()));
        }
    }

    /// The question for a message the policy wants confirmed, with its
    /// approval id; `Err`: why it cannot be asked (the denial's reason).
    pub(super) fn ask_approval(
        &mut self,
        ex: &Exchange<'_>,
        ctx: &Context<'_>,
        m: &Message<'_>,
        o: &Outcome,
        body: &[u8],
    ) -> Result<(LocalReply, String), String> {
        let call = self.approval_call(ex, ctx, m);
        let ask = reply::Ask {
            settings: self.settings.approval.as_ref(),
            call: call.as_ref(),
            version: m
                .meta_protocol_version()
                .or(ctx.routing.protocol_version.as_deref()),
            modern: is_modern(m, &ctx.routing),
            now_ms: self.approval_now_ms(ex),
            nonce: self.ids.next_id(),
        };
        let reply = reply::question(&ask, m, o, body)?;
        Ok((reply, ask.nonce))
    }
}

/// An allowed message carrying the filter's state: forwarded without it
/// (a changed body needs the headers held: its length changes).
pub(super) fn strip_approval(
    body: &[u8],
    check: &Check,
    fwd: &mut Forward,
    hold_headers: bool,
) -> Result<(), String> {
    if !hold_headers {
        return Err(
            "the approved call must be forwarded without the filter's approval state, which needs hold_headers: true"
                .into(),
        );
    }
    let upstream = match check {
        Check::Approved(a) => a.upstream.as_ref(),
        _ => None,
    };
    let current = fwd.body.as_deref().unwrap_or(body);
    fwd.body = Some(reply::strip(current, upstream)?);
    Ok(())
}

/// The approval fields of the audit record: what the policy asked, what
/// became of it, and the approval id linking the question and the retry.
pub(super) fn approval_record(
    d: &mut Decided,
    o: &Outcome,
    check: &Check,
    asked: Option<&(LocalReply, String)>,
) {
    let r = &mut d.record;
    r.confirm = o.result.confirm.clone();
    let status = match (asked, check) {
        (Some((_, id)), _) => {
            r.approval_id = Some(id.clone());
            Some(Status::Asked)
        }
        (None, Check::Refused(status, _, _)) => Some(*status),
        (None, Check::Approved(_)) if o.allowed => Some(Status::Approved),
        (None, _) if approval::wants_question(o) => Some(Status::Unavailable),
        _ => None,
    };
    if r.approval_id.is_none() {
        r.approval_id = check.approval_id().map(str::to_string);
    }
    r.approval = status.map(|s| s.as_str().to_string());
}
