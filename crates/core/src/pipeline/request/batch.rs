//! A JSON-RPC batch (2025-03-26): every element is decided; if all are
//! allowed the batch is forwarded whole, otherwise nothing is forwarded and
//! every request in it gets an error.

use super::exchange::Exchange;
use super::message::{decided_for, Context};
use crate::mcp::jsonrpc::{self, Kind, Message};
use crate::pipeline::actions::{BodyAction, Decided, Forward, LocalReply};
use crate::pipeline::plugin::Plugin;
use crate::pipeline::replies::{self, denial_message, error_object, INVALID_REQUEST};
use crate::policy::engine::RateLimitOrder;
use crate::policy::input::BatchPosition;

type Item<'m> = Result<Message<'m>, jsonrpc::Invalid>;

/// The elements decided: their records, each one's reasons when it is
/// refused (`None`: allowed), and what forwarding the batch would carry.
struct Elements {
    decided: Vec<Decided>,
    refused: Vec<Option<Vec<String>>>,
    fwd: Forward,
}

impl Plugin {
    /// Every element is decided. If all are allowed the batch is forwarded
    /// whole; otherwise nothing is forwarded and every request in it gets an
    /// error: the denied ones their reasons, the others a note that the batch
    /// was held back.
    pub(super) fn decide_batch(
        &mut self,
        ex: &Exchange<'_>,
        ctx: &Context<'_>,
        items: &[Item<'_>],
    ) -> (BodyAction, Vec<Decided>) {
        let Elements {
            decided,
            refused,
            mut fwd,
        } = self.decide_elements(ex, ctx, items);
        if refused.iter().all(Option::is_none) {
            if !self.settings.hold_headers && !fwd.request_headers.is_empty() {
                fwd.request_headers.clear();
            }
            let msgs: Vec<&Message<'_>> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
            self.watch_response(ex, &ctx.routing, &msgs, Vec::new(), &mut fwd);
            return (BodyAction::Forward(fwd), decided);
        }
        let reply = self.batch_reply(items, &decided, refused);
        (BodyAction::Reply(reply), decided)
    }

    /// Decide each element; gather what the allowed ones ask for. One
    /// rate-limit descriptor for the whole batch: the first element's
    /// entries, the allowed elements' costs summed.
    fn decide_elements(
        &mut self,
        ex: &Exchange<'_>,
        ctx: &Context<'_>,
        items: &[Item<'_>],
    ) -> Elements {
        let size = items.len();
        let mut decided = Vec::with_capacity(size);
        let mut refused: Vec<Option<Vec<String>>> = Vec::with_capacity(size);
        let mut fwd = Forward::default();
        let mut rate_limit: Option<RateLimitOrder> = None;
        for (index, item) in items.iter().enumerate() {
            let m = match item {
                Ok(m) => m,
                Err(inv) => {
                    refused.push(Some(vec![format!(
                        "invalid JSON-RPC message: {}",
                        inv.reason
                    )]));
                    decided.push(Decided::invalid(&inv.reason));
                    continue;
                }
            };
            let mut o = self.decide(ex, ctx, m, Some(BatchPosition { index, size }));
            if o.allowed && !o.result.rewrite.is_empty() {
                o.allowed = false;
                o.reasons = vec!["`rewrite` is not supported inside a JSON-RPC batch".into()];
            }
            if o.allowed {
                fwd.request_headers
                    .extend(o.result.request_headers.iter().cloned());
                fwd.response_headers
                    .extend(o.result.response_headers.iter().cloned());
                if let Some(rl) = &o.result.rate_limit {
                    match rate_limit.as_mut() {
                        Some(acc) => acc.cost = acc.cost.saturating_add(rl.cost),
                        None => rate_limit = Some(rl.clone()),
                    }
                }
            }
            refused.push((!o.allowed).then(|| o.reasons.clone()));
            decided.push(decided_for(m, &o, self.settings.audit.arguments_digest));
        }
        if let Some(rl) = rate_limit {
            fwd.request_headers.extend(rl.headers());
        }
        Elements {
            decided,
            refused,
            fwd,
        }
    }

    /// The answer to a batch that is not forwarded: an error for every
    /// request in it (the denied ones their reasons, the invalid ones why,
    /// the others a note that the batch was held back).
    fn batch_reply(
        &self,
        items: &[Item<'_>],
        decided: &[Decided],
        refused: Vec<Option<Vec<String>>>,
    ) -> LocalReply {
        let denied: Vec<usize> = refused
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.as_ref().map(|_| i))
            .collect();
        let mut errors: Vec<String> = Vec::new();
        for (item, reasons) in items.iter().zip(&refused) {
            let (id, code, message, data) = match (item, reasons) {
                (Ok(m), Some(r)) => (
                    m.id_raw.map(|x| x.get()),
                    self.settings.deny_code,
                    denial_message(r),
                    Some(r.as_slice()),
                ),
                (Ok(m), None) => (
                    m.id_raw.map(|x| x.get()),
                    self.settings.deny_code,
                    format!(
                        "Not forwarded: the batch contains a denied message (element {})",
                        list(&denied)
                    ),
                    None,
                ),
                (Err(inv), r) => (
                    inv.id_raw.as_deref(),
                    INVALID_REQUEST,
                    r.as_ref()
                        .and_then(|r| r.first().cloned())
                        .unwrap_or_default(),
                    None,
                ),
            };
            // Notifications and client responses get no response object.
            let is_request = matches!(item, Ok(m) if m.kind == Kind::Request) || item.is_err();
            if is_request {
                errors.push(error_object(id, code, &message, data));
            }
        }
        let log = format!(
            "denied batch of {}: {}",
            items.len(),
            decided
                .iter()
                .filter(|d| !d.allowed)
                .map(|d| format!("{}: {}", d.method, d.reasons.join("; ")))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let reasons: Vec<String> = refused.into_iter().flatten().flatten().collect();
        replies::batch_denial(errors, reasons, self.settings.deny_code, log)
    }
}

fn list(indices: &[usize]) -> String {
    indices
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
