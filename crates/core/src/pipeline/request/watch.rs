//! What the response to a forwarded request is inspected for: the
//! [`ResponseWatch`] handed to the response side, with the upstream and
//! the routing read on this side.

use super::exchange::Exchange;
use crate::mcp::jsonrpc::{Kind, Message};
use crate::mcp::keys::key;
use crate::mcp::routing::{self, Routing};
use crate::pipeline::actions::{Forward, ResponseWatch, ToolsWatch};
use crate::pipeline::plugin::Plugin;
use crate::pipeline::subject;
use crate::policy::input::Origin;
use regorus::Value;

impl Plugin {
    /// Whether (and how) the response to a forwarded request is inspected:
    /// server-to-client messages are evaluated when the policy rules on
    /// them ([`Needs::responses`](crate::mcp::attributes::Needs)), list
    /// results filtered when `filter_lists` is on. An inspected response
    /// must come uncompressed: the request asks for `accept-encoding:
    /// identity`.
    pub(super) fn watch_response(
        &self,
        ex: &Exchange<'_>,
        routing: &Routing,
        msgs: &[&Message<'_>],
        resumed: Vec<Origin>,
        fwd: &mut Forward,
    ) {
        let from_store = !resumed.is_empty();
        let mut origins: Vec<Origin> = msgs
            .iter()
            .filter(|m| m.kind == Kind::Request)
            .filter_map(|m| {
                Some(Origin {
                    method: m.method()?.to_string(),
                    id_raw: m.id_raw?.get().to_string(),
                    params: m.params.clone(),
                    modern: is_modern(m, routing),
                })
            })
            .collect();
        origins.extend(resumed);
        let is_stream = msgs.is_empty();
        if !is_stream && origins.is_empty() {
            // Notifications and client responses: answered by 202 only.
            return;
        }
        let evaluate = self.needs.responses;
        let filter_lists =
            self.settings.filter_lists && origins.iter().any(|o| subject::is_list(&o.method));
        if !evaluate && !filter_lists {
            return;
        }
        // A tools/list answer on a resumed stream teaches definitions as it
        // would have on its own stream.
        let learn = fwd.watch.take().or_else(|| {
            if !(from_store && self.needs.definition) {
                return None;
            }
            origins
                .iter()
                .find(|o| subject::is_tools_list(Some(&o.method)))
                .map(|o| ToolsWatch {
                    id_raw: o.id_raw.clone(),
                    upstream: ex.upstream.clone(),
                    replace: o.params[&key("cursor")] == Value::Undefined,
                })
        });
        fwd.response = Some(Box::new(ResponseWatch {
            http: ex.http.clone(),
            origins,
            upstream: ex.upstream.clone(),
            // What the response side reads of the routing: the version and
            // the session (the routing headers themselves are the
            // request's).
            routing: Routing {
                protocol_version: routing.protocol_version.clone(),
                session_id: routing.session_id.clone(),
                ..Routing::default()
            },
            evaluate,
            filter_lists,
            learn,
            definitions: self.needs.definition,
            findings: self.needs.findings,
            http_input: self.needs.http,
            resumed: from_store,
        }));
        if self.settings.hold_headers || is_stream {
            fwd.request_headers
                .push(("accept-encoding".into(), "identity".into()));
        }
    }
}

/// The message speaks a protocol version of 2026-07-28 or later (its own
/// `_meta`, else the header's).
pub(super) fn is_modern(m: &Message<'_>, routing: &Routing) -> bool {
    m.meta_protocol_version()
        .or(routing.protocol_version.as_deref())
        .is_some_and(routing::is_modern)
}
