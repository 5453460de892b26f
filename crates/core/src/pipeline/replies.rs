//! Every reply and error body the filter writes itself: JSON-RPC errors
//! (single, in a batch, on a stream), denials (as errors or as tool
//! results) and the HTTP-level refusals of a request it will not decide.

use crate::mcp::jsonrpc::{Kind, Message, ParseError};
use crate::mcp::routing::HEADER_MISMATCH;
use crate::pipeline::actions::{LocalReply, Outcome};
use crate::pipeline::subject;
use crate::policy::engine::Denial;
use crate::policy::input::{HttpRequest, Origin};

/// JSON-RPC: invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: internal error (a server response the filter refuses).
pub const INTERNAL_ERROR: i64 = -32603;

pub(crate) fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

/// A denied tools/call answered as a tool result the model can read:
/// `{"result":{"content":[{"type":"text","text":…}],"isError":true}}`, with
/// `"resultType":"complete"` for protocol versions that require it
/// (2026-07-28 on).
pub fn tool_error_reply(status: u32, id_raw: &str, message: &str, modern: bool) -> LocalReply {
    LocalReply {
        status,
        headers: json_headers(),
        body: tool_error_body(id_raw, message, modern).into_bytes(),
        log: message.to_string(),
    }
}

/// The JSON-RPC response of [`tool_error_reply`].
pub fn tool_error_body(id_raw: &str, message: &str, modern: bool) -> String {
    let mut result = serde_json::json!({
        "content": [{"type": "text", "text": message}],
        "isError": true,
    });
    if let (true, Some(o)) = (modern, result.as_object_mut()) {
        o.insert("resultType".into(), serde_json::Value::from("complete"));
    }
    format!(r#"{{"jsonrpc":"2.0","id":{id_raw},"result":{result}}}"#)
}

/// A local reply carrying one JSON-RPC error response.
pub fn error_reply(
    status: u32,
    id_raw: Option<&str>,
    code: i64,
    message: &str,
    reasons: Option<&[String]>,
) -> LocalReply {
    LocalReply {
        status,
        headers: json_headers(),
        body: error_object(id_raw, code, message, reasons).into_bytes(),
        log: message.to_string(),
    }
}

/// `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…,"data":{"reasons":[…]}}}`
/// with the id copied byte for byte from the request (or `null`).
pub fn error_object(
    id_raw: Option<&str>,
    code: i64,
    message: &str,
    reasons: Option<&[String]>,
) -> String {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), serde_json::Value::from(code));
    error.insert("message".into(), serde_json::Value::from(message));
    if let Some(r) = reasons {
        error.insert("data".into(), serde_json::json!({ "reasons": r }));
    }
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{}}}"#,
        id_raw.unwrap_or("null"),
        serde_json::Value::Object(error)
    )
}

/// The error message a client (and the model behind it) reads.
pub fn denial_message(reasons: &[String]) -> String {
    format!("Denied by policy: {}", reasons.join("; "))
}

/// The message of a denial: the policy's own (`denial.message`), else
/// [`denial_message`].
fn denial_text(d: &Denial, reasons: &[String]) -> String {
    d.message.clone().unwrap_or_else(|| denial_message(reasons))
}

/// A denied single message: a request gets HTTP 200 and a JSON-RPC
/// error with its id (the client's session carries on) — or, when the
/// policy asks for it, a tools/call result with `isError: true`; a
/// notification or a client response has no id to answer, so it gets
/// HTTP 403.
pub(crate) fn denial_reply(
    m: &Message<'_>,
    o: &Outcome,
    modern: bool,
    deny_code: i64,
) -> LocalReply {
    let d = &o.result.denial;
    let reasons = &o.reasons;
    let message = denial_text(d, reasons);
    let code = d.code.unwrap_or(deny_code);
    let mut reply = match (m.kind, m.id_raw) {
        (Kind::Request, Some(id)) if d.as_tool_result && subject::is_tool_call(m.method()) => {
            tool_error_reply(d.http_status.unwrap_or(200), id.get(), &message, modern)
        }
        (Kind::Request, Some(id)) => error_reply(
            d.http_status.unwrap_or(200),
            Some(id.get()),
            code,
            &message,
            Some(reasons),
        ),
        _ => error_reply(
            d.http_status.unwrap_or(403),
            None,
            code,
            &message,
            Some(reasons),
        ),
    };
    reply
        .headers
        .extend(o.result.response_headers.iter().cloned());
    reply.log = format!(
        "denied {}{}: {}",
        m.method().unwrap_or(m.kind.as_str()),
        match m.routing_name() {
            Some(n) => format!(" {n:?}"),
            None => String::new(),
        },
        reasons.join("; ")
    );
    reply
}

/// A denied transport request (no message): HTTP 403 (or the policy's
/// status) with a JSON-RPC error without id.
pub(crate) fn transport_denial(http: &HttpRequest, o: &Outcome, deny_code: i64) -> LocalReply {
    let d = &o.result.denial;
    let mut reply = error_reply(
        d.http_status.unwrap_or(403),
        None,
        d.code.unwrap_or(deny_code),
        &denial_text(d, &o.reasons),
        Some(&o.reasons),
    );
    reply
        .headers
        .extend(o.result.response_headers.iter().cloned());
    reply.log = transport_log(http, &o.reasons);
    reply
}

/// A transport request refused by the filter itself (a session bound to
/// another principal).
pub(crate) fn transport_refusal(
    http: &HttpRequest,
    reasons: &[String],
    deny_code: i64,
) -> LocalReply {
    let mut reply = error_reply(
        403,
        None,
        deny_code,
        &denial_message(reasons),
        Some(reasons),
    );
    reply.log = transport_log(http, reasons);
    reply
}

