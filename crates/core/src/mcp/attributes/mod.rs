//! What the proxy knows about a request beyond its headers and body: the
//! identity a previous filter verified, the TLS peer, the connection, and the
//! route. The adapter reads these from the host (Envoy properties and
//! dynamic metadata); this module holds them and decodes the host's
//! encodings, so the core stays host-independent.
//!
//! The filter never decodes a bearer token itself: claims come only from a
//! verifier that ran before it (Envoy's `jwt_authn`, `payload_in_metadata`).

use regorus::Value;
use std::collections::BTreeMap;

/// Decoding what Envoy hands over in protobuf (`metadata`, `Struct`).
mod metadata;
/// Which attributes a policy needs, read from its text.
mod needs;

pub use metadata::{decode_metadata_namespace, decode_struct, jwt_payload, MetadataError};
pub use needs::Needs;

/// Request attributes provided by the host. Every field is optional: a host
/// that does not know a value leaves it out, and so does the policy input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    /// The verified JWT payload (claims), if a verifier stored one.
    pub jwt_claims: Option<Value>,
    /// The downstream peer's address, `ip:port`.
    pub source_address: Option<String>,
    /// The TLS peer certificate's URI SAN (a SPIFFE ID in a mesh).
    pub peer_principal: Option<String>,
    /// The TLS version of the downstream connection, e.g. `TLSv1.3`.
    pub tls_version: Option<String>,
    /// Whether the downstream connection is mutual TLS.
    pub mtls: Option<bool>,
    /// The name of the route the request matched.
    pub route_name: Option<String>,
    /// The name of the upstream cluster the request is routed to.
    pub cluster_name: Option<String>,
}

impl Attributes {
    /// What the filter actually reads from the host for a policy with these
    /// needs (the adapter's `read_attributes` follows this rule, and the CLI
    /// applies it to the attributes it is given): the caller's identity
    /// (verified JWT claims, TLS peer) always — every audit event and session
    /// binding need it — and the rest only when the policy mentions it.
    pub fn visible(self, needs: Needs) -> Attributes {
        Attributes {
            jwt_claims: self.jwt_claims,
            peer_principal: self.peer_principal,
            source_address: self.source_address.filter(|_| needs.source),
            tls_version: self.tls_version.filter(|_| needs.connection),
            mtls: self.mtls.filter(|_| needs.connection),
            route_name: self.route_name.filter(|_| needs.xds),
            cluster_name: self.cluster_name.filter(|_| needs.xds),
        }
    }

    /// `input.identity`, `input.source`, `input.connection`, `input.xds`
    /// (each only when something is known), to merge into the input.
    pub fn to_values(&self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        if let Some(claims) = &self.jwt_claims {
            let mut o = BTreeMap::new();
            o.insert(Value::from("claims"), claims.clone());
            if let Ok(sub) = claims[&crate::mcp::keys::key("sub")].as_string() {
                o.insert(Value::from("subject"), Value::from(sub.as_ref()));
            }
            out.push(("identity", Value::from(o)));
        }
        let source = strings([
            ("address", &self.source_address),
            ("principal", &self.peer_principal),
        ]);
        if let Some(v) = source {
            out.push(("source", v));
        }
        let mut conn = BTreeMap::new();
        if let Some(v) = &self.tls_version {
            conn.insert(Value::from("tls_version"), Value::from(v.as_str()));
        }
        if let Some(m) = self.mtls {
            conn.insert(Value::from("mtls"), Value::from(m));
        }
        if !conn.is_empty() {
            out.push(("connection", Value::from(conn)));
        }
        if let Some(v) = strings([
            ("route_name", &self.route_name),
            ("cluster_name", &self.cluster_name),
        ]) {
            out.push(("xds", v));
        }
        out
    }

    /// The identity a session is bound to: the JWT subject, else the TLS
    /// peer principal.
    pub fn principal(&self) -> Option<String> {
        if let Some(c) = &self.jwt_claims {
            if let Ok(sub) = c[&crate::mcp::keys::key("sub")].as_string() {
                return Some(format!("sub:{sub}"));
            }
        }
        self.peer_principal.as_ref().map(|p| format!("peer:{p}"))
    }
}

fn strings<const N: usize>(pairs: [(&str, &Option<String>); N]) -> Option<Value> {
    let mut o = BTreeMap::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            if !v.is_empty() {
                o.insert(Value::from(k), Value::from(v.as_str()));
            }
        }
    }
    (!o.is_empty()).then(|| Value::from(o))
}

/// A boolean property as hosts encode it: Envoy sends one byte (0 or 1),
/// ngx_wasm_module the text `true` / `false`. Anything else is unknown, so a
/// policy never reads `"false"` as true.
pub fn decode_bool(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [0] | b"false" => Some(false),
        [1] | b"true" => Some(true),
        _ => None,
    }
}

/// A string property: UTF-8 bytes; empty means unknown.
pub fn decode_string(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    std::str::from_utf8(bytes).ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::metadata::testenc::{enc_struct, V};
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn attributes_to_input_values() {
        let claims = decode_struct(&enc_struct(&[("sub", V::S("bob"))])).unwrap();
        let a = Attributes {
            jwt_claims: Some(claims),
            source_address: Some("127.0.0.1:5555".into()),
            peer_principal: Some("spiffe://example.org/ns/a/sa/b".into()),
            tls_version: Some("TLSv1.3".into()),
            mtls: Some(true),
            route_name: Some("mcp".into()),
            cluster_name: None,
        };
        let v: BTreeMap<&str, Value> = a.to_values().into_iter().collect();
        assert_eq!(v["identity"]["subject"], Value::from("bob"));
        assert_eq!(
            v["source"]["principal"],
            Value::from("spiffe://example.org/ns/a/sa/b")
        );
        assert_eq!(v["connection"]["mtls"], Value::from(true));
        assert_eq!(v["xds"]["route_name"], Value::from("mcp"));
        assert_eq!(v["xds"]["cluster_name"], Value::Undefined);
        assert_eq!(a.principal().as_deref(), Some("sub:bob"));
        assert!(Attributes::default().to_values().is_empty());
    }

    #[test]
    fn booleans_in_either_host_encoding() {
        assert_eq!(decode_bool(&[1]), Some(true));
        assert_eq!(decode_bool(&[0]), Some(false));
        assert_eq!(decode_bool(b"true"), Some(true));
        assert_eq!(decode_bool(b"false"), Some(false));
        assert_eq!(decode_bool(b""), None);
        assert_eq!(decode_bool(&[2, 0]), None);
    }
}
