//! Tool-definition pinning (the "rug pull"): the first definition of a tool
//! an upstream lists is pinned (trust on first use); a later definition with
//! another hash is `changed`, and the pin is kept, so the policy can refuse
//! the tool until an operator approves the new hash.
//!
//! Pins live in the host's shared store ([`Store`]): one small key per
//! (upstream, tool), `mcp-policy/pin/<upstream>/<tool>` holding
//! `{"h":"<sha256 hex>","t":<pinned at, ms>}`, so deciding a call reads and
//! parses one short value. Shared data outlives policy reloads (it lives as
//! long as the Envoy process). At most [`MAX_PINS_PER_UPSTREAM`] tools are
//! pinned per upstream (a count key `mcp-policy/pins/<upstream>` tracks them);
//! past that, [`Pins::observe`] returns an error and the caller fails closed.

use crate::state::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Tools pinned per upstream.
pub const MAX_PINS_PER_UPSTREAM: u64 = 10_000;
/// Longest tool name or upstream name that is pinned (longer ones are an error).
pub const MAX_NAME_BYTES: usize = 512;
const RETRIES: usize = 16;

/// The fields of a definition that are hashed.
pub const HASHED_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

fn canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = o.get(k) {
                    canonical(x, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The canonical JSON of what is pinned: an object of the
/// [`HASHED_FIELDS`] present in `def` (absent ones omitted), keys sorted at
/// every level (by UTF-8 bytes), no whitespace, strings escaped as
/// serde_json writes them, numbers as the server wrote them.
pub fn canonical_json(def: &serde_json::Value) -> String {
    let mut picked = serde_json::Map::new();
    for f in HASHED_FIELDS {
        if let Some(v) = def.get(f) {
            picked.insert(f.to_string(), v.clone());
        }
    }
    let mut out = String::new();
    canonical(&serde_json::Value::Object(picked), &mut out);
    out
}

/// sha256 (lower-case hex) of [`canonical_json`].
pub fn tool_hash(def: &serde_json::Value) -> String {
    let digest = Sha256::digest(canonical_json(def).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// Not pinned before (this sighting pinned it, or nothing is known).
    New,
    /// Same hash as the pin.
    Pinned,
    /// Another hash than the pin (the pin is kept).
    Changed,
}

impl PinStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PinStatus::New => "new",
            PinStatus::Pinned => "pinned",
            PinStatus::Changed => "changed",
        }
    }
}

/// What the policy sees as `input.mcp.tool.definition.pin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinView {
    pub status: PinStatus,
    /// The hash of the definition now (empty when unknown).
    pub hash: String,
    pub pinned_hash: Option<String>,
    pub pinned_at_ms: Option<u64>,
}

impl PinView {
    /// `{"status","hash","pinned_hash","pinned_at_ms"}` (null when unpinned).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": self.status.as_str(),
            "hash": self.hash,
            "pinned_hash": self.pinned_hash,
            "pinned_at_ms": self.pinned_at_ms,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pin {
    /// sha256 hex.
    h: String,
    /// Pinned at, ms since the epoch.
    t: u64,
}

fn pin_key(upstream: &str, tool: &str) -> String {
    format!("mcp-policy/pin/{upstream}/{tool}")
}

fn count_key(upstream: &str) -> String {
    format!("mcp-policy/pins/{upstream}")
}

/// Pins over a store.
pub struct Pins<'a, S: Store + ?Sized> {
    store: &'a S,
    max_per_upstream: u64,
}

impl<'a, S: Store + ?Sized> Pins<'a, S> {
    pub fn new(store: &'a S) -> Self {
        Pins {
            store,
            max_per_upstream: MAX_PINS_PER_UPSTREAM,
        }
    }

    /// The same with another bound on pins per upstream.
    pub fn with_limit(store: &'a S, max_per_upstream: u64) -> Self {
        Pins {
            store,
            max_per_upstream,
        }
    }

    fn load(&self, key: &str) -> (Option<Pin>, Option<u32>) {
        match self.store.get(key) {
            // An empty or unreadable value (another version wrote it) is no pin.
            Some((bytes, cas)) => (serde_json::from_slice(&bytes).ok(), Some(cas)),
            None => (None, None),
        }
    }

