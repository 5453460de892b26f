//! A complete request body: size, method, parse, the routing headers
//! checked against it, then what every message of it is decided with
//! ([`Context`]) and the message or the batch decided.

use super::exchange::Exchange;
use super::message::{Context, StateContext};
use super::session::StateKeys;
use crate::mcp::jsonrpc::{self, Body};
use crate::mcp::routing;
use crate::pipeline::actions::{BodyAction, Decided, HeadersAction};
use crate::pipeline::plugin::Plugin;
use crate::pipeline::replies;
use crate::policy::input;

impl Plugin {
    pub(super) fn body_inner(
        &mut self,
        ex: &Exchange<'_>,
        body: &[u8],
    ) -> (BodyAction, Vec<Decided>) {
        let http = ex.http;
        if let Some(reply) = self.check_body_size(body.len()) {
            return (BodyAction::Reply(reply), Vec::new());
        }
        if !http.method.eq_ignore_ascii_case("POST") {
            if !body.is_empty() {
                return (
                    BodyAction::Reply(replies::body_on_non_post(http)),
                    Vec::new(),
                );
            }
            // An empty body (END_STREAM on an empty DATA frame, or an empty
            // chunked body): a transport request after all.
            let (action, decided, _) = self.transport_inner(ex);
            let action = match action {
                HeadersAction::Forward(f) => BodyAction::Forward(f),
                HeadersAction::Reply(r) => BodyAction::Reply(r),
                HeadersAction::Inspect => BodyAction::Reply(replies::body_on_non_post(http)),
            };
            return (action, decided);
        }
        let parsed = match jsonrpc::parse(body) {
            Ok(b) => b,
            Err(e) => {
                return (
                    BodyAction::Reply(replies::parse_error_reply(&e)),
                    Vec::new(),
                )
            }
        };
        let routing = match routing::read(&http.headers).and_then(|r| {
            routing::check(&r, &parsed)?;
            Ok(r)
        }) {
            Ok(r) => r,
            Err(msg) => {
                let id = match &parsed {
                    Body::Single(m) => m.id_raw.map(|r| r.get()),
                    Body::Batch(_) => None,
                };
                let reply = replies::header_mismatch(id, &msg.to_string());
                return (BodyAction::Reply(reply), Vec::new());
            }
        };
        let keys = StateKeys::new(http, &routing);
        let state = ex
            .store
            .filter(|_| self.needs.state || keys.bindable())
            .map(|(store, clock)| StateContext {
                store,
                now: clock.now_ms(),
                settings: self.settings.sessions.clone(),
                keys,
            });
        let mut ctx = Context {
            http: input::request_values(http, self.needs.http),
            approval: crate::approval::Check::None,
            routing,
            state,
            defs: ex.store.filter(|_| self.needs.definition).map(|(s, _)| s),
        };
        if let Body::Single(m) = &parsed {
            self.check_approval(ex, &mut ctx, m);
        }
        match &parsed {
            Body::Single(m) => self.decide_single(ex, &ctx, m, body),
            Body::Batch(items) => self.decide_batch(ex, &ctx, items),
        }
    }
}
