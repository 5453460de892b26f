//! A recorded message (`mcp-policy eval`, the playground), turned into the request the
//! filter would see (docs/cli.md, "Message files").
//!
//! A message file is either
//! - a **captured HTTP request**: a JSON object without a `jsonrpc` member
//!   that has `headers`, `body` or `body_text` (members listed in
//!   [`Capture`]); or
//! - a **bare body**: anything else, sent byte for byte as the body of
//!   `POST /mcp` with `content-type: application/json`, and, for a single
//!   2026-07-28 request, the routing headers a conforming client sends.

use crate::mcp::attributes::Attributes;
use crate::mcp::jsonrpc::{self, Body};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A captured HTTP request (the capture format).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Capture<'a> {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default, borrow)]
    headers: Option<&'a RawValue>,
    /// The body as JSON, used byte for byte as written in the file.
    #[serde(default, borrow)]
    body: Option<&'a RawValue>,
    /// The body as text (for bodies that are not JSON).
    #[serde(default)]
    body_text: Option<String>,
    #[serde(default)]
    attributes: Option<CaptureAttributes>,
}

/// What the host knows beyond headers (see crates/core/src/mcp/attributes/).
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct CaptureAttributes {
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub source_address: Option<String>,
    #[serde(default)]
    pub tls_version: Option<String>,
    #[serde(default)]
    pub mtls: Option<bool>,
    #[serde(default)]
    pub route_name: Option<String>,
    #[serde(default)]
    pub cluster_name: Option<String>,
}

impl CaptureAttributes {
    /// Later values (flags) win over earlier ones (the capture).
    pub fn overlay(&mut self, other: &CaptureAttributes) {
        let o = other.clone();
        self.claims = o.claims.or(self.claims.take());
        self.principal = o.principal.or(self.principal.take());
        self.source_address = o.source_address.or(self.source_address.take());
        self.tls_version = o.tls_version.or(self.tls_version.take());
        self.mtls = o.mtls.or(self.mtls.take());
        self.route_name = o.route_name.or(self.route_name.take());
        self.cluster_name = o.cluster_name.or(self.cluster_name.take());
    }

    pub fn to_attributes(&self) -> Result<Attributes, String> {
        let claims = match &self.claims {
            None => None,
            Some(c @ serde_json::Value::Object(_)) => {
                Some(crate::policy::engine::json_to_value(c).map_err(|e| e.to_string())?)
            }
            Some(_) => return Err("claims must be a JSON object (the verified JWT payload)".into()),
        };
        Ok(Attributes {
            jwt_claims: claims,
            source_address: self.source_address.clone(),
            peer_principal: self.principal.clone(),
            tls_version: self.tls_version.clone(),
            mtls: self.mtls,
            route_name: self.route_name.clone(),
            cluster_name: self.cluster_name.clone(),
        })
    }
}

/// The request, as the proxy would hand it to the filter.
#[derive(Debug, Clone)]
pub struct Request {
    /// Pseudo-headers first, then the headers, names in lower case.
    pub headers: Vec<(String, Vec<u8>)>,
    /// `None`: the request has no body (end of stream at the headers).
    pub body: Option<Vec<u8>>,
    pub attributes: CaptureAttributes,
    /// How the file was read, for the output.
    pub form: &'static str,
}

