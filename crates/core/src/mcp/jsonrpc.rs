//! The MCP wire model: JSON-RPC 2.0 messages as MCP carries them over
//! Streamable HTTP, for every released protocol version (2024-11-05 through
//! 2026-07-28).
//!
//! A body is parsed once, straight into regorus values (no intermediate
//! `serde_json::Value`), and classified as a request, a notification or a
//! client-sent response. The raw bytes are never re-serialised: an allowed
//! body is forwarded exactly as received, so the proxy and the server read
//! the same message.
//!
//! Parsing is strict where leniency would let the proxy and the server read a
//! message differently: duplicate top-level members, a `null` or fractional
//! `id`, non-object `params`, invalid UTF-8, trailing data and non-finite
//! numbers are all rejected; nesting, lone surrogates and costly numbers are
//! refused in every member by [`check_structure`] before serde reads the
//! body. Integers keep full precision (serde_json `arbitrary_precision`), as
//! the Python SDK does.

use regorus::Value;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Every protocol version this build knows, oldest first.
pub const KNOWN_PROTOCOL_VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// The `_meta` key that carries the protocol version in 2026-07-28 requests.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key that carries client info in 2026-07-28 requests.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// The `_meta` key that carries client capabilities in 2026-07-28 requests.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

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
        match self.method()? {
            "tools/call" | "prompts/get" => self.params[&crate::mcp::keys::key("name")]
                .as_string()
                .ok()
                .map(|s| s.as_ref()),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => self.params
                [&crate::mcp::keys::key("uri")]
                .as_string()
                .ok()
                .map(|s| s.as_ref()),
            _ => None,
        }
    }

    /// Whether the method is one of those for which the 2026-07-28
    /// transport requires an `Mcp-Name` header.
    pub fn requires_routing_name(&self) -> bool {
        matches!(
            self.method(),
            Some("tools/call" | "resources/read" | "prompts/get")
        )
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

/// Parse a request body.
pub fn parse(body: &[u8]) -> Result<Body<'_>, ParseError> {
    parse_with(body, true)
}

/// Parse a message without turning a response's `result` into a policy
/// value: the message is checked exactly as [`parse`] checks it, and
/// `result`, when present, is `null`. For responses nothing evaluates
/// (list filtering reads the result as JSON), where building the value
/// would cost more than the rest of the parse.
pub fn parse_shallow(body: &[u8]) -> Result<Body<'_>, ParseError> {
    parse_with(body, false)
}

fn parse_with(body: &[u8], results: bool) -> Result<Body<'_>, ParseError> {
    // Invalid UTF-8 anywhere, also in members the parser skips (serde
    // skips unknown members without validating them): the SDK servers
    // decode the whole body first and refuse it.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ParseError::NotJson(format!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        )));
    }
    check_structure(body).map_err(ParseError::NotJson)?;
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .copied();
    match first {
        Some(b'[') => parse_batch(body, results),
        Some(b'{') => {
            let env: Envelope = serde_json::from_slice(body).map_err(classify_error)?;
            env.into_message(results)
                .map(Body::Single)
                .map_err(ParseError::Invalid)
        }
        Some(_) => {
            // Valid JSON that is not an object or array is an invalid
            // request; anything else is not JSON at all.
            match serde_json::from_slice::<de::IgnoredAny>(body) {
                Ok(_) => Err(ParseError::Invalid(Invalid {
                    id_raw: None,
                    reason: "a JSON-RPC message must be a JSON object".into(),
                })),
                Err(e) => Err(ParseError::NotJson(e.to_string())),
            }
        }
        None => Err(ParseError::NotJson("empty body".into())),
    }
}

/// The most digits of an integer literal: CPython's `int` refuses longer
/// ones (`sys.int_info.default_max_str_digits`), so the Python SDK cannot
/// read them either.
pub const MAX_INTEGER_DIGITS: usize = 4300;

/// The most digits (before the exponent, integer and fraction parts
/// together) of a number literal with a fraction or an exponent. The same
/// bound as for integers: no serialiser of a double writes more than 17
/// significant digits, and this keeps the exact value regorus builds small.
pub const MAX_NUMBER_DIGITS: usize = 4300;