fn transport_log(http: &HttpRequest, reasons: &[String]) -> String {
    format!(
        "denied {} {}: {}",
        http.method,
        http.path,
        reasons.join("; ")
    )
}

/// A batch that is not forwarded: the error objects of its requests in one
/// array (HTTP 200), or, when none of its elements is a request, HTTP 403
/// with every denied element's reasons.
pub(crate) fn batch_denial(
    errors: Vec<String>,
    reasons: Vec<String>,
    deny_code: i64,
    log: String,
) -> LocalReply {
    if errors.is_empty() {
        let mut r = error_reply(
            403,
            None,
            deny_code,
            &denial_message(&reasons),
            Some(&reasons),
        );
        r.log = log;
        r
    } else {
        LocalReply {
            status: 200,
            headers: json_headers(),
            body: format!("[{}]", errors.join(",")).into_bytes(),
            log,
        }
    }
}

/// The answer that replaces a blocked response: a JSON-RPC error with
/// the request's id (or, for tools/call when the policy's `denial` asks
/// for it, a tool result with `isError: true`).
pub(crate) fn blocked_answer(
    origin: &Origin,
    o: &Outcome,
    reasons: &[String],
    deny_code: i64,
) -> String {
    let d = &o.result.denial;
    let message = denial_text(d, reasons);
    if d.as_tool_result && subject::is_tool_call(Some(&origin.method)) {
        return tool_error_body(&origin.id_raw, &message, origin.modern);
    }
    error_object(
        Some(&origin.id_raw),
        d.code.unwrap_or(deny_code),
        &message,
        Some(reasons),
    )
}

/// The error a waiting request gets when the filter refuses the server's
/// response to it (unreadable, too large, compressed…).
pub(crate) fn refused_response(id_raw: &str, reason: &str) -> String {
    error_object(
        Some(id_raw),
        INTERNAL_ERROR,
        &refused_response_message(reason),
        Some(std::slice::from_ref(&reason.to_string())),
    )
}

/// The message of [`refused_response`].
pub(crate) fn refused_response_message(reason: &str) -> String {
    format!("mcp-policy refused the server's response: {reason}")
}

pub(crate) fn parse_error_reply(e: &ParseError) -> LocalReply {
    match e {
        ParseError::NotJson(_) => error_reply(400, None, PARSE_ERROR, &e.to_string(), None),
        ParseError::Invalid(inv) => error_reply(
            400,
            inv.id_raw.as_deref(),
            INVALID_REQUEST,
            &e.to_string(),
            None,
        ),
        ParseError::EmptyBatch => error_reply(400, None, INVALID_REQUEST, &e.to_string(), None),
    }
}

/// Routing headers that disagree with the body (or cannot be read).
pub(crate) fn header_mismatch(id_raw: Option<&str>, msg: &str) -> LocalReply {
    error_reply(
        400,
        id_raw,
        HEADER_MISMATCH,
        &format!("Header mismatch: {msg}"),
        None,
    )
}

/// A body past `max_body_bytes`.
pub(crate) fn too_large(limit: usize) -> LocalReply {
    error_reply(
        413,
        None,
        INVALID_REQUEST,
        &format!(
            "request body exceeds the {limit} byte limit (max_body_bytes) and was not forwarded"
        ),
        None,
    )
}

/// A request body compressed with `enc`.
pub(crate) fn unaccepted_encoding(enc: &str) -> LocalReply {
    error_reply(
        415,
        None,
        INVALID_REQUEST,
        &format!(
            "request Content-Encoding '{enc}' is not accepted: the policy must read the body as sent (send it uncompressed)"
        ),
        None,
    )
}

/// A POST whose media type (lower-cased; `None`: no Content-Type) is not
/// JSON.
pub(crate) fn unaccepted_content_type(media: Option<&str>) -> LocalReply {
    error_reply(
        415,
        None,
        INVALID_REQUEST,
        &match media {
            None => "request has no Content-Type: MCP messages must be sent as application/json".to_string(),
            Some(t) => format!("request Content-Type '{t}' is not accepted: MCP messages must be sent as application/json"),
        },
        None,
    )
}

/// A GET, DELETE or any other non-POST request that carries a body: the
/// MCP servers never read that body as a message, so it is not decided as
/// one (it would decide a DELETE by a `ping` it carries).
pub(crate) fn body_on_non_post(http: &HttpRequest) -> LocalReply {
    let method = &http.method;
    let mut reply = error_reply(
        400,
        None,
        INVALID_REQUEST,
        &format!(
            "a {method} request cannot carry a body: MCP messages are sent with POST; the request was not forwarded"
        ),
        None,
    );
    reply.log = format!(
        "refused {method} {}: a body on a {method} request",
        http.path
    );
    reply
}

/// A non-POST request that may carry a body of unknown length, with
/// `hold_headers: false`: its headers cannot be held until the body is in.
pub(crate) fn unheld_non_post(http: &HttpRequest) -> LocalReply {
    let method = &http.method;
    let mut reply = error_reply(
        400,
        None,
        INVALID_REQUEST,
        &format!(
            "a {method} request must end with its headers (or declare Content-Length: 0): with hold_headers: false a body of unknown length cannot be checked before the server acts; the request was not forwarded"
        ),
        None,
    );
    reply.log = format!(
        "refused {method} {}: a body of unknown length with hold_headers: false",
        http.path
    );
    reply
}