#[cfg(test)]
impl Request {
    /// A header's value as text (tests).
    pub(crate) fn header_text(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// How to read the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Always a bare body, even if it looks like a capture.
    pub raw: bool,
    /// For a bare body: do not add the 2026-07-28 routing headers.
    pub no_routing_headers: bool,
}

/// Read a message file's bytes into a request.
pub fn read(bytes: &[u8], opts: ReadOptions) -> Result<Request, String> {
    if !opts.raw && looks_like_capture(bytes) {
        return capture(bytes);
    }
    Ok(bare(bytes.to_vec(), opts.no_routing_headers))
}

fn looks_like_capture(bytes: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(bytes)
    else {
        return false;
    };
    !o.contains_key("jsonrpc")
        && ["headers", "body", "body_text"]
            .iter()
            .any(|k| o.contains_key(*k))
}

fn capture(bytes: &[u8]) -> Result<Request, String> {
    let c: Capture<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a valid capture: {e}"))?;
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(raw) = c.headers {
        let value: serde_json::Value =
            serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
        match value {
            serde_json::Value::Object(o) => {
                for (k, v) in o {
                    match v {
                        serde_json::Value::String(s) => headers.push((k, s.into_bytes())),
                        serde_json::Value::Array(items) => {
                            for i in items {
                                headers.push((k.clone(), header_value(&k, &i)?));
                            }
                        }
                        other => headers.push((k.clone(), header_value(&k, &other)?)),
                    }
                }
            }
            serde_json::Value::Array(pairs) => {
                for p in pairs {
                    match p.as_array().map(Vec::as_slice) {
                        Some([serde_json::Value::String(k), v]) => headers.push((k.clone(), header_value(k, v)?)),
                        _ => return Err("`headers` as a list must hold [name, value] pairs".into()),
                    }
                }
            }
            _ => return Err("`headers` must be an object (name → value or list of values) or a list of [name, value] pairs".into()),
        }
    }
    let mut authority = c.authority;
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        if k.starts_with(':') {
            return Err(format!(
                "header {k:?}: give pseudo-headers as the capture's `method`, `path`, `authority` and `scheme` members"
            ));
        }
        // Envoy turns an HTTP/1.1 Host header into `:authority`; the filter
        // never sees `host`.
        if k == "host" {
            if authority.is_none() {
                authority = Some(String::from_utf8_lossy(&v).into_owned());
            }
            continue;
        }
        out.push((k, v));
    }
    let body = match (c.body, c.body_text) {
        (Some(_), Some(_)) => return Err("give `body` or `body_text`, not both".into()),
        (Some(b), None) if b.get() == "null" => None,
        (Some(b), None) => Some(b.get().as_bytes().to_vec()),
        (None, Some(t)) => Some(t.into_bytes()),
        (None, None) => None,
    };
    let mut headers = pseudo(
        c.method.as_deref().unwrap_or("POST"),
        c.path.as_deref().unwrap_or("/mcp"),
        authority.as_deref().unwrap_or("localhost"),
        c.scheme.as_deref().unwrap_or("http"),
    );
    headers.extend(out);
    Ok(Request {
        headers,
        body,
        attributes: c.attributes.unwrap_or_default(),
        form: "captured HTTP request",
    })
}

fn header_value(name: &str, v: &serde_json::Value) -> Result<Vec<u8>, String> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone().into_bytes()),
        serde_json::Value::Number(n) => Ok(n.to_string().into_bytes()),
        _ => Err(format!("header {name:?}: values must be strings")),
    }
}

pub(super) fn pseudo(
    method: &str,
    path: &str,
    authority: &str,
    scheme: &str,
) -> Vec<(String, Vec<u8>)> {
    vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        (":authority".into(), authority.as_bytes().to_vec()),
        (":scheme".into(), scheme.as_bytes().to_vec()),
    ]
}

fn bare(body: Vec<u8>, no_routing_headers: bool) -> Request {
    let mut headers = pseudo("POST", "/mcp", "localhost", "http");
    headers.push(("content-type".into(), b"application/json".to_vec()));
    headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    if !no_routing_headers {
        headers.extend(routing_headers(&body));
    }
    Request {
        headers,
        body: Some(body),
        attributes: CaptureAttributes::default(),
        form: "bare body",
    }
}

/// The headers a 2026-07-28 client sends with a single request or
/// notification whose `_meta` names that version: `MCP-Protocol-Version`,
/// `Mcp-Method` and, for tools/call, prompts/get and resources/read,
/// `Mcp-Name` (in the `=?base64?…?=` form when the value needs it).
pub(super) fn routing_headers(body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Ok(Body::Single(m)) = jsonrpc::parse(body) else {
        return Vec::new();
    };
    let (Some(version), Some(method)) = (m.meta_protocol_version(), m.method()) else {
        return Vec::new();
    };
    if !crate::mcp::routing::is_modern(version) {
        return Vec::new();
    }
    let mut h = vec![
        (
            "mcp-protocol-version".to_string(),
            version.as_bytes().to_vec(),
        ),
        ("mcp-method".to_string(), method.as_bytes().to_vec()),
    ];
    if m.requires_routing_name() {
        if let Some(name) = m.routing_name() {
            h.push((
                "mcp-name".to_string(),
                encode_header_value(name).into_bytes(),
            ));
        }
    }
    h
}

/// A header value as a 2026-07-28 client writes it: as is when it is
/// printable ASCII without surrounding spaces, else `=?base64?…?=`.
pub fn encode_header_value(v: &str) -> String {
    use base64::Engine as _;
    let plain = v.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !v.starts_with("=?base64?");
    if plain {
        v.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
        )
    }
}