/// The largest exponent a number literal may write (`1e1000`, `1e-1000`).
/// Every double is written with an exponent between −324 and 308 (shortest
/// form) or a little beyond when its digits are written out; regorus builds
/// a literal with a positive exponent as an exact integer, so `0e20000000`
/// (which is 0.0 to every JSON reader) would cost it 10^20000000.
pub const MAX_EXPONENT: u64 = 1000;

/// The most arrays and objects nested in one another in a body, the
/// outermost (the message object, or a batch's array) included. The 128th
/// is refused: serde_json's recursion limit is 128 and refuses exactly that
/// one, so the pre-scan and every later parse agree (docs/hardening.md).
pub const MAX_NESTING: usize = 127;

/// The structural pre-scan every body goes through before serde (and so
/// before regorus or any exact-number code) reads it: requests, batches,
/// server responses and SSE event data, whatever member holds the bytes (serde
/// skips members the wire model does not name without checking them). One
/// linear pass, no allocation; syntax errors are left to the JSON parser.
/// It refuses:
/// - arrays and objects nested more than [`MAX_NESTING`] deep;
/// - a lone surrogate in a `\u` escape, in any string or object key: a high
///   surrogate (`\ud800`–`\udbff`) not followed by a `\u` low surrogate
///   (`\udc00`–`\udfff`), or a low surrogate on its own;
/// - numbers the MCP servers read differently, or that cost too much to
///   hold exactly: a literal with a fraction or exponent whose value
///   overflows a double (`1e400`: Python reads `inf`), whose exponent is
///   beyond ±[`MAX_EXPONENT`] (`0e20000000`), or which has more than
///   [`MAX_NUMBER_DIGITS`] digits; an integer of more than
///   [`MAX_INTEGER_DIGITS`] digits.
pub fn check_structure(body: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => i = scan_string(body, i + 1)?,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "arrays and objects nested more than {MAX_NESTING} deep (byte {i})"
                    ));
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => i = scan_number(body, i)?,
            _ => i += 1,
        }
    }
    Ok(())
}

/// The value of the four hex digits at `at`, if they are hex digits.
fn hex4(body: &[u8], at: usize) -> Option<u32> {
    let digits = body.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc * 16 + d)
    })
}

/// From just after an opening quote to just after the closing one (or the
/// end of the body): checks `\u` escapes for lone surrogates.
fn scan_string(body: &[u8], mut i: usize) -> Result<usize, String> {
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => return Ok(i + 1),
            b'\\' => {
                if body.get(i + 1) != Some(&b'u') {
                    i += 2;
                    continue;
                }
                let Some(unit) = hex4(body, i + 2) else {
                    // Not an escape: the JSON parser says so.
                    i += 2;
                    continue;
                };
                match unit {
                    0xD800..=0xDBFF => {
                        let low = match body.get(i + 6..i + 8) {
                            Some(b"\\u") => hex4(body, i + 8),
                            _ => None,
                        };
                        if !low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) {
                            return Err(format!(
                                "lone surrogate \\u{unit:04x} in a string (byte {i}): a high surrogate must be followed by a \\u escape of a low surrogate"
                            ));
                        }
                        i += 12;
                    }
                    0xDC00..=0xDFFF => {
                        return Err(format!(
                            "lone surrogate \\u{unit:04x} in a string (byte {i}): a low surrogate without a high surrogate before it"
                        ));
                    }
                    _ => i += 6,
                }
            }
            _ => i += 1,
        }
    }
    Ok(i)
}

