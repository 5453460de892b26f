//! Envoy's protobuf encodings of what a previous filter left for this one:
//! the `metadata` property (`envoy.config.core.v3.Metadata`) and the
//! `google.protobuf.Struct` values in it (a verified JWT payload).

use regorus::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Why a protobuf value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataError {
    /// Structs and lists nested deeper than the decoder goes.
    TooDeep,
    /// A struct key that is not UTF-8.
    KeyNotUtf8,
    /// A string value that is not UTF-8.
    StringNotUtf8,
    /// The input ends inside a varint.
    TruncatedVarint,
    /// A varint longer than 64 bits.
    VarintTooLong,
    /// A length that does not fit.
    LengthOverflow,
    /// The input ends inside a field.
    TruncatedField,
    /// A wire type the decoder does not know.
    UnsupportedWireType(u8),
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataError::TooDeep => write!(f, "nesting too deep"),
            MetadataError::KeyNotUtf8 => write!(f, "key is not UTF-8"),
            MetadataError::StringNotUtf8 => write!(f, "string is not UTF-8"),
            MetadataError::TruncatedVarint => write!(f, "truncated varint"),
            MetadataError::VarintTooLong => write!(f, "varint too long"),
            MetadataError::LengthOverflow => write!(f, "length overflow"),
            MetadataError::TruncatedField => write!(f, "truncated field"),
            MetadataError::UnsupportedWireType(w) => write!(f, "unsupported wire type {w}"),
        }
    }
}

impl std::error::Error for MetadataError {}

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

const MAX_DEPTH: usize = 64;

/// From a serialized `envoy.config.core.v3.Metadata` (Envoy's `metadata`
/// property), the `filter_metadata` struct of one namespace.
pub fn decode_metadata_namespace(
    bytes: &[u8],
    namespace: &str,
) -> Result<Option<Value>, MetadataError> {
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
pub fn decode_struct(bytes: &[u8]) -> Result<Value, MetadataError> {
    struct_value(bytes, 0)
}

fn struct_value(bytes: &[u8], depth: usize) -> Result<Value, MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
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

fn map_entry(bytes: &[u8], depth: usize) -> Result<(String, Value), MetadataError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut key = String::new();
    let mut value = Value::Null;
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, 2) => {
                key =
                    String::from_utf8(r.bytes()?.to_vec()).map_err(|_| MetadataError::KeyNotUtf8)?
            }
            (2, 2) => value = value_msg(r.bytes()?, depth + 1)?,
            _ => r.skip(wire)?,
        }
    }
    Ok((key, value))
}

fn value_msg(bytes: &[u8], depth: usize) -> Result<Value, MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
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
                String::from_utf8(r.bytes()?.to_vec()).map_err(|_| MetadataError::StringNotUtf8)?,
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

fn list_value(bytes: &[u8], depth: usize) -> Result<Value, MetadataError> {
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
    fn key(&mut self) -> Result<Option<(u64, u8)>, MetadataError> {
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }

    fn varint(&mut self) -> Result<u64, MetadataError> {
        let mut out: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.pos).ok_or(MetadataError::TruncatedVarint)?;
            self.pos += 1;
            out |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(MetadataError::VarintTooLong)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MetadataError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(MetadataError::LengthOverflow)?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or(MetadataError::TruncatedField)?;
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8], MetadataError> {
        let n = usize::try_from(self.varint()?).map_err(|_| MetadataError::LengthOverflow)?;
        self.take(n)
    }

    fn fixed64(&mut self) -> Result<[u8; 8], MetadataError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn skip(&mut self, wire: u8) -> Result<(), MetadataError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            w => Err(MetadataError::UnsupportedWireType(w)),
        }
    }
}

/// A tiny protobuf writer for the tests.
#[cfg(test)]
pub(super) mod testenc {

    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
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
    pub fn len_field(field: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    pub enum V<'a> {
        S(&'a str),
        N(f64),
        B(bool),
        Null,
        L(Vec<V<'a>>),
        O(Vec<(&'a str, V<'a>)>),
    }
    pub fn enc_value(v: &V, out: &mut Vec<u8>) {
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
    pub fn enc_struct(fields: &[(&str, V)]) -> Vec<u8> {
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
}

#[cfg(test)]
mod tests {
    use super::testenc::*;
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
}
