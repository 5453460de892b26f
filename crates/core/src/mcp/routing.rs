//! The 2026-07-28 Streamable HTTP request metadata headers: `Mcp-Method`,
//! `Mcp-Name` (with its `=?base64?…?=` form), `Mcp-Param-*` and
//! `MCP-Protocol-Version`, checked against the body.
//!
//! The body is the source of truth for the policy; the headers exist so that
//! intermediaries can route without parsing it. Anything that does parse the
//! body must reject a request whose headers disagree with it (HTTP 400,
//! JSON-RPC −32020 HeaderMismatch), or the proxy, the router and the server
//! could act on different values.

use crate::mcp::jsonrpc::{Body, Kind, Message};
use base64::Engine as _;
use std::fmt;

/// JSON-RPC error code for HeaderMismatch (2026-07-28).
pub const HEADER_MISMATCH: i64 = -32020;

const SENTINEL_PREFIX: &str = "=?base64?";
const SENTINEL_SUFFIX: &str = "?=";

/// The protocol versions that use the initialize handshake and do not define
/// the request metadata headers. Any other version (2026-07-28 and later)
/// requires them.
const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The routing headers of one request, decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Routing {
    pub protocol_version: Option<String>,
    pub method: Option<String>,
    pub name: Option<String>,
    /// `Mcp-Param-{Name}` headers: (name as sent after the prefix,
    /// lower-cased; decoded value).
    pub params: Vec<(String, String)>,
    pub session_id: Option<String>,
}

/// Why the routing headers are refused: each is a HeaderMismatch, and its
/// text is the message the client gets (after "Header mismatch: ").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingError {
    /// `Mcp-Param-` with nothing after the prefix.
    EmptyParamName,
    /// A routing header sent twice (`header`: its name as shown).
    Duplicated { header: String },
    /// A value with characters a header may not carry.
    InvalidCharacters { header: String },
    /// A value that is not ASCII.
    NotAscii { header: String },
    /// A `=?base64?…?=` value whose base64 does not decode.
    InvalidBase64 {
        header: String,
        error: base64::DecodeError,
    },
    /// A `=?base64?…?=` value that decodes to invalid UTF-8.
    InvalidUtf8 { header: String },
    /// `Mcp-Method`, `Mcp-Name` or `Mcp-Param-*` on a batch.
    BatchDescribed,
    /// A batch under a protocol version without batches.
    BatchNotAllowed { version: String },
    /// A header whose value differs from the body's.
    Mismatch {
        header: &'static str,
        sent: String,
        body: String,
    },
    /// `Mcp-Method` on a message without a method (a response).
    MethodWithoutMethod { sent: String },
    /// `Mcp-Name` on a message that names no tool, prompt or resource.
    NameWithoutSubject { sent: String },
    /// A header the protocol version requires is absent.
    Missing { header: &'static str },
}

impl fmt::Display for RoutingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutingError::EmptyParamName => write!(f, "empty Mcp-Param- header name"),
            RoutingError::Duplicated { header } => write!(f, "duplicated {header} header"),
            RoutingError::InvalidCharacters { header } => {
                write!(f, "{header} header contains invalid characters")
            }
            RoutingError::NotAscii { header } => write!(f, "{header} header is not ASCII"),
            RoutingError::InvalidBase64 { header, error } => {
                write!(f, "{header} header has invalid base64: {error}")
            }
            RoutingError::InvalidUtf8 { header } => {
                write!(f, "{header} header decodes to invalid UTF-8")
            }
            RoutingError::BatchDescribed => write!(
                f,
                "Mcp-Method/Mcp-Name/Mcp-Param headers cannot describe a JSON-RPC batch"
            ),
            RoutingError::BatchNotAllowed { version } => write!(
                f,
                "protocol version {version} does not allow JSON-RPC batches"
            ),
            RoutingError::Mismatch { header, sent, body } => write!(
                f,
                "{header} header value '{sent}' does not match body value '{body}'"
            ),
            RoutingError::MethodWithoutMethod { sent } => {
                write!(
                    f,
                    "Mcp-Method header '{sent}' on a message without a method"
                )
            }
            RoutingError::NameWithoutSubject { sent } => write!(
                f,
                "Mcp-Name header '{sent}' on a message that names no tool, prompt or resource"
            ),
            RoutingError::Missing { header } => write!(f, "missing required {header} header"),
        }
    }
}

impl std::error::Error for RoutingError {}