/// One number literal from `start` (a `-` or a digit), as the JSON grammar
/// reads it; returns where it ends. The exponent's digits are counted, not
/// parsed into an unbounded integer.
fn scan_number(body: &[u8], start: usize) -> Result<usize, String> {
    let digits_from = |mut i: usize| {
        while body.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = start;
    if body.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_end = digits_from(i);
    let mut digits = int_end - i;
    i = int_end;
    let mut float = false;
    if body.get(i) == Some(&b'.') {
        float = true;
        let end = digits_from(i + 1);
        digits += end - (i + 1);
        i = end;
    }
    let mut exponent = 0u64;
    if matches!(body.get(i), Some(b'e' | b'E')) {
        float = true;
        i += 1;
        if matches!(body.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while let Some(&c) = body.get(i).filter(|c| c.is_ascii_digit()) {
            exponent = exponent
                .saturating_mul(10)
                .saturating_add(u64::from(c - b'0'));
            i += 1;
        }
    }
    let text = || {
        body.get(start..i)
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or_default()
    };
    if !float {
        if digits > MAX_INTEGER_DIGITS {
            return Err(format!(
                "an integer of more than {MAX_INTEGER_DIGITS} digits is out of range"
            ));
        }
        return Ok(i);
    }
    if digits > MAX_NUMBER_DIGITS {
        return Err(format!(
            "a number of more than {MAX_NUMBER_DIGITS} digits is out of range"
        ));
    }
    if exponent > MAX_EXPONENT {
        return Err(format!(
            "the number {} is out of range (its exponent is beyond ±{MAX_EXPONENT})",
            shorten(text())
        ));
    }
    if text().parse::<f64>().is_ok_and(|f| f.is_infinite()) {
        return Err(format!(
            "the number {} is out of range (beyond a double: MCP servers read it as infinity)",
            shorten(text())
        ));
    }
    Ok(i)
}

fn shorten(text: &str) -> String {
    if text.len() <= 40 {
        return text.to_string();
    }
    let head: String = text.chars().take(37).collect();
    format!("{head}...")
}

fn parse_batch(body: &[u8], results: bool) -> Result<Body<'_>, ParseError> {
    let elements: Vec<&RawValue> = serde_json::from_slice(body).map_err(classify_error)?;
    if elements.is_empty() {
        return Err(ParseError::EmptyBatch);
    }
    let mut out = Vec::with_capacity(elements.len());
    for raw in elements {
        let text = raw.get();
        let parsed = if text.starts_with('{') {
            match serde_json::from_str::<Envelope>(text) {
                Ok(env) => env.into_message(results),
                Err(e) => Err(Invalid {
                    id_raw: None,
                    reason: e.to_string(),
                }),
            }
        } else {
            Err(Invalid {
                id_raw: None,
                reason: "a batch element must be a JSON object".into(),
            })
        };
        out.push(parsed);
    }
    Ok(Body::Batch(out))
}

/// serde errors that come from the data model (a duplicate field, a wrong
/// type) mean valid JSON but an invalid message; the rest is "not JSON".
fn classify_error(e: serde_json::Error) -> ParseError {
    match e.classify() {
        serde_json::error::Category::Data => ParseError::Invalid(Invalid {
            id_raw: None,
            reason: e.to_string(),
        }),
        _ => ParseError::NotJson(e.to_string()),
    }
}

/// The members of a JSON-RPC message. Unknown members are ignored (as the
/// SDKs do); known members may appear once (serde rejects duplicates).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present_value")]
    params: Option<Value>,
    /// Kept as text until [`Envelope::into_message`] decides whether the
    /// policy gets it as a value.
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present_value")]
    error: Option<Value>,
}

