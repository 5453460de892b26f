//! The request path, host-independent: what the filter does with a request's
//! headers and body, expressed as actions the proxy adapter carries out.
//!
//! ```text
//! headers ──► check encoding / content type / declared length
//!    │            └─ reject (413/415)          no body ─► decide transport request
//!    ▼
//! body (buffered whole, up to max_body_bytes, else 413)
//!    ▼
//! parse ─► 400 (-32700 / -32600)
//!    ▼
//! routing headers vs body ─► 400 (-32020 HeaderMismatch)
//!    ▼
//! policy, once per message ─► all allowed: forward the body unchanged
//!                              any denied: JSON-RPC error(s), nothing forwarded
//! ```
//!
//! `headers.rs` checks the headers and decides a request without a body
//! (a transport request); `body.rs` parses a body and routes it to
//! `message.rs` (one message: the decision with its session state from
//! `session.rs`) or `batch.rs` (every element, then one reply);
//! `rewrite.rs` carries out the changes an allowed message asks for;
//! `watch.rs` says what to inspect in the response; `exchange.rs` holds
//! what every step shares (the request, its upstream computed once, the
//! store). This file is the entry: it stamps what was decided (decision
//! ids, request fields, audit mode). The steps import downwards only:
//! `body` → `headers`, `batch` → `message` → `session`, `rewrite`, `watch` →
//! `exchange`; `headers` → `session`, `watch`.
//!
//! The paths `pipeline::request::X` of the shared vocabulary (`Plugin`,
//! `BodyAction`, `error_reply`…) are kept by the re-exports below.

mod approval;
mod batch;
mod body;
mod exchange;
mod headers;
mod message;
mod rewrite;
mod session;
mod watch;

#[cfg(test)]
mod tests;

pub use crate::pipeline::actions::{
    upstream_of, BodyAction, Decided, Forward, HeadersAction, LocalReply, ToolsWatch,
    DECISION_ID_HEADER,
};
pub use crate::pipeline::plugin::Plugin;
pub use crate::pipeline::replies::{
    denial_message, error_object, error_reply, tool_error_body, tool_error_reply, INTERNAL_ERROR,
    INVALID_REQUEST, PARSE_ERROR,
};
pub use headers::reserved_headers;
pub use rewrite::ChangeRefused;
pub use session::StateKeys;

use crate::config::settings::Mode;
use crate::host::{Clock, FixedClock};
use crate::policy::input::HttpRequest;
use crate::state::store::Store;
use exchange::Exchange;

impl Plugin {
    /// Decide what to do once the request headers are known.
    /// `end_of_stream`: the request has no body.
    pub fn on_request_headers(&mut self, http: &HttpRequest, end_of_stream: bool) -> HeadersAction {
        self.on_request_headers_with(http, end_of_stream, None).0
    }

    /// As [`Plugin::on_request_headers`], with the shared store, so a
    /// transport request (GET stream, DELETE) presenting a session id is
    /// checked against the session's bound principal.
    /// Also returns the audit records of what was decided (a transport
    /// request, or a rejection).
    pub fn on_request_headers_with(
        &mut self,
        http: &HttpRequest,
        end_of_stream: bool,
        store: Option<(&dyn Store, u64)>,
    ) -> (HeadersAction, Vec<Decided>) {
        let clock = store.map(|(_, now)| FixedClock(now));
        let store = store
            .zip(clock.as_ref())
            .map(|((s, _), c)| (s, c as &dyn Clock));
        self.on_request_headers_at(http, end_of_stream, store)
    }

