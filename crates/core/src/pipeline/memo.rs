//! The listing memo: verdicts on list items already made by this
//! configuration, and the hashing of a listing input into its key. Held by
//! the [`Plugin`](crate::pipeline::plugin::Plugin), used by the response
//! path's list filtering.

use regorus::Value;

/// Listing verdicts already made, per configuration: whether an item of a
/// list result is shown is a function of the item's listing input when the
/// policy is deterministic ([`Needs::volatile`](crate::mcp::attributes::Needs)
/// false), and callers list the same tools again and again. Keyed by a
/// 128-bit keyed hash (SipHash, two random keys per VM) of everything the
/// item's listing input is made from; at most [`ListingMemo::CAPACITY`] entries, then it starts over. A new
/// configuration or bundle starts with an empty memo.
#[derive(Debug, Default)]
pub struct ListingMemo {
    keys: Option<(std::hash::RandomState, std::hash::RandomState)>,
    verdicts: std::collections::HashMap<u128, bool>,
    /// Lookups answered from the memo (for tests and benchmarks).
    pub hits: u64,
}

impl ListingMemo {
    pub const CAPACITY: usize = 8192;

    pub(crate) fn hashers(&mut self) -> (std::hash::DefaultHasher, std::hash::DefaultHasher) {
        use std::hash::BuildHasher;
        let (a, b) = self
            .keys
            .get_or_insert_with(|| (std::hash::RandomState::new(), std::hash::RandomState::new()));
        (a.build_hasher(), b.build_hasher())
    }

    pub(crate) fn get(&mut self, key: u128) -> Option<bool> {
        let v = self.verdicts.get(&key).copied();
        if v.is_some() {
            self.hits += 1;
        }
        v
    }

    pub(crate) fn put(&mut self, key: u128, listed: bool) {
        if self.verdicts.len() >= Self::CAPACITY {
            self.verdicts.clear();
        }
        self.verdicts.insert(key, listed);
    }
}

/// An optional string into a hasher, absent and empty kept apart.
pub(crate) fn hash_str(h: &mut impl std::hash::Hasher, s: Option<&str>) {
    match s {
        Some(s) => {
            h.write_u8(1);
            h.write_usize(s.len());
            h.write(s.as_bytes());
        }
        None => h.write_u8(0),
    }
}

/// JSON, or formatted text, written straight into a hasher.
pub(crate) struct HashWrite<'a, H>(pub(crate) &'a mut H);

impl<H: std::hash::Hasher> std::fmt::Write for HashWrite<'_, H> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

impl<H: std::hash::Hasher> std::io::Write for HashWrite<'_, H> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Feed a policy value to a hasher: the variant, lengths and contents, in
/// the value's own (sorted) order.
pub(crate) fn hash_value(v: &Value, h: &mut impl std::hash::Hasher) {
    use std::fmt::Write as _;
    match v {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => h.write_u8(if *b { 2 } else { 1 }),
        Value::Number(n) => {
            h.write_u8(3);
            let _ = write!(HashWrite(h), "{n:?}");
            h.write_u8(0xff);
        }
        Value::String(s) => {
            h.write_u8(4);
            h.write_usize(s.len());
            h.write(s.as_bytes());
        }
        Value::Array(a) => {
            h.write_u8(5);
            h.write_usize(a.len());
            for x in a.iter() {
                hash_value(x, h);
            }
        }
        Value::Set(s) => {
            h.write_u8(6);
            h.write_usize(s.len());
            for x in s.iter() {
                hash_value(x, h);
            }
        }
        Value::Object(o) => {
            h.write_u8(7);
            h.write_usize(o.len());
            for (k, x) in o.iter() {
                hash_value(k, h);
                hash_value(x, h);
            }
        }
        Value::Undefined => h.write_u8(8),
    }
}
