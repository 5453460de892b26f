//! The request headers: the checks made before any body (passthrough
//! paths, encoding, content type, declared length), and the decision on a
//! request that carries no message (a transport request: the GET stream, a
//! DELETE ending a session).

use super::exchange::Exchange;
use crate::mcp::routing;
use crate::pipeline::actions::{Decided, Forward, HeadersAction, LocalReply};
use crate::pipeline::plugin::Plugin;
use crate::pipeline::replies;
use crate::policy::input::{self, HttpRequest};

impl Plugin {
    /// `(action, records, whether a reply is the policy's denial)`.
    pub(super) fn headers_inner(
        &mut self,
        ex: &Exchange<'_>,
        end_of_stream: bool,
    ) -> (HeadersAction, Vec<Decided>, bool) {
        let http = ex.http;
        let reply = |r: LocalReply| (HeadersAction::Reply(r), Vec::new(), false);
        if self.passes_through(http) {
            return (
                HeadersAction::Forward(Forward::default()),
                Vec::new(),
                false,
            );
        }
        if let Some(r) = check_encoding(http) {
            return reply(r);
        }
        let declared_length = declared_length(http);
        if !http.method.eq_ignore_ascii_case("POST") {
            // GET (SSE stream), DELETE (end of session), OPTIONS, HEAD…: no
            // MCP message; the policy decides on the HTTP request alone.
            // One with a body is refused, never decided as its body: the MCP
            // servers do not read it as a message.
            if end_of_stream || declared_length == Some(0) {
                return self.transport_inner(ex);
            }
            if declared_length.is_some() {
                return reply(replies::body_on_non_post(http));
            }
            if !self.settings.hold_headers {
                // The headers would reach the server before the body shows
                // whether it is empty, and a DELETE needs no body to act.
                return reply(replies::unheld_non_post(http));
            }
            // Length unknown (chunked, HTTP/2 without content-length): the
            // body decides; an empty one keeps it a transport request.
            return (HeadersAction::Inspect, Vec::new(), false);
        }
        if let Some(r) = check_content_type(http) {
            return reply(r);
        }
        if let Some(len) = declared_length {
            if len > self.settings.max_body_bytes as u64 {
                return reply(replies::too_large(self.settings.max_body_bytes));
            }
        }
        (HeadersAction::Inspect, Vec::new(), false)
    }

    /// A request without a message (see [`Plugin::headers_inner`]): the
    /// routing headers read once, the session binding, then the policy.
    pub(super) fn transport_inner(
        &mut self,
        ex: &Exchange<'_>,
    ) -> (HeadersAction, Vec<Decided>, bool) {
        let http = ex.http;
        let routing = match routing::read(&http.headers) {
            Ok(r) => r,
            Err(msg) => {
                let reply = replies::header_mismatch(None, &msg.to_string());
                return (HeadersAction::Reply(reply), Vec::new(), false);
            }
        };
        if let Some((reply, d)) = self.check_transport_binding(ex, &routing) {
            return (HeadersAction::Reply(reply), vec![d], true);
        }
        let o = self.evaluate(input::for_transport(&input::request_values(
            http,
            self.needs.http,
        )));
        let d = Decided::new(
            "transport",
            http.method.clone(),
            o.allowed,
            o.reasons.clone(),
        )
        .with_outcome(&o);
        if !o.allowed {
            let reply = replies::transport_denial(http, &o, self.settings.deny_code);
            return (HeadersAction::Reply(reply), vec![d], true);
        }
        // A bodyless request's headers are still held at this point, so
        // request headers can be set in either hold_headers mode.
        let mut fwd = Forward {
            request_headers: o.result.request_headers,
            response_headers: o.result.response_headers,
            ..Forward::default()
        };
        if http.method.eq_ignore_ascii_case("GET") {
            let resumed = self.resumed_origins(ex, &routing);
            self.watch_response(ex, &routing, &[], resumed, &mut fwd);
        }
        (HeadersAction::Forward(fwd), vec![d], false)
    }

    /// A request to a path configured as not an MCP endpoint
    /// (`passthrough_paths`): exact match on the path without its query,
    /// so any other spelling of it is decided as usual.
    pub fn passes_through(&self, http: &HttpRequest) -> bool {
        if self.settings.passthrough_paths.is_empty() {
            return false;
        }
        let path = http.path.split('?').next().unwrap_or_default();
        self.settings.passthrough_paths.iter().any(|p| p == path)
    }

    /// Called as the body grows (`size`: bytes buffered so far). A body
    /// past the limit is rejected without being decided on a prefix.
    pub fn check_body_size(&self, size: usize) -> Option<LocalReply> {
        (size > self.settings.max_body_bytes)
            .then(|| replies::too_large(self.settings.max_body_bytes))
    }
}

/// The declared `Content-Length`: digits only (`+0` is not a length: RFC
/// 9110 §8.6).
fn declared_length(http: &HttpRequest) -> Option<u64> {
    http.header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
}

/// A compressed request body is refused: the policy must read it as sent.
fn check_encoding(http: &HttpRequest) -> Option<LocalReply> {
    for (k, v) in &http.headers {
        if !k.eq_ignore_ascii_case("content-encoding") {
            continue;
        }
        let v = String::from_utf8_lossy(v);
        let bad = v
            .split(',')
            .map(str::trim)
            .find(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
        if let Some(enc) = bad {
            return Some(replies::unaccepted_encoding(enc));
        }
    }
    None
}

/// A POST must carry JSON.
fn check_content_type(http: &HttpRequest) -> Option<LocalReply> {
    let ct = http.header("content-type").map(String::from_utf8_lossy);
    let media = ct.as_deref().map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match media.as_deref() {
        Some("application/json") => None,
        other => Some(replies::unaccepted_content_type(other)),
    }
}

/// Headers a client may not send: the `x-mcp-ratelimit-*` headers carry the
/// policy's rate-limit descriptor to Envoy's rate-limit filters, so a
/// client's own must not reach them (it could spend another principal's
/// budget). The filter removes these from every request before deciding.
pub fn reserved_headers(http: &HttpRequest) -> Vec<String> {
    http.headers
        .iter()
        .filter(|(k, _)| {
            k.len() >= crate::policy::engine::RATE_LIMIT_HEADER_PREFIX.len()
                && k.as_bytes()
                    .iter()
                    .zip(crate::policy::engine::RATE_LIMIT_HEADER_PREFIX.as_bytes())
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
        })
        .map(|(k, _)| k.clone())
        .collect()
}