/// Apply `--header` values: each replaces every header of that name.
pub fn set_headers(req: &mut Request, extra: &[(String, String)]) {
    for (k, v) in extra {
        let k = k.to_ascii_lowercase();
        req.headers.retain(|(n, _)| *n != k);
        req.headers.push((k, v.as_bytes().to_vec()));
    }
}

/// `name=value` or `name: value`.
pub fn parse_header_flag(s: &str) -> Result<(String, String), String> {
    let at = s
        .find(['=', ':'])
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE or 'NAME: VALUE'"))?;
    let (name, value) = (
        s.get(..at).unwrap_or_default().trim(),
        s.get(at + 1..).unwrap_or_default().trim(),
    );
    if name.is_empty() || name.starts_with(':') {
        return Err(format!(
            "{s:?}: expected NAME=VALUE (pseudo-headers come from the capture)"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
        r.header_text(name)
    }

    #[test]
    fn bare_bodies_get_json_headers_and_modern_routing_headers() {
        let r = read(
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(r.form, "bare body");
        assert_eq!(header(&r, ":method"), Some("POST"));
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        assert_eq!(header(&r, "mcp-method"), None);
        let body = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"café","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let r = read(body.as_bytes(), ReadOptions::default()).unwrap();
        assert_eq!(header(&r, "mcp-protocol-version"), Some("2026-07-28"));
        assert_eq!(header(&r, "mcp-method"), Some("tools/call"));
        assert_eq!(header(&r, "mcp-name"), Some("=?base64?Y2Fmw6k=?="));
        let r = read(
            body.as_bytes(),
            ReadOptions {
                no_routing_headers: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(header(&r, "mcp-method"), None);
        let r = read(b"{nope", ReadOptions::default()).unwrap();
        assert_eq!(r.body.as_deref(), Some(&b"{nope"[..]));
    }

    #[test]
    fn captures_keep_the_body_bytes_and_headers() {
        let c = br#"{"method": "POST", "headers": {"Host": "h:1", "content-type": "application/json", "x-multi": ["a", "b"]},
                     "body": {"jsonrpc": "2.0", "id": 1,  "method": "ping"}, "attributes": {"principal": "spiffe://x"}}"#;
        let r = read(c, ReadOptions::default()).unwrap();
        assert_eq!(r.form, "captured HTTP request");
        assert_eq!(header(&r, ":authority"), Some("h:1"));
        assert_eq!(header(&r, "host"), None);
        assert_eq!(r.headers.iter().filter(|(k, _)| k == "x-multi").count(), 2);
        assert_eq!(
            r.body.as_deref(),
            Some(&br#"{"jsonrpc": "2.0", "id": 1,  "method": "ping"}"#[..])
        );
        assert_eq!(r.attributes.principal.as_deref(), Some("spiffe://x"));
        let r = read(
            br#"{"method": "DELETE", "headers": [["mcp-session-id", "s"]], "body": null}"#,
            ReadOptions::default(),
        )
        .unwrap();
        assert!(r.body.is_none());
        assert_eq!(header(&r, ":method"), Some("DELETE"));
        let r = read(
            br#"{"headers": {}, "body_text": "{nope"}"#,
            ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(r.body.as_deref(), Some(&b"{nope"[..]));
        assert!(
            read(br#"{"headers": {}, "bodi": 1}"#, ReadOptions::default())
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(read(br#"{"headers": {":path": "/x"}}"#, ReadOptions::default()).is_err());
        let r = read(
            br#"{"headers": {}, "body": 1}"#,
            ReadOptions {
                raw: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.form, "bare body");
    }

    #[test]
    fn header_flags() {
        assert_eq!(
            parse_header_flag("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert_eq!(
            parse_header_flag("Authorization: Bearer x").unwrap(),
            ("Authorization".into(), "Bearer x".into())
        );
        assert!(parse_header_flag("nothing").is_err());
        assert!(parse_header_flag(":path=/").is_err());
        let mut r = read(b"{}", ReadOptions::default()).unwrap();
        set_headers(&mut r, &[("Content-Type".into(), "text/plain".into())]);
        assert_eq!(header(&r, "content-type"), Some("text/plain"));
        assert_eq!(encode_header_value(" lead"), "=?base64?IGxlYWQ=?=");
        assert_eq!(encode_header_value("echo"), "echo");
    }
}
