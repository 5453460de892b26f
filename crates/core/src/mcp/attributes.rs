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

/// Which attributes the policy can use, so the adapter only asks the host
/// for those (each is a host call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub identity: bool,
    pub source: bool,
    pub connection: bool,
    pub xds: bool,
    /// The policy reads `input.session` / `input.rate` or kills.
    pub state: bool,
    /// The policy reads `input.mcp.tool.definition` (tool facts learnt from
    /// the upstream's tools/list answers, keyed by cluster).
    pub definition: bool,
    /// The policy rules on what the server sends (responses, server
    /// requests, notifications): it mentions `direction`,
    /// `server_to_client`, `findings`, `redact`, `input.mcp.result` /
    /// `error`, or a server-to-client method. Otherwise responses are not
    /// evaluated (list filtering aside).
    pub responses: bool,
    /// The policy reads the detectors' findings in results
    /// (`input.mcp.findings`) or redacts them: results are scanned.
    pub findings: bool,
    /// The policy reads `input.http` (built from every request header).
    pub http: bool,
    /// The policy's answer can change with no change of its input or data:
    /// it reads the clock or randomness (`time.now_ns`, `rand.intn`,
    /// `uuid.rfc4122`), or session state. Listing verdicts are then never
    /// reused.
    pub volatile: bool,
}

impl Needs {
    pub fn all() -> Needs {
        Needs {
            identity: true,
            source: true,
            connection: true,
            xds: true,
            state: true,
            definition: true,
            responses: true,
            findings: true,
            http: true,
            volatile: true,
        }
    }

