//! One response being read: its state ([`ResponseStream`]), what a chunk
//! becomes ([`Output`]), the verdict on a message, and the helpers every
//! step shares (the request's input parts, stamping a decision).

use crate::mcp::sse;
use crate::pipeline::actions::{fill_request_fields, Decided, ResponseWatch};
use crate::pipeline::plugin::Plugin;
use crate::policy::input;
use regorus::Value;

/// How the response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Json,
    Sse,
}

/// What one body chunk becomes.
#[derive(Debug, Default)]
pub struct Output {
    /// The bytes to send downstream in place of the chunk.
    pub bytes: Vec<u8>,
    /// Decisions made (for the audit trail and metrics).
    pub decided: Vec<Decided>,
    /// Tool definitions learnt from a tools/list answer: the upstream and
    /// how many.
    pub learnt: Option<(String, usize)>,
    /// A `notifications/tools/list_changed` went by.
    pub tools_changed: bool,
}

/// The response of one request, being read.
#[derive(Debug)]
pub struct ResponseStream {
    pub(super) watch: Box<ResponseWatch>,
    pub(super) framing: Framing,
    /// JSON: the body so far.
    pub(super) buf: Vec<u8>,
    pub(super) parser: sse::Parser,
    pub(super) max: usize,
    /// Failed closed: why. What follows is dropped.
    pub(super) failed: Option<String>,
    /// The failure's error message(s) were sent.
    pub(super) failure_sent: bool,
    /// Requests the filter has answered itself (with an error).
    pub(super) answered: Vec<String>,
    /// Requests the server has answered on this stream.
    pub(super) seen: Vec<String>,
    /// Audit mode after a failure: the rest passes as received.
    pub(super) passthrough: bool,
    /// `input.http` and the other request parts, built once.
    pub(super) shared: Option<Vec<(&'static str, Value)>>,
}

/// The verdict on one JSON-RPC message (or JSON text).
pub(super) enum Verdict {
    Keep,
    Replace(String),
    Drop,
}

/// The message as JSON, read at most once, and the definitions learnt
/// from it (a tools/list answer), annotated with their pins and findings.
#[derive(Default)]
pub(super) struct Read {
    pub(super) message: Option<serde_json::Value>,
    pub(super) annotated: Option<Vec<serde_json::Value>>,
}

impl Read {
    pub(super) fn json(&mut self, raw: &[u8]) -> Option<&mut serde_json::Value> {
        if self.message.is_none() {
            self.message = serde_json::from_slice::<serde_json::Value>(raw).ok();
        }
        self.message.as_mut()
    }
}

impl ResponseStream {
    /// A response (or part of one) the filter refuses.
    pub(super) fn rejected(&mut self, plugin: &mut Plugin, reason: &str) -> Decided {
        let mut d = Decided::rejected(reason);
        d.record.server_to_client = true;
        self.stamp(plugin, d)
    }

    /// A decision on what the server sent gets its id and the request's
    /// fields (caller, session, upstream: the exchange's).
    pub(super) fn stamp(&self, plugin: &mut Plugin, mut d: Decided) -> Decided {
        d.record.decision_id = plugin.ids.next_id();
        fill_request_fields(&mut d.record, &self.watch.http, &self.watch.upstream);
        d
    }

    /// `input.http` and the other request parts, built once.
    pub(super) fn shared(&mut self) -> Vec<(&'static str, Value)> {
        if self.shared.is_none() {
            self.shared = Some(input::request_values(
                &self.watch.http,
                self.watch.http_input,
            ));
        }
        self.shared.clone().unwrap_or_default()
    }
}
