//! Reading a body into the message model: the structural pre-scan, then
//! serde straight into regorus values, one message or each element of a
//! batch on its own.

use crate::mcp::jsonrpc::message::{Body, Invalid, Kind, Message, ParseError};
use crate::mcp::jsonrpc::structure::check_structure;
use crate::mcp::methods;
use regorus::Value;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

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
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            return Err(ParseError::NotJson(format!(
                "invalid UTF-8 at byte {}",
                e.valid_up_to()
            )))
        }
    };
    check_structure(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    // From here serde reads the text as `str`: the UTF-8 is checked once,
    // above, not again in every string.
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .copied();
    match first {
        Some(b'[') => parse_batch(text, results),
        Some(b'{') => {
            let env: Envelope = serde_json::from_str(text).map_err(classify_error)?;
            env.into_message(results)
                .map(Body::Single)
                .map_err(ParseError::Invalid)
        }
        Some(_) => {
            // Valid JSON that is not an object or array is an invalid
            // request; anything else is not JSON at all.
            match serde_json::from_str::<de::IgnoredAny>(text) {
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

fn parse_batch(body: &str, results: bool) -> Result<Body<'_>, ParseError> {
    let elements: Vec<&RawValue> = serde_json::from_str(body).map_err(classify_error)?;
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
        match method.as_deref().and_then(methods::subject) {
            Some((kind, param)) if kind.has_arguments() => {
                if !field_is(param, is_string) {
                    return Err(fail("`params.name` must be a string"));
                }
                if !field_is("arguments", object_or_absent) {
                    return Err(fail("`params.arguments` must be an object"));
                }
            }
            Some((_, param)) if !field_is(param, is_string) => {
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
pub(crate) fn id_value(raw: &RawValue) -> Option<Value> {
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
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
}