    fn compare(pin: &Pin, hash: &str) -> PinView {
        PinView {
            status: if pin.h == hash {
                PinStatus::Pinned
            } else {
                PinStatus::Changed
            },
            hash: hash.to_string(),
            pinned_hash: Some(pin.h.clone()),
            pinned_at_ms: Some(pin.t),
        }
    }

    /// Take one more slot of the upstream's budget.
    fn reserve(&self, upstream: &str) -> Result<(), StoreError> {
        let key = count_key(upstream);
        for _ in 0..RETRIES {
            let (n, cas) = match self.store.get(&key) {
                Some((bytes, cas)) => (
                    std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0),
                    Some(cas),
                ),
                None => (0, None),
            };
            if n >= self.max_per_upstream {
                return Err(StoreError::Failed(format!(
                    "upstream {upstream:?} has {n} pinned tools, the most kept ({})",
                    self.max_per_upstream
                )));
            }
            match self.store.set(&key, (n + 1).to_string().as_bytes(), cas) {
                Ok(()) => return Ok(()),
                Err(StoreError::CasMismatch) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::CasMismatch)
    }

    /// A sighting of `tool` with definition hash `hash` (a tools/list
    /// response, or a call): pins it on first sight, and compares otherwise.
    /// Never replaces a pin. The store has no create-if-absent, so two
    /// workers pinning different hashes of a new tool at the same moment may
    /// both see `New`: the last write is the pin, and the other definition
    /// is `Changed` from its next sighting on (if the first writer reads
    /// back the other's pin, it reports `Changed` at once).
    pub fn observe(
        &self,
        upstream: &str,
        tool: &str,
        hash: &str,
        now_ms: u64,
    ) -> Result<PinView, StoreError> {
        if upstream.len() > MAX_NAME_BYTES || tool.len() > MAX_NAME_BYTES {
            return Err(StoreError::Failed(format!(
                "tool or upstream name longer than {MAX_NAME_BYTES} bytes is not pinned"
            )));
        }
        let key = pin_key(upstream, tool);
        for _ in 0..RETRIES {
            let (pin, cas) = self.load(&key);
            if let Some(pin) = pin {
                return Ok(Self::compare(&pin, hash));
            }
            if cas.is_none() {
                // A new key: count it against the upstream's bound first.
                self.reserve(upstream)?;
            }
            let pin = Pin {
                h: hash.to_string(),
                t: now_ms,
            };
            let bytes = serde_json::to_vec(&pin).map_err(|e| StoreError::Failed(e.to_string()))?;
            match self.store.set(&key, &bytes, cas) {
                Ok(()) => {}
                Err(StoreError::CasMismatch) => continue,
                Err(e) => return Err(e),
            }
            // The store has no create-if-absent: read back what won.
            return Ok(match self.load(&key).0 {
                Some(stored) if stored == pin => PinView {
                    status: PinStatus::New,
                    hash: hash.to_string(),
                    pinned_hash: Some(pin.h),
                    pinned_at_ms: Some(pin.t),
                },
                Some(stored) => Self::compare(&stored, hash),
                None => {
                    return Err(StoreError::Failed(
                        "the pin just written cannot be read back".into(),
                    ))
                }
            });
        }
        Err(StoreError::Failed(
            "tool pins are too contended (compare-and-swap kept failing)".into(),
        ))
    }

    /// The pin state without writing. `hash`: the definition's hash now, if
    /// known; without it the status is `Pinned` when a pin exists (its hash
    /// is reported) and `New` (empty hash) otherwise.
    pub fn view(&self, upstream: &str, tool: &str, hash: Option<&str>) -> PinView {
        let pin = self.load(&pin_key(upstream, tool)).0;
        match (pin, hash) {
            (Some(pin), Some(h)) => Self::compare(&pin, h),
            (Some(pin), None) => PinView {
                status: PinStatus::Pinned,
                hash: pin.h.clone(),
                pinned_hash: Some(pin.h),
                pinned_at_ms: Some(pin.t),
            },
            (None, h) => PinView {
                status: PinStatus::New,
                hash: h.unwrap_or("").to_string(),
                pinned_hash: None,
                pinned_at_ms: None,
            },
        }
    }