    /// Conservative: an attribute is needed when any module mentions its
    /// name as a word (`input.identity`, `input["identity"]`, a string that
    /// builds the path…), comments included. A policy that never names
    /// `identity` cannot read it, short of assembling the word from pieces.
    /// A module that uses `input` other than through a path or a literal
    /// key (`walk(input, …)`, `input[k]`, `json.marshal(input)`) gets
    /// everything.
    pub fn from_sources<'a>(sources: impl IntoIterator<Item = &'a str>) -> Needs {
        let mut n = Needs::default();
        for s in sources {
            if uses_input_whole(s) {
                return Needs::all();
            }
            let word = |w: &str| mentions_word(s, w);
            n.identity |= word("identity");
            n.source |= word("source");
            n.connection |= word("connection");
            n.xds |= word("xds");
            n.state |= word("session") || word("rate") || word("kill") || word("clear_kill");
            n.definition |= word("definition");
            n.http |= word("http");
            n.responses |= [
                "direction",
                "server_to_client",
                "findings",
                "redact",
                "mcp.result",
                "mcp.error",
                "sampling/createMessage",
                "elicitation/create",
                "roots/list",
            ]
            .iter()
            .any(|w| s.contains(w));
            n.findings |= word("findings") || word("redact");
            n.volatile |= ["time.now_ns", "rand.", "uuid.", "http.send", "opa.runtime"]
                .iter()
                .any(|w| s.contains(w));
        }
        n.volatile |= n.state;
        // Definitions are kept per upstream cluster.
        if n.definition {
            n.xds = true;
        }
        n
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `word` occurs in `s` with no identifier character on either side.
fn mentions_word(s: &str, word: &str) -> bool {
    let b = s.as_bytes();
    s.match_indices(word).any(|(i, _)| {
        let before = i.checked_sub(1).and_then(|j| b.get(j)).copied();
        let after = b.get(i + word.len()).copied();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// `input` used other than as `input.path` or `input["literal"]`.
fn uses_input_whole(s: &str) -> bool {
    let b = s.as_bytes();
    s.match_indices("input").any(|(i, _)| {
        let before = i.checked_sub(1).and_then(|j| b.get(j)).copied();
        if before.is_some_and(|c| is_ident(c) || c == b'.') {
            return false;
        }
        let after = s.get(i + 5..).unwrap_or("");
        if after.as_bytes().first().copied().is_some_and(is_ident) {
            // A longer word (`inputs`, `input_schema`).
            return false;
        }
        let rest = after.trim_start_matches([' ', '\t']);
        match rest.as_bytes().first() {
            Some(b'.') => false,
            Some(b'[') => !rest[1..].trim_start().starts_with('"'),
            // Anything else uses `input` whole, unless it is prose in a
            // comment or a string ("its input schema").
            _ => !in_prose(s, i),
        }
    })
}

/// Whether byte `i` of `s` sits in a `#` comment (a `#` earlier on its
/// line, outside a string) or in a string on its line.
fn in_prose(s: &str, i: usize) -> bool {
    let start = s[..i].rfind('\n').map_or(0, |j| j + 1);
    let mut in_string = false;
    let mut escaped = false;
    for c in s[start..i].bytes() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'#' if !in_string => return true,
            _ => {}
        }
    }
    in_string
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

/// The verified payload inside the JWT filter's metadata namespace: the
/// member named `jwt_payload` (the conventional `payload_in_metadata` name),
/// else the only member that is an object.
pub fn jwt_payload(namespace: &Value) -> Option<Value> {
    let Value::Object(members) = namespace else {
        return None;
    };
    if let v @ Value::Object(_) = &namespace[&crate::mcp::keys::key("jwt_payload")] {
        return Some(v.clone());
    }
    let mut objects = members
        .iter()
        .filter(|(_, v)| matches!(v, Value::Object(_)));
    match (objects.next(), objects.next()) {
        (Some((_, v)), None) => Some(v.clone()),
        _ => None,
    }
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

const MAX_DEPTH: usize = 64;

/// From a serialized `envoy.config.core.v3.Metadata` (Envoy's `metadata`
/// property), the `filter_metadata` struct of one namespace.
pub fn decode_metadata_namespace(bytes: &[u8], namespace: &str) -> Result<Option<Value>, String> {
    let mut r = Reader { b: bytes, pos: 0 };
    while let Some((field, wire)) = r.key()? {
        if field == 1 && wire == 2 {
            // map<string, google.protobuf.Struct> filter_metadata = 1;
            let mut e = Reader {
                b: r.bytes()?,
                pos: 0,
            };
            let mut key: &[u8] = &[];
            let mut value: Option<&[u8]> = None;
            while let Some((f, w)) = e.key()? {
                match (f, w) {
                    (1, 2) => key = e.bytes()?,
                    (2, 2) => value = Some(e.bytes()?),
                    _ => e.skip(w)?,
                }
            }
            if key == namespace.as_bytes() {
                return struct_value(value.unwrap_or(&[]), 0).map(Some);
            }
        } else {
            r.skip(wire)?;
        }
    }
    Ok(None)
}

/// Decode a serialized `google.protobuf.Struct` (how Envoy hands dynamic
/// metadata to a module) into an object value.
pub fn decode_struct(bytes: &[u8]) -> Result<Value, String> {
    struct_value(bytes, 0)
}

fn struct_value(bytes: &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("nesting too deep".into());
    }
    let mut map = BTreeMap::new();
    let mut r = Reader { b: bytes, pos: 0 };
    while let Some((field, wire)) = r.key()? {
        if field == 1 && wire == 2 {
            let entry = r.bytes()?;
            let (k, v) = map_entry(entry, depth + 1)?;
            map.insert(Value::from(k), v);
        } else {
            r.skip(wire)?;
        }
    }
    Ok(Value::from(map))
}

fn map_entry(bytes: &[u8], depth: usize) -> Result<(String, Value), String> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut key = String::new();
    let mut value = Value::Null;
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, 2) => {
                key = String::from_utf8(r.bytes()?.to_vec()).map_err(|_| "key is not UTF-8")?
            }
            (2, 2) => value = value_msg(r.bytes()?, depth + 1)?,
            _ => r.skip(wire)?,
        }
    }
    Ok((key, value))
}

fn value_msg(bytes: &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("nesting too deep".into());
    }
    let mut r = Reader { b: bytes, pos: 0 };
    let mut out = Value::Null;
    while let Some((field, wire)) = r.key()? {
        out = match (field, wire) {
            (1, 0) => {
                r.varint()?;
                Value::Null
            }
            (2, 1) => number(f64::from_le_bytes(r.fixed64()?)),
            (3, 2) => Value::from(
                String::from_utf8(r.bytes()?.to_vec()).map_err(|_| "string is not UTF-8")?,
            ),
            (4, 0) => Value::from(r.varint()? != 0),
            (5, 2) => struct_value(r.bytes()?, depth + 1)?,
            (6, 2) => list_value(r.bytes()?, depth + 1)?,
            _ => {
                r.skip(wire)?;
                continue;
            }
        };
    }
    Ok(out)
}