/// Read the routing headers. A duplicated routing header, or a value with
/// characters a header may not carry, or a malformed base64 sentinel, is a
/// HeaderMismatch.
pub fn read(headers: &[(String, Vec<u8>)]) -> Result<Routing, RoutingError> {
    let mut r = Routing::default();
    for (name, value) in headers {
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name.as_str()
        };
        if !name.starts_with("mcp-") {
            continue;
        }
        match name {
            "mcp-protocol-version" => set_once(
                &mut r.protocol_version,
                "MCP-Protocol-Version",
                plain(value, "MCP-Protocol-Version")?,
            )?,
            "mcp-method" => set_once(&mut r.method, "Mcp-Method", plain(value, "Mcp-Method")?)?,
            "mcp-name" => set_once(&mut r.name, "Mcp-Name", decode(value, "Mcp-Name")?)?,
            "mcp-session-id" => set_once(
                &mut r.session_id,
                "Mcp-Session-Id",
                plain(value, "Mcp-Session-Id")?,
            )?,
            _ => {
                if let Some(param) = name.strip_prefix("mcp-param-") {
                    let shown = format!("Mcp-Param-{param}");
                    if param.is_empty() {
                        return Err(RoutingError::EmptyParamName);
                    }
                    if r.params.iter().any(|(p, _)| p == param) {
                        return Err(RoutingError::Duplicated { header: shown });
                    }
                    let v = decode(value, &shown)?;
                    r.params.push((param.to_string(), v));
                }
            }
        }
    }
    Ok(r)
}

fn set_once(slot: &mut Option<String>, shown: &str, value: String) -> Result<(), RoutingError> {
    if slot.is_some() {
        return Err(RoutingError::Duplicated {
            header: shown.to_string(),
        });
    }
    *slot = Some(value);
    Ok(())
}

/// A header value as plain visible ASCII (RFC 9110 field value characters).
fn plain(value: &[u8], shown: &str) -> Result<String, RoutingError> {
    if !value
        .iter()
        .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b))
    {
        return Err(RoutingError::InvalidCharacters {
            header: shown.to_string(),
        });
    }
    // All bytes are ASCII, so this cannot fail.
    String::from_utf8(value.to_vec()).map_err(|_| RoutingError::NotAscii {
        header: shown.to_string(),
    })
}

/// A value that may use the `=?base64?…?=` sentinel form.
pub fn decode(value: &[u8], shown: &str) -> Result<String, RoutingError> {
    let text = plain(value, shown)?;
    match text
        .strip_prefix(SENTINEL_PREFIX)
        .and_then(|rest| rest.strip_suffix(SENTINEL_SUFFIX))
    {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|error| RoutingError::InvalidBase64 {
                    header: shown.to_string(),
                    error,
                })?;
            String::from_utf8(bytes).map_err(|_| RoutingError::InvalidUtf8 {
                header: shown.to_string(),
            })
        }
        None => Ok(text),
    }
}

/// Whether a protocol version requires the request metadata headers.
pub fn is_modern(version: &str) -> bool {
    !HANDSHAKE_VERSIONS.contains(&version)
}

/// Check the routing headers against the body. `Err` is the
/// HeaderMismatch (its text the message).
pub fn check(r: &Routing, body: &Body<'_>) -> Result<(), RoutingError> {
    match body {
        Body::Single(m) => check_message(r, m),
        Body::Batch(items) => {
            let modern_element = items
                .iter()
                .filter_map(|i| i.as_ref().ok())
                .filter_map(Message::meta_protocol_version)
                .find(|v| is_modern(v));
            if r.method.is_some() || r.name.is_some() || !r.params.is_empty() {
                Err(RoutingError::BatchDescribed)
            } else if let Some(v) = r
                .protocol_version
                .as_deref()
                .filter(|v| is_modern(v))
                .or(modern_element)
            {
                Err(RoutingError::BatchNotAllowed {
                    version: v.to_string(),
                })
            } else {
                Ok(())
            }
        }
    }
}