/// A member that is present (even as `null`) is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn present_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl<'a> Envelope<'a> {
    fn into_message(self, results: bool) -> Result<Message<'a>, Invalid> {
        let id_raw_text = self.id.map(|r| r.get().to_string());
        let fail = |reason: &str| Invalid {
            id_raw: id_raw_text.clone(),
            reason: reason.to_string(),
        };
        match self.jsonrpc.map(RawValue::get) {
            Some("\"2.0\"") => {}
            Some(_) => return Err(fail("`jsonrpc` must be \"2.0\"")),
            None => return Err(fail("missing `jsonrpc`")),
        }
        let id = match self.id {
            None => None,
            Some(raw) => Some((
                raw,
                id_value(raw).ok_or_else(|| Invalid {
                    id_raw: None,
                    reason: "`id` must be a string or an integer".into(),
                })?,
            )),
        };
        let method = match self.method {
            None => None,
            Some(raw) => match serde_json::from_str::<Cow<'a, str>>(raw.get()) {
                Ok(m) => Some(m),
                Err(_) => return Err(fail("`method` must be a string")),
            },
        };
        let params = match self.params {
            None => Value::Undefined,
            Some(p @ Value::Object(_)) => p,
            Some(_) => return Err(fail("`params` must be an object")),
        };
        // The fields a policy names things by must have their schema type,
        // or a rule comparing or formatting them could silently not apply.
        let field_is = |key: &str, ok: fn(&Value) -> bool| ok(&params[key]);
        let is_string = |v: &Value| matches!(v, Value::String(_));
        let object_or_absent =
            |v: &Value| matches!(v, Value::Object(_) | Value::Undefined | Value::Null);
        match method.as_deref() {
            Some("tools/call" | "prompts/get") => {
                if !field_is("name", is_string) {
                    return Err(fail("`params.name` must be a string"));
                }
                if !field_is("arguments", object_or_absent) {
                    return Err(fail("`params.arguments` must be an object"));
                }
            }
            Some("resources/read" | "resources/subscribe" | "resources/unsubscribe")
                if !field_is("uri", is_string) =>
            {
                return Err(fail("`params.uri` must be a string"));
            }
            _ => {}
        }
        let (id_raw, id) = match id {
            Some((raw, v)) => (Some(raw), v),
            None => (None, Value::Undefined),
        };
        let kind = match (&method, id_raw.is_some(), &self.result, &self.error) {
            (Some(_), _, Some(_), _) | (Some(_), _, _, Some(_)) => {
                return Err(fail(
                    "a message cannot have both `method` and `result`/`error`",
                ))
            }
            (Some(_), true, None, None) => Kind::Request,
            (Some(_), false, None, None) => Kind::Notification,
            (None, true, Some(_), None) | (None, true, None, Some(_)) => Kind::Response,
            (None, true, Some(_), Some(_)) => {
                return Err(fail("a response cannot have both `result` and `error`"))
            }
            (None, true, None, None) => {
                return Err(fail(
                    "missing `method` (or `result`/`error` for a response)",
                ))
            }
            (None, false, _, _) => return Err(fail("missing `method`")),
        };
        Ok(Message {
            kind,
            id_raw,
            id,
            method,
            params,
            result: match self.result {
                None => Value::Undefined,
                Some(_) if !results => Value::Null,
                Some(raw) => serde_json::from_str::<Value>(raw.get()).map_err(|e| Invalid {
                    id_raw: id_raw_text.clone(),
                    reason: format!("unreadable `result`: {e}"),
                })?,
            },
            error: self.error.unwrap_or(Value::Undefined),
        })
    }
}

