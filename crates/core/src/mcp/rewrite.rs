//! Argument rewriting: the policy's `rewrite` output applied to a message's
//! `params.arguments` (parameter-level lockdown: replace, redact, clamp or
//! default an argument). Only this path re-serialises a body; an unchanged
//! message is always forwarded byte for byte.
//!
//! Keys are argument names, or JSON pointers into the arguments when they
//! start with `/` (`/filter/limit`); missing objects on the way are created.

use regorus::Value;

/// Why a rewrite could not be applied (the message is then refused).
#[derive(Debug)]
pub enum RewriteError {
    /// The body does not parse as JSON.
    BodyNotJson(serde_json::Error),
    /// The message has no `params` object.
    NoParams,
    /// `params.arguments` is not an object.
    ArgumentsNotObject,
    /// The policy's value for `key` is not JSON.
    ValueNotJson { key: String, detail: String },
    /// The policy's value for `key` does not read back as JSON.
    Value {
        key: String,
        error: serde_json::Error,
    },
    /// A pointer `token` into an array is not an index.
    NotAnIndex { pointer: String, token: String },
    /// A pointer's array index is out of range.
    OutOfRange { pointer: String, index: usize },
    /// A pointer goes through a value that is not an object.
    ThroughNonObject { pointer: String },
    /// Cannot happen: a value just made an object is not one.
    Internal,
    /// The rewritten message does not serialise.
    Serialize(serde_json::Error),
    /// The rewritten message is one the filter would refuse.
    Refused(crate::mcp::jsonrpc::ParseError),
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewriteError::BodyNotJson(e) => write!(f, "rewrite: body is not JSON: {e}"),
            RewriteError::NoParams => write!(f, "rewrite: the message has no params object"),
            RewriteError::ArgumentsNotObject => write!(f, "rewrite: arguments is not an object"),
            RewriteError::ValueNotJson { key, detail } => {
                write!(f, "rewrite: value for {key:?} is not JSON: {detail}")
            }
            RewriteError::Value { key, error } => write!(f, "rewrite: {key:?}: {error}"),
            RewriteError::NotAnIndex { pointer, token } => {
                write!(f, "rewrite: {pointer:?}: {token:?} is not an array index")
            }
            RewriteError::OutOfRange { pointer, index } => {
                write!(f, "rewrite: {pointer:?}: index {index} is out of range")
            }
            RewriteError::ThroughNonObject { pointer } => write!(
                f,
                "rewrite: {pointer:?} goes through a value that is not an object"
            ),
            RewriteError::Internal => write!(f, "rewrite: internal error"),
            RewriteError::Serialize(e) => write!(f, "rewrite: {e}"),
            RewriteError::Refused(e) => {
                write!(f, "rewrite: the rewritten message is refused: {e}")
            }
        }
    }
}

impl std::error::Error for RewriteError {}

/// Apply `rewrites` to the arguments of the JSON-RPC message in `body` and
/// return the new body.
pub fn arguments(body: &[u8], rewrites: &[(String, Value)]) -> Result<Vec<u8>, RewriteError> {
    let mut msg: serde_json::Value =
        serde_json::from_slice(body).map_err(RewriteError::BodyNotJson)?;
    let params = msg
        .get_mut("params")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or(RewriteError::NoParams)?;
    let args = params
        .entry("arguments")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if args.is_null() {
        *args = serde_json::Value::Object(serde_json::Map::new());
    }
    for (key, value) in rewrites {
        let text = value
            .to_json_str()
            .map_err(|e| RewriteError::ValueNotJson {
                key: key.clone(),
                detail: e.to_string(),
            })?;
        let new: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| RewriteError::Value {
                key: key.clone(),
                error,
            })?;
        let slot = if key.starts_with('/') {
            pointer_slot(args, key)?
        } else {
            args.as_object_mut()
                .ok_or(RewriteError::ArgumentsNotObject)?
                .entry(key.clone())
                .or_insert(serde_json::Value::Null)
        };
        *slot = new;
    }
    let out = serde_json::to_vec(&msg).map_err(RewriteError::Serialize)?;
    // What is forwarded must be a message the filter itself would accept
    // (a long pointer can create objects nested past the parser's limit).
    crate::mcp::jsonrpc::parse(&out).map_err(RewriteError::Refused)?;
    Ok(out)
}

/// The value at a JSON pointer, creating objects along the way.
fn pointer_slot<'a>(
    root: &'a mut serde_json::Value,
    pointer: &str,
) -> Result<&'a mut serde_json::Value, RewriteError> {
    let mut cur = root;
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        cur = match cur {
            serde_json::Value::Object(o) => o.entry(token).or_insert(serde_json::Value::Null),
            serde_json::Value::Array(a) => {
                let i: usize = token.parse().map_err(|_| RewriteError::NotAnIndex {
                    pointer: pointer.to_string(),
                    token: token.clone(),
                })?;
                a.get_mut(i).ok_or_else(|| RewriteError::OutOfRange {
                    pointer: pointer.to_string(),
                    index: i,
                })?
            }
            serde_json::Value::Null => {
                *cur = serde_json::Value::Object(serde_json::Map::new());
                match cur {
                    serde_json::Value::Object(o) => {
                        o.entry(token).or_insert(serde_json::Value::Null)
                    }
                    _ => return Err(RewriteError::Internal),
                }
            }
            _ => {
                return Err(RewriteError::ThroughNonObject {
                    pointer: pointer.to_string(),
                })
            }
        };
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn rw(body: &str, pairs: &[(&str, &str)]) -> serde_json::Value {
        let r: Vec<(String, Value)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from_json_str(v).unwrap()))
            .collect();
        serde_json::from_slice(&arguments(body.as_bytes(), &r).unwrap()).unwrap()
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"q","arguments":{"limit":5000,"sql":"select 1","big":123456789012345678901}}}"#;

    #[test]
    fn replace_clamp_default_and_nested() {
        let v = rw(
            CALL,
            &[
                ("limit", "100"),
                ("mode", "\"read-only\""),
                ("/filter/tenant", "\"t1\""),
            ],
        );
        let a = &v["params"]["arguments"];
        assert_eq!(a["limit"], 100);
        assert_eq!(a["mode"], "read-only");
        assert_eq!(a["filter"]["tenant"], "t1");
        assert_eq!(a["sql"], "select 1");
        assert_eq!(v["id"], 1);
        assert_eq!(v["params"]["name"], "q");
    }

    #[test]
    fn other_numbers_keep_their_precision() {
        let out = arguments(CALL.as_bytes(), &[("limit".into(), Value::from(1u64))]).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("123456789012345678901"));
    }

    #[test]
    fn missing_arguments_are_created() {
        let v = rw(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"q"}}"#,
            &[("a", "1")],
        );
        assert_eq!(v["params"]["arguments"]["a"], 1);
    }

    #[test]
    fn a_rewrite_nesting_past_the_parser_limit_is_an_error() {
        let deep = format!("/{}", "a/".repeat(200));
        let e = arguments(CALL.as_bytes(), &[(deep, Value::from(1u64))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("the rewritten message is refused"), "{e}");
    }

    #[test]
    fn impossible_rewrites_are_errors() {
        let r = vec![("/sql/x".to_string(), Value::from(1u64))];
        assert!(arguments(CALL.as_bytes(), &r).is_err());
        assert!(arguments(
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            &[("a".into(), Value::from(1u64))]
        )
        .is_err());
    }
}
