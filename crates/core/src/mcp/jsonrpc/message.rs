//! The message model: what a parsed body is (one message or a batch), what
//! each message is, and why a body or message is refused.

use crate::mcp::jsonrpc::META_PROTOCOL_VERSION;
use crate::mcp::methods;
use regorus::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// What a JSON-RPC message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`: expects a response.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and exactly one of `result` / `error` (a client answering a
    /// server request such as sampling, elicitation or roots/list).
    Response,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Notification => "notification",
            Kind::Response => "response",
        }
    }
}

/// One JSON-RPC message, borrowed from the body it was parsed from.
#[derive(Debug)]
pub struct Message<'a> {
    pub kind: Kind,
    /// The id exactly as written in the body (a JSON string or integer), for
    /// echoing in an error response. `None` for notifications.
    pub id_raw: Option<&'a RawValue>,
    /// The id as a policy value.
    pub id: Value,
    /// The method, for requests and notifications.
    pub method: Option<Cow<'a, str>>,
    /// `params` (an object), or `Undefined` when absent.
    pub params: Value,
    /// `result`, for responses.
    pub result: Value,
    /// `error`, for responses.
    pub error: Value,
}

impl Message<'_> {
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The value the 2026-07-28 `Mcp-Name` header mirrors: `params.name`
    /// (tools/call, prompts/get) or `params.uri` (resources/read), when the
    /// method names one.
    pub fn routing_name(&self) -> Option<&str> {
        let (_, param) = methods::subject(self.method()?)?;
        self.params[&crate::mcp::keys::key(param)]
            .as_string()
            .ok()
            .map(|s| s.as_ref())
    }

    /// Whether the method is one of those for which the 2026-07-28
    /// transport requires an `Mcp-Name` header.
    pub fn requires_routing_name(&self) -> bool {
        self.method().is_some_and(methods::requires_routing_name)
    }

    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`
    /// (2026-07-28 requests carry their version in every message).
    pub fn meta_protocol_version(&self) -> Option<&str> {
        self.params[&crate::mcp::keys::key("_meta")][&crate::mcp::keys::key(META_PROTOCOL_VERSION)]
            .as_string()
            .ok()
            .map(|s| s.as_ref())
    }
}

/// Why a message is not a valid JSON-RPC 2.0 / MCP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The id, when one could be read, so the error can be matched.
    pub id_raw: Option<String>,
    pub reason: String,
}

/// A parsed body.
#[derive(Debug)]
pub enum Body<'a> {
    /// One message (the only form from 2025-06-18 on).
    Single(Message<'a>),
    /// A JSON-RPC batch (2025-03-26): each element parsed on its own, so
    /// each gets its own decision or error.
    Batch(Vec<Result<Message<'a>, Invalid>>),
}

/// Why a body could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON (syntax, encoding, trailing data, depth, numbers).
    NotJson(String),
    /// JSON, but not a JSON-RPC message (or batch of them).
    Invalid(Invalid),
    /// `[]`.
    EmptyBatch,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotJson(e) => write!(f, "request body is not valid JSON: {e}"),
            ParseError::Invalid(i) => write!(f, "invalid JSON-RPC message: {}", i.reason),
            ParseError::EmptyBatch => write!(f, "invalid JSON-RPC message: empty batch"),
        }
    }
}

/// The client request a server-to-client response answers, as the request
/// side saw it (kept per stream, and across a resumed stream).
#[derive(Debug, Clone)]
pub struct Origin {
    pub method: String,
    /// The request's id, as written.
    pub id_raw: String,
    /// The request's `params` (`Undefined` when absent).
    pub params: Value,
    /// The request asked for the 2026-07-28 protocol (or later).
    pub modern: bool,
}