fn check_message(r: &Routing, m: &Message<'_>) -> Result<(), RoutingError> {
    let body_version = m.meta_protocol_version();
    if let (Some(h), Some(b)) = (r.protocol_version.as_deref(), body_version) {
        if h != b {
            return Err(RoutingError::Mismatch {
                header: "MCP-Protocol-Version",
                sent: h.to_string(),
                body: b.to_string(),
            });
        }
    }
    if let Some(h) = r.method.as_deref() {
        match m.method() {
            Some(b) if b == h => {}
            Some(b) => {
                return Err(RoutingError::Mismatch {
                    header: "Mcp-Method",
                    sent: h.to_string(),
                    body: b.to_string(),
                })
            }
            None => {
                return Err(RoutingError::MethodWithoutMethod {
                    sent: h.to_string(),
                })
            }
        }
    }
    if let Some(h) = r.name.as_deref() {
        match m.routing_name() {
            Some(b) if b == h => {}
            Some(b) => {
                return Err(RoutingError::Mismatch {
                    header: "Mcp-Name",
                    sent: h.to_string(),
                    body: b.to_string(),
                })
            }
            None => {
                return Err(RoutingError::NameWithoutSubject {
                    sent: h.to_string(),
                })
            }
        }
    }
    // Required headers, for the versions that define them.
    let version = body_version.or(r.protocol_version.as_deref());
    if m.kind == Kind::Request && version.is_some_and(is_modern) {
        if r.protocol_version.is_none() {
            return Err(RoutingError::Missing {
                header: "MCP-Protocol-Version",
            });
        }
        if r.method.is_none() {
            return Err(RoutingError::Missing {
                header: "Mcp-Method",
            });
        }
        if m.requires_routing_name() && r.name.is_none() {
            return Err(RoutingError::Missing { header: "Mcp-Name" });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::jsonrpc::parse;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

    fn run(headers: &[(&str, &str)], body: &str) -> Result<(), String> {
        let r = read(&h(headers)).map_err(|e| e.to_string())?;
        check(&r, &parse(body.as_bytes()).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn matching_headers_pass() {
        run(
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_weather"),
            ],
            CALL,
        )
        .unwrap();
        run(
            &[
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "=?base64?Z2V0X3dlYXRoZXI=?="),
            ],
            CALL,
        )
        .unwrap();
    }

    #[test]
    fn mismatches_are_reported() {
        let e = run(
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "foo"),
            ],
            CALL,
        )
        .unwrap_err();
        assert!(e.contains("'foo'") && e.contains("'get_weather'"), "{e}");
        let e = run(
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
                ("mcp-name", "get_weather"),
            ],
            CALL,
        )
        .unwrap_err();
        assert!(e.contains("Mcp-Method"), "{e}");
        let e = run(
            &[
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_weather"),
            ],
            CALL,
        )
        .unwrap_err();
        assert!(e.contains("MCP-Protocol-Version"), "{e}");
    }

    #[test]
    fn duplicates_and_bad_encodings_are_rejected() {
        assert!(read(&h(&[("mcp-name", "a"), ("Mcp-Name", "a")]))
            .unwrap_err()
            .to_string()
            .contains("duplicated"));
        assert!(read(&h(&[("mcp-method", "a"), ("mcp-method", "a")])).is_err());
        assert!(read(&h(&[("mcp-param-region", "a"), ("mcp-param-Region", "b")])).is_err());
        assert!(read(&h(&[("mcp-name", "=?base64?!!!?=")]))
            .unwrap_err()
            .to_string()
            .contains("base64"));
        assert!(read(&[("mcp-name".to_string(), b"caf\xc3\xa9".to_vec())])
            .unwrap_err()
            .to_string()
            .contains("invalid characters"));
        assert!(read(&h(&[("mcp-name", "=?base64?/w==?=")]))
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }

    #[test]
    fn base64_names_decode_to_unicode() {
        let r = read(&h(&[
            ("mcp-name", "=?base64?SGVsbG8sIOS4lueVjA==?="),
            ("mcp-param-greeting", "=?base64?IHBhZGRlZCA=?="),
        ]))
        .unwrap();
        assert_eq!(r.name.as_deref(), Some("Hello, 世界"));
        assert_eq!(
            r.params,
            vec![("greeting".to_string(), " padded ".to_string())]
        );
    }

    #[test]
    fn modern_requests_need_the_headers() {
        let e = run(
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ],
            CALL,
        )
        .unwrap_err();
        assert!(e.contains("Mcp-Name"), "{e}");
        let e = run(&[("mcp-protocol-version", "2026-07-28")], CALL).unwrap_err();
        assert!(e.contains("Mcp-Method"), "{e}");
        let e = run(&[], CALL).unwrap_err();
        assert!(e.contains("MCP-Protocol-Version"), "{e}");
        // Older versions do not define the headers: absent is fine.
        run(
            &[("mcp-protocol-version", "2025-11-25")],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
        )
        .unwrap();
    }

    #[test]
    fn headers_cannot_describe_a_batch() {
        let b = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#;
        assert!(run(&[("mcp-method", "ping")], b).is_err());
        assert!(run(&[("mcp-protocol-version", "2026-07-28")], b).is_err());
        run(&[("mcp-protocol-version", "2025-03-26")], b).unwrap();
        // The version in an element's _meta counts even without the header.
        let modern = r#"[{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}]"#;
        assert!(run(&[], modern).unwrap_err().contains("2026-07-28"));
    }
}