    /// As [`Plugin::on_request_headers_with`], with the host's clock, read
    /// only if the store is used.
    pub fn on_request_headers_at(
        &mut self,
        http: &HttpRequest,
        end_of_stream: bool,
        store: Option<(&dyn Store, &dyn Clock)>,
    ) -> (HeadersAction, Vec<Decided>) {
        let ex = Exchange::new(http, store);
        let (action, mut decided, by_policy) = self.headers_inner(&ex, end_of_stream);
        if let HeadersAction::Reply(r) = &action {
            if decided.is_empty() {
                decided.push(Decided::rejected(&r.log));
            }
        }
        if decided.is_empty() {
            return (action, decided);
        }
        let id = self.ids.next_id();
        ex.stamp(&mut decided, &id, false);
        let action = match action {
            HeadersAction::Reply(_)
                if by_policy
                    && !decided.iter().any(|d| d.core)
                    && self.settings.mode == Mode::Audit =>
            {
                HeadersAction::Forward(Forward::default())
            }
            HeadersAction::Forward(f) if self.settings.mode == Mode::Audit => {
                // The GET stream is still read (decisions recorded, nothing
                // changed), uncompressed.
                HeadersAction::Forward(f.audited())
            }
            other => other,
        };
        let action = match action {
            HeadersAction::Forward(mut f) => {
                f.response_headers.push((DECISION_ID_HEADER.into(), id));
                HeadersAction::Forward(f)
            }
            HeadersAction::Reply(mut r) => {
                r.headers.push((DECISION_ID_HEADER.into(), id));
                HeadersAction::Reply(r)
            }
            other => other,
        };
        (action, decided)
    }

    /// Decide a complete request body, without session state.
    pub fn on_request_body(
        &mut self,
        http: &HttpRequest,
        body: &[u8],
    ) -> (BodyAction, Vec<Decided>) {
        self.on_request_body_with(http, body, None)
    }

    /// Decide a complete request body, with the host's shared store for
    /// session history, binding, rates and kills (`store`, and the time in
    /// milliseconds since the epoch).
    pub fn on_request_body_with(
        &mut self,
        http: &HttpRequest,
        body: &[u8],
        store: Option<(&dyn Store, u64)>,
    ) -> (BodyAction, Vec<Decided>) {
        let clock = store.map(|(_, now)| FixedClock(now));
        let store = store
            .zip(clock.as_ref())
            .map(|((s, _), c)| (s, c as &dyn Clock));
        self.on_request_body_at(http, body, store)
    }

    /// As [`Plugin::on_request_body_with`], with the host's clock, read only
    /// if session state is used.
    pub fn on_request_body_at(
        &mut self,
        http: &HttpRequest,
        body: &[u8],
        store: Option<(&dyn Store, &dyn Clock)>,
    ) -> (BodyAction, Vec<Decided>) {
        let ex = Exchange::new(http, store);
        let (action, mut decided) = self.body_inner(&ex, body);
        // Audit mode lifts the policy's denials only: not protocol
        // rejections (an invalid batch element included) nor the filter's
        // own refusals (session binding, unavailable state).
        let by_policy = !decided.is_empty()
            && decided
                .iter()
                .all(|d| !d.core && d.record.kind != "invalid");
        if let BodyAction::Reply(r) = &action {
            if decided.is_empty() {
                decided.push(Decided::rejected(&r.log));
            }
        }
        let id = self.ids.next_id();
        ex.stamp(&mut decided, &id, true);
        // Audit mode: every policy decision is made and recorded, none is
        // carried out (protocol rejections still apply).
        let action = match action {
            BodyAction::Reply(_) if by_policy && self.settings.mode == Mode::Audit => {
                BodyAction::Forward(Forward::default())
            }
            BodyAction::Forward(f) if self.settings.mode == Mode::Audit => {
                BodyAction::Forward(f.audited())
            }
            other => other,
        };
        let action = match action {
            BodyAction::Forward(mut f) => {
                f.response_headers.push((DECISION_ID_HEADER.into(), id));
                BodyAction::Forward(f)
            }
            BodyAction::Reply(mut r) => {
                r.headers.push((DECISION_ID_HEADER.into(), id));
                BodyAction::Reply(r)
            }
        };
        (action, decided)
    }

    /// Record and label a refusal the host adapter makes itself (a body
    /// that grew past the limit while streaming, an unreadable body, no
    /// configuration): the reply gets a decision id, the audit trail a
    /// `rejected` event.
    pub fn reject(
        &mut self,
        http: &HttpRequest,
        mut reply: LocalReply,
    ) -> (LocalReply, Vec<Decided>) {
        let id = self.ids.next_id();
        let mut decided = vec![Decided::rejected(&reply.log)];
        Exchange::new(http, None).stamp(&mut decided, &id, false);
        reply.headers.push((DECISION_ID_HEADER.into(), id));
        (reply, decided)
    }
}