    /// Replace the pin with `hash` (an operator approved the new definition
    /// for good). Creates the pin if there is none.
    pub fn repin(
        &self,
        upstream: &str,
        tool: &str,
        hash: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let key = pin_key(upstream, tool);
        for _ in 0..RETRIES {
            let (_, cas) = self.load(&key);
            if cas.is_none() {
                self.reserve(upstream)?;
            }
            let bytes = serde_json::to_vec(&Pin {
                h: hash.to_string(),
                t: now_ms,
            })
            .map_err(|e| StoreError::Failed(e.to_string()))?;
            match self.store.set(&key, &bytes, cas) {
                Ok(()) => return Ok(()),
                Err(StoreError::CasMismatch) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Failed(
            "tool pins are too contended (compare-and-swap kept failing)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::MemoryStore;
    use serde_json::json;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn hash_is_canonical() {
        let a = json!({"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "number"}}}});
        let b: serde_json::Value = serde_json::from_str(
            r#"{ "inputSchema" : { "properties": {"a": {"type":"number"}, "b":{"type":"string"}}, "type":"object"},
                 "description": "d", "name": "t", "_meta": {"x": 1}, "icons": [] }"#,
        )
        .unwrap();
        assert_eq!(tool_hash(&a), tool_hash(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"description":"d","inputSchema":{"properties":{"a":{"type":"number"},"b":{"type":"string"}},"type":"object"},"name":"t"}"#
        );
        assert_eq!(tool_hash(&a).len(), 64);
        // Every hashed field matters.
        for (k, v) in [
            ("name", json!("u")),
            ("title", json!("T")),
            ("description", json!("d2")),
            ("inputSchema", json!({})),
            ("outputSchema", json!({})),
            ("annotations", json!({"readOnlyHint": true})),
        ] {
            let mut c = a.clone();
            c[k] = v;
            assert_ne!(tool_hash(&a), tool_hash(&c), "{k}");
        }
        // Numbers are hashed as written.
        let one: serde_json::Value =
            serde_json::from_str(r#"{"inputSchema": {"default": 1}}"#).unwrap();
        let one_f: serde_json::Value =
            serde_json::from_str(r#"{"inputSchema": {"default": 1.0}}"#).unwrap();
        assert_ne!(tool_hash(&one), tool_hash(&one_f));
        // The value the Python recipe in docs/detectors.md gives for this definition.
        let doc: serde_json::Value = serde_json::from_str(
            r#"{"name": "add", "description": "Adds – two numbers", "inputSchema": {"type": "object", "properties": {"b": {"type": "integer", "default": 1.0}, "a": {"type": "integer"}}}, "annotations": {"readOnlyHint": true}, "_meta": {"x": 1}}"#,
        )
        .unwrap();
        assert_eq!(
            tool_hash(&doc),
            "c3913edc025e600209a330a03385bd8637d39e3cbbd4e0b47cbd13e84a9dbd70"
        );
        // The known value of an empty definition: sha256("{}").
        assert_eq!(
            tool_hash(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn first_sighting_pins_then_compares() {
        let store = MemoryStore::default();
        let pins = Pins::new(&store);
        let v = pins.observe("up", "add", "h1", 100).unwrap();
        assert_eq!(v.status, PinStatus::New);
        assert_eq!(v.pinned_at_ms, Some(100));
        let v = pins.observe("up", "add", "h1", 200).unwrap();
        assert_eq!(v.status, PinStatus::Pinned);
        assert_eq!(v.pinned_at_ms, Some(100));
        let v = pins.observe("up", "add", "h2", 300).unwrap();
        assert_eq!(v.status, PinStatus::Changed);
        assert_eq!(v.hash, "h2");
        assert_eq!(v.pinned_hash.as_deref(), Some("h1"));
        // The pin is kept.
        assert_eq!(
            pins.view("up", "add", Some("h2")).status,
            PinStatus::Changed
        );
        assert_eq!(pins.view("up", "add", Some("h1")).status, PinStatus::Pinned);
        let v = pins.view("up", "add", None);
        assert_eq!((v.status, v.hash.as_str()), (PinStatus::Pinned, "h1"));
        // Upstreams are separate.
        assert_eq!(pins.view("other", "add", Some("h2")).status, PinStatus::New);
        assert_eq!(
            pins.view("other", "add", None).to_json(),
            json!({"status": "new", "hash": "", "pinned_hash": null, "pinned_at_ms": null})
        );
        // An operator re-pins.
        pins.repin("up", "add", "h2", 400).unwrap();
        assert_eq!(pins.view("up", "add", Some("h2")).status, PinStatus::Pinned);
    }

    #[test]
    fn pins_per_upstream_are_bounded() {
        let store = MemoryStore::default();
        let pins = Pins::with_limit(&store, 2);
        pins.observe("up", "a", "h", 1).unwrap();
        pins.observe("up", "b", "h", 1).unwrap();
        assert!(pins.observe("up", "c", "h", 1).is_err());
        // Known tools still compare.
        assert_eq!(
            pins.observe("up", "a", "x", 1).unwrap().status,
            PinStatus::Changed
        );
        assert!(pins.observe("up2", "c", "h", 1).is_ok());
        assert!(pins
            .observe("up", &"n".repeat(MAX_NAME_BYTES + 1), "h", 1)
            .is_err());
    }

    /// A store where another worker writes between our read and our write.
    struct Racing {
        inner: MemoryStore,
        /// (key, value) another worker writes just before our next set.
        interleave: std::cell::RefCell<Option<(String, Vec<u8>)>>,
        conflicts: std::cell::Cell<u32>,
    }

    impl Store for Racing {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            if let Some((k, v)) = self.interleave.borrow_mut().take() {
                self.inner.set(&k, &v, None).unwrap();
            }
            let r = self.inner.set(key, value, cas);
            if r.is_err() {
                self.conflicts.set(self.conflicts.get() + 1);
            }
            r
        }
    }

    #[test]
    fn concurrent_writers_retry_under_cas() {
        let store = Racing {
            inner: MemoryStore::default(),
            interleave: Default::default(),
            conflicts: Default::default(),
        };
        let pins = Pins::new(&store);
        pins.observe("up", "a", "h1", 1).unwrap();
        // Another worker bumps the count while we pin "b": the count write
        // conflicts, is retried, and both pins are counted.
        *store.interleave.borrow_mut() = Some((count_key("up"), b"5".to_vec()));
        assert_eq!(
            pins.observe("up", "b", "h1", 2).unwrap().status,
            PinStatus::New
        );
        assert_eq!(store.conflicts.get(), 1);
        assert_eq!(store.get(&count_key("up")).unwrap().0, b"6");
        // Another worker re-pins "a" between our read and our write of a
        // repin: the CAS fails, we read again and write over it.
        *store.interleave.borrow_mut() =
            Some((pin_key("up", "a"), br#"{"h":"h9","t":5}"#.to_vec()));
        pins.repin("up", "a", "h2", 3).unwrap();
        assert_eq!(store.conflicts.get(), 2);
        assert_eq!(pins.view("up", "a", Some("h2")).status, PinStatus::Pinned);
        // Two first sightings racing with different hashes: the last write
        // is the pin; the other hash is Changed from then on.
        *store.interleave.borrow_mut() =
            Some((pin_key("up", "c"), br#"{"h":"other","t":7}"#.to_vec()));
        let v = pins.observe("up", "c", "mine", 8).unwrap();
        // Our CAS token for the absent key was None: the write lands.
        assert_eq!(v.status, PinStatus::New);
        assert_eq!(pins.view("up", "c", Some("mine")).status, PinStatus::Pinned);
        assert_eq!(
            pins.observe("up", "c", "other", 9).unwrap().status,
            PinStatus::Changed
        );
    }

    #[test]
    fn unreadable_pins_are_replaced() {
        let store = MemoryStore::default();
        store.set(&pin_key("up", "a"), b"garbage", None).unwrap();
        let pins = Pins::new(&store);
        assert_eq!(
            pins.observe("up", "a", "h", 1).unwrap().status,
            PinStatus::New
        );
        assert_eq!(
            pins.observe("up", "a", "h", 2).unwrap().status,
            PinStatus::Pinned
        );
    }
}