fn list_value(bytes: &[u8], depth: usize) -> Result<Value, String> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut items = Vec::new();
    while let Some((field, wire)) = r.key()? {
        if field == 1 && wire == 2 {
            items.push(value_msg(r.bytes()?, depth + 1)?);
        } else {
            r.skip(wire)?;
        }
    }
    Ok(Value::from(items))
}

/// Whole numbers (JWT `exp`, `iat`…) become integers; others stay floats.
fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        Value::from(f as i64)
    } else {
        Value::from(f)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn key(&mut self) -> Result<Option<(u64, u8)>, String> {
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut out: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            out |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.b.get(self.pos..end).ok_or("truncated field")?;
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        self.take(n)
    }

    fn fixed64(&mut self) -> Result<[u8; 8], String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            w => Err(format!("unsupported wire type {w}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A tiny protobuf writer for the tests.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn len_field(field: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    enum V<'a> {
        S(&'a str),
        N(f64),
        B(bool),
        Null,
        L(Vec<V<'a>>),
        O(Vec<(&'a str, V<'a>)>),
    }
    fn enc_value(v: &V, out: &mut Vec<u8>) {
        match v {
            V::Null => varint(1 << 3, out),
            V::N(n) => {
                varint(2 << 3 | 1, out);
                out.extend_from_slice(&n.to_le_bytes());
            }
            V::S(s) => len_field(3, s.as_bytes(), out),
            V::B(b) => {
                varint(4 << 3, out);
                varint(u64::from(*b), out);
            }
            V::O(fields) => len_field(5, &enc_struct(fields), out),
            V::L(items) => {
                let mut l = Vec::new();
                for i in items {
                    let mut e = Vec::new();
                    enc_value(i, &mut e);
                    len_field(1, &e, &mut l);
                }
                len_field(6, &l, out);
            }
        }
        if let V::Null = v {
            varint(0, out);
        }
    }
    fn enc_struct(fields: &[(&str, V)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in fields {
            let mut entry = Vec::new();
            len_field(1, k.as_bytes(), &mut entry);
            let mut val = Vec::new();
            enc_value(v, &mut val);
            len_field(2, &val, &mut entry);
            len_field(1, &entry, &mut out);
        }
        out
    }

    #[test]
    fn decodes_a_jwt_payload_struct() {
        let bytes = enc_struct(&[
            ("sub", V::S("alice")),
            ("exp", V::N(1_900_000_000.0)),
            ("score", V::N(0.5)),
            ("admin", V::B(true)),
            ("groups", V::L(vec![V::S("finance"), V::S("ops")])),
            ("tenant", V::O(vec![("id", V::S("t1"))])),
            ("none", V::Null),
        ]);
        let v = decode_struct(&bytes).unwrap();
        assert_eq!(v["sub"], Value::from("alice"));
        assert_eq!(v["exp"], Value::from(1_900_000_000i64));
        assert_eq!(v["score"], Value::from(0.5));
        assert_eq!(v["admin"], Value::from(true));
        assert_eq!(v["groups"][1], Value::from("ops"));
        assert_eq!(v["tenant"]["id"], Value::from("t1"));
        assert_eq!(v["none"], Value::Null);
    }

    #[test]
    fn metadata_namespaces_are_found() {
        let payload = enc_struct(&[("jwt_payload", V::O(vec![("sub", V::S("alice"))]))]);
        let mut entry = Vec::new();
        len_field(1, b"envoy.filters.http.jwt_authn", &mut entry);
        len_field(2, &payload, &mut entry);
        let mut other = Vec::new();
        len_field(1, b"other", &mut other);
        len_field(2, &enc_struct(&[("x", V::B(true))]), &mut other);
        let mut md = Vec::new();
        len_field(1, &other, &mut md);
        len_field(1, &entry, &mut md);
        let ns = decode_metadata_namespace(&md, "envoy.filters.http.jwt_authn")
            .unwrap()
            .unwrap();
        assert_eq!(jwt_payload(&ns).unwrap()["sub"], Value::from("alice"));
        assert_eq!(decode_metadata_namespace(&md, "missing").unwrap(), None);
        assert!(decode_metadata_namespace(&[0x0a, 0x09, 0x0a], "x").is_err());
    }

    #[test]
    fn jwt_payload_is_found_in_the_namespace() {
        let ns = decode_struct(&enc_struct(&[(
            "jwt_payload",
            V::O(vec![("sub", V::S("a"))]),
        )]))
        .unwrap();
        assert_eq!(jwt_payload(&ns).unwrap()["sub"], Value::from("a"));
        let ns = decode_struct(&enc_struct(&[(
            "my_claims",
            V::O(vec![("sub", V::S("b"))]),
        )]))
        .unwrap();
        assert_eq!(jwt_payload(&ns).unwrap()["sub"], Value::from("b"));
        let ns = decode_struct(&enc_struct(&[
            ("p1", V::O(vec![("sub", V::S("b"))])),
            ("p2", V::O(vec![("sub", V::S("c"))])),
        ]))
        .unwrap();
        assert_eq!(jwt_payload(&ns), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_struct(&[0x0a, 0xff]).is_err());
        assert!(decode_struct(&[0x0a, 0x05, 0x0a]).is_err());
        assert!(decode_struct(&[0xff; 12]).is_err());
        assert_eq!(decode_struct(&[]).unwrap(), Value::new_object());
    }

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

    #[test]
    fn shipped_policies_do_not_use_input_whole() {
        // Using `input` whole makes the filter fetch and build everything;
        // the shipped policies name what they read.
        let root =
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("policies");
        for dir in [root.clone(), root.join("library")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.to_string_lossy().to_string();
                if !name.ends_with(".rego") || name.ends_with("_test.rego") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(!uses_input_whole(&text), "{name}");
            }
        }
    }

    #[test]
    fn needs_follow_the_policy_text() {
        let n = Needs::from_sources(["allow if input.identity.claims.role == \"x\""]);
        assert!(n.identity && !n.source && !n.connection && !n.xds && !n.state && !n.definition);
        let n =
            Needs::from_sources(["deny if input.mcp.tool.definition.annotations.destructiveHint"]);
        assert!(n.definition && n.xds);
        assert!(!n.http && !n.state);
        // Words, not parts of words: `resources/read` is not `source`,
        // `generate` and `rate_limit` are not `rate`, `session_id` is an
        // `input.mcp` field, not session state.
        let n = Needs::from_sources([
            "deny if input.mcp.method == \"resources/read\"\nrate_limit := {\"entries\": [input.mcp.session_id]}\n# generate\n",
        ]);
        assert_eq!(n, Needs::default());
        for (text, check) in [
            (
                "deny if input.rate.session.count > 5",
                (|n: Needs| n.state) as fn(Needs) -> bool,
            ),
            ("deny if input[\"session\"].calls", |n| n.state),
            ("clear_kill if input.mcp.tool.name == \"unlock\"", |n| {
                n.state
            }),
            ("deny if input.http.headers[\"x\"]", |n| n.http),
            ("deny if input.source.address", |n| n.source),
        ] {
            assert!(check(Needs::from_sources([text])), "{text}");
        }
        // `input` as a whole: everything.
        for text in [
            "deny if walk(input, [p, v])",
            "deny if input[k] == 1",
            "x := json.marshal(input)",
            "deny if count(input) > 3",
            "deny if input in data.known",
            "x := input with input as {}",
        ] {
            assert_eq!(Needs::from_sources([text]), Needs::all(), "{text}");
        }
        // Prose in comments or strings, and paths, are not.
        for text in [
            "# the input is checked\ndeny if input.mcp.method == \"x\"",
            "import input.mcp.tool as t\ndeny if t.name == \"x\"",
            "deny if input . mcp.method == \"x\"",
            "deny if input.mcp.tool.definition.inputSchema.type == \"object\"",
            "msg := sprintf(\"%q does not match its input schema\", [input.mcp.tool.name])",
        ] {
            assert_ne!(Needs::from_sources([text]), Needs::all(), "{text}");
        }
    }
}