/// MCP ids are strings or integers (never null, never fractional).
fn id_value(raw: &RawValue) -> Option<Value> {
    let text = raw.get();
    if text.starts_with('"') {
        return serde_json::from_str::<String>(text).ok().map(Value::from);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Value::from_json_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(s: &str) -> Message<'_> {
        match parse(s.as_bytes()) {
            Ok(Body::Single(m)) => m,
            other => panic!("expected a single message, got {other:?}"),
        }
    }

    #[test]
    fn request_notification_response() {
        let m = single(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
        );
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.id_raw.unwrap().get(), "7");
        assert_eq!(m.method(), Some("tools/call"));
        assert_eq!(m.routing_name(), Some("echo"));
        assert_eq!(m.params["arguments"]["text"], Value::from("hi"));

        let m = single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(m.kind, Kind::Notification);
        assert!(m.id_raw.is_none());
        assert_eq!(m.params, Value::Undefined);

        let m = single(r#"{"jsonrpc":"2.0","id":"s-1","result":{"roots":[]}}"#);
        assert_eq!(m.kind, Kind::Response);
        assert_eq!(m.id, Value::from("s-1"));
        let m = single(r#"{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"no"}}"#);
        assert_eq!(m.kind, Kind::Response);
    }

    #[test]
    fn escaped_method_names_are_decoded() {
        let m =
            single(r#"{"jsonrpc":"2.0","id":1,"method":"tools\/c\u0061ll","params":{"name":"x"}}"#);
        assert_eq!(m.method(), Some("tools/call"));
    }

    #[test]
    fn big_integers_stay_exact() {
        let m = single(
            r#"{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/call","params":{"name":"x","arguments":{"n":9007199254740993}}}"#,
        );
        assert_eq!(m.id_raw.unwrap().get(), "9007199254740993");
        assert_eq!(m.params["arguments"]["n"].to_string(), "9007199254740993");
    }

    fn invalid(s: &str) -> String {
        match parse(s.as_bytes()) {
            Err(ParseError::Invalid(i)) => i.reason,
            other => panic!("expected invalid for {s}, got {other:?}"),
        }
    }

    fn not_json(s: &[u8]) {
        match parse(s) {
            Err(ParseError::NotJson(_)) => {}
            other => panic!(
                "expected not-json for {:?}, got {other:?}",
                String::from_utf8_lossy(s)
            ),
        }
    }

    #[test]
    fn strictness() {
        assert!(
            invalid(r#"{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}"#).contains("duplicate")
        );
        assert!(invalid(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).contains("id"));
        assert!(invalid(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#).contains("id"));
        assert!(
            invalid(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#).contains("params")
        );
        assert!(invalid(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).contains("jsonrpc"));
        assert!(invalid(r#"{"id":1,"method":"ping"}"#).contains("jsonrpc"));
        assert!(invalid(r#"{"jsonrpc":"2.0","id":1,"method":7}"#).contains("method"));
        assert!(invalid(r#"{"jsonrpc":"2.0","id":1}"#).contains("method"));
        assert!(invalid(r#"{"jsonrpc":"2.0","method":"x","result":{}}"#).contains("both"));
        assert!(invalid(r#""hello""#).contains("object"));
        assert!(
            invalid(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#)
                .contains("params.name")
        );
        assert!(
            invalid(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#).contains("params.name")
        );
        assert!(invalid(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#).contains("arguments"));
        assert!(invalid(
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":["x"]}}"#
        )
        .contains("params.name"));
        assert!(invalid(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":null}}"#
        )
        .contains("params.uri"));
        not_json(b"");
        not_json(b"{");
        not_json(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x");
        not_json(b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
        not_json(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":NaN}}");
        not_json(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xff\"}");
        not_json(br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\ud800"}}"#);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":{deep}}}}}"#);
        assert!(parse(body.as_bytes()).is_err());
    }

    #[test]
    fn batches_keep_each_element() {
        let b = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},7,{"jsonrpc":"2.0","id":2}]"#).unwrap();
        let Body::Batch(items) = b else {
            panic!("batch")
        };
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].as_ref().unwrap().kind, Kind::Request);
        assert_eq!(items[1].as_ref().unwrap().kind, Kind::Notification);
        assert!(items[2].is_err());
        assert_eq!(items[3].as_ref().unwrap_err().id_raw.as_deref(), Some("2"));
        assert_eq!(parse(b" [ ] ").unwrap_err(), ParseError::EmptyBatch);
    }

    #[test]
    fn routing_name_and_meta_version() {
        let m = single(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        assert_eq!(m.routing_name(), Some("file:///a"));
        assert!(m.requires_routing_name());
        assert_eq!(m.meta_protocol_version(), Some("2026-07-28"));
        let m = single(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!(m.routing_name(), None);
        assert!(!m.requires_routing_name());
    }

    #[test]
    fn numbers_beyond_a_double_or_too_long_are_not_json() {
        let msg = |n: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{{"a":{n}}}}}}}"#
            )
        };
        for bad in [
            "1e400",
            "-1e400",
            "1E+999",
            "1e1000000",
            "17976931348623159e292",
        ] {
            match parse(msg(bad).as_bytes()) {
                Err(ParseError::NotJson(e)) => assert!(e.contains("out of range"), "{e}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let long = "9".repeat(MAX_INTEGER_DIGITS + 1);
        assert!(matches!(
            parse(msg(&long).as_bytes()),
            Err(ParseError::NotJson(_))
        ));
        for ok in [
            "1e308",
            "-1.5e-400",
            "0.1",
            "123456789012345678901234567890",
            &"9".repeat(MAX_INTEGER_DIGITS),
        ] {
            assert!(parse(msg(ok).as_bytes()).is_ok(), "{ok}");
        }
        // Inside strings, escaped quotes included, digits are text.
        let s = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\"1e400","b":"1e400"}}"#;
        assert!(parse(s.as_bytes()).is_ok());
    }

    fn not_json_because(body: &[u8], what: &str) {
        match parse(body) {
            Err(ParseError::NotJson(e)) => assert!(e.contains(what), "{e}"),
            other => panic!(
                "expected not-json ({what}) for {:?}, got {other:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }

    #[test]
    fn the_66_byte_zero_with_a_huge_exponent_is_refused_at_once() {
        let body = br#"{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":0e20000000}}"#;
        assert_eq!(body.len(), 66);
        let t = std::time::Instant::now();
        not_json_because(body, "exponent");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        // In every member, and in the response path's shallow parse.
        for body in [
            r#"{"jsonrpc":"2.0","id":2,"method":"ping","extra":[0e20000000]}"#,
            r#"{"jsonrpc":"2.0","id":2,"result":{"x":-0.0E+20000000}}"#,
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"m","data":1e-1001}}"#,
            r#"[{"jsonrpc":"2.0","id":2,"method":"ping","params":{"_meta":{"x":0e1001}}}]"#,
        ] {
            not_json_because(body.as_bytes(), "exponent");
            assert!(matches!(
                parse_shallow(body.as_bytes()),
                Err(ParseError::NotJson(_))
            ));
        }
        // A megabyte of exponent digits is counted, not parsed.
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"ping","x":1e{}}}"#,
            "9".repeat(1 << 20)
        );
        not_json_because(body.as_bytes(), "exponent");
    }

    #[test]
    fn numbers_with_too_many_digits_are_refused() {
        let msg = |n: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","x":{n}}}"#);
        let fraction = format!("0.{}", "1".repeat(MAX_NUMBER_DIGITS));
        not_json_because(msg(&fraction).as_bytes(), "digits");
        let fraction = format!("0.{}", "1".repeat(MAX_NUMBER_DIGITS - 1));
        assert!(parse(msg(&fraction).as_bytes()).is_ok());
        let mantissa = format!("{}e-5000", "1".repeat(MAX_NUMBER_DIGITS + 1));
        not_json_because(msg(&mantissa).as_bytes(), "digits");
    }

    #[test]
    fn legitimate_numbers_stay_accepted() {
        // What Python's json and JavaScript's JSON.parse (the TypeScript
        // SDK) read as ordinary numbers.
        for ok in [
            "1e-5",
            "1.5E+3",
            "-0.0",
            "-0",
            "0",
            "12345678901234567890",
            "5e-324",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "123456789012345678e-340",
            "1e-1000",
            "0e1000",
            "-0.5e+0",
            "1E0",
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":{ok}}},"b":[{ok}]}}"#
            );
            assert!(parse(body.as_bytes()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn nesting_is_limited_in_every_member() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // The message object is one level: 126 more are accepted, in any
        // member, and serde agrees.
        for member in ["params", "unknown"] {
            let ok = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","{member}":{{"a":{}}}}}"#,
                nest(MAX_NESTING - 2)
            );
            assert!(parse(ok.as_bytes()).is_ok(), "{member}");
            let deep = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","{member}":{{"a":{}}}}}"#,
                nest(MAX_NESTING - 1)
            );
            not_json_because(deep.as_bytes(), "nested more than 127");
        }
        // Objects count as arrays do, in `_meta` too, and far deeper.
        let objects = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        let meta = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"_meta":{}}}}}"#,
            objects(200)
        );
        not_json_because(meta.as_bytes(), "nested");
        let unknown = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","x":{}}}"#,
            nest(100_000)
        );
        not_json_because(unknown.as_bytes(), "nested");
        // A batch's array is a level: its elements get one less.
        let batch = format!(
            r#"[{{"jsonrpc":"2.0","id":1,"method":"ping","x":{}}}]"#,
            nest(MAX_NESTING - 1)
        );
        not_json_because(batch.as_bytes(), "nested");
        let batch = format!(
            r#"[{{"jsonrpc":"2.0","id":1,"method":"ping","x":{}}}]"#,
            nest(MAX_NESTING - 2)
        );
        assert!(parse(batch.as_bytes()).is_ok());
        // Brackets in strings are text.
        let text = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","x":"{}"}}"#,
            "[".repeat(500)
        );
        assert!(parse(text.as_bytes()).is_ok());
    }

    #[test]
    fn lone_surrogates_are_refused_in_every_string_and_key() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","unknown":"\ud800"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","unknown":{"deep":["\udfff"]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","unknown":{"\ud83d":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"\uDC00x":1}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x\ud800":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud800\ud800"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud800\n"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud800\u0041"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud800"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping","x":"\udbff"}]"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"x":"\ud800"}}"#,
        ] {
            not_json_because(body.as_bytes(), "lone surrogate");
        }
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud83d\ude00 \\ud800 \\\ud83d\uDE00"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","\ud83d\ude00":"\u00e9\uffff\u0000"}"#,
        ] {
            assert!(parse(body.as_bytes()).is_ok(), "{body}");
        }
    }

    #[test]
    fn invalid_utf8_in_skipped_members_is_not_json() {
        let body = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"unknown\":{\"a\xff\":1}}";
        match parse(body) {
            Err(ParseError::NotJson(e)) => assert!(e.contains("UTF-8"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
