//! Per-session and per-principal state: call history, the principal a
//! session is bound to, sliding-window rate counters, and kills. Kept in the
//! host's shared key-value store (proxy-wasm shared data: one per Envoy
//! process, shared by all worker threads), updated with compare-and-swap.
//!
//! Memory is bounded whatever the clients send: keys are hashed into a fixed
//! number of slots, each holding at most a few records; a full slot evicts
//! its expired records first, then the least recently used (never a killed
//! one while an unkilled one can go). Records expire after `ttl` of
//! inactivity; history keeps the last `max_calls` calls.

use regorus::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The host's shared store.
pub trait Store {
    /// The value and its compare-and-swap token.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Write if the token still matches (`None`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Someone else wrote first: read again and retry.
    CasMismatch,
    /// Anything else (store full, host error).
    Failed(String),
}

/// Settings for session state (configuration key `sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Inactivity after which a record is forgotten.
    pub ttl_seconds: u64,
    /// How long a kill lasts unless cleared.
    pub kill_ttl_seconds: u64,
    /// Calls kept per session (the most recent).
    pub max_calls: usize,
    /// Number of slots in the shared store.
    pub slots: u32,
    /// Records per slot.
    pub slot_records: usize,
    /// Rate window.
    pub rate_window_seconds: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            ttl_seconds: 3600,
            kill_ttl_seconds: 3600,
            max_calls: 64,
            slots: 4096,
            slot_records: 4,
            rate_window_seconds: 60,
        }
    }
}

impl SessionSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl_seconds == 0 || self.kill_ttl_seconds == 0 || self.rate_window_seconds == 0 {
            return Err("durations must be at least 1 second".into());
        }
        if self.max_calls == 0 || self.max_calls > 4096 {
            return Err(format!(
                "max_calls {} is out of range (1 to 4096)",
                self.max_calls
            ));
        }
        if self.slots == 0 || self.slots > 1 << 20 {
            return Err(format!(
                "slots {} is out of range (1 to 1048576)",
                self.slots
            ));
        }
        if self.slot_records == 0 || self.slot_records > 64 {
            return Err(format!(
                "slot_records {} is out of range (1 to 64)",
                self.slot_records
            ));
        }
        Ok(())
    }
}

/// One call in a session's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Milliseconds since the epoch.
    pub t: u64,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    pub allowed: bool,
}

/// A sliding-window counter (two fixed windows, weighted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    start: u64,
    cur: u64,
    prev: u64,
}

impl Counter {
    fn roll(&mut self, now: u64, window: u64) {
        if now < self.start {
            return;
        }
        let elapsed = now - self.start;
        if elapsed >= 2 * window {
            self.prev = 0;
            self.cur = 0;
            self.start = now - now % window;
        } else if elapsed >= window {
            self.prev = self.cur;
            self.cur = 0;
            self.start += window;
        }
    }

    /// The estimated count over the last `window` ms.
    pub fn value(&self, now: u64, window: u64) -> u64 {
        let mut c = self.clone();
        c.roll(now, window);
        let into = now.saturating_sub(c.start).min(window);
        let weight = (window - into) as f64 / window as f64;
        c.cur + (c.prev as f64 * weight).round() as u64
    }

    fn add(&mut self, now: u64, window: u64) {
        if self.start == 0 {
            self.start = now - now % window;
        }
        self.roll(now, window);
        self.cur += 1;
    }
}

/// A kill: every further message is denied until `until` (ms) or cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kill {
    pub reason: String,
    pub at: u64,
    pub until: u64,
}

/// The state of one session (`s:<Mcp-Session-Id>`) or principal
/// (`p:<principal>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    pub created: u64,
    pub last: u64,
    #[serde(default)]
    pub calls: Vec<Call>,
    #[serde(default)]
    pub rate: Counter,
    #[serde(default)]
    pub tool_rates: BTreeMap<String, Counter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed: Option<Kill>,
    /// Every label of an allowed call in this record's life (bounded), so a
    /// flow rule cannot be escaped by padding the history window.
    #[serde(default)]
    pub labels_seen: std::collections::BTreeSet<String>,
}

const MAX_TOOL_COUNTERS: usize = 256;
const MAX_LABELS: usize = 256;

impl Record {
    /// A record not stored yet (a session's first message).
    pub fn fresh(now: u64) -> Record {
        Record {
            created: now,
            last: now,
            ..Record::default()
        }
    }

    fn new(key: &str, now: u64) -> Record {
        Record {
            key: key.to_string(),
            created: now,
            last: now,
            ..Record::default()
        }
    }

    fn expired(&self, now: u64, s: &SessionSettings) -> bool {
        let idle = now.saturating_sub(self.last) > s.ttl_seconds.saturating_mul(1000);
        let kill_over = self.killed.as_ref().is_none_or(|k| now >= k.until);
        idle && kill_over
    }

    /// The live kill, if any.
    pub fn kill(&self, now: u64) -> Option<&Kill> {
        self.killed.as_ref().filter(|k| now < k.until)
    }

    /// `input.session` (for a session record).
    pub fn session_value(&self, id: &str, now: u64) -> Value {
        let calls: Vec<Value> = self
            .calls
            .iter()
            .map(|c| {
                let mut o = BTreeMap::new();
                o.insert(Value::from("time_ms"), Value::from(c.t));
                o.insert(Value::from("method"), Value::from(c.method.as_str()));
                if let Some(n) = &c.name {
                    o.insert(Value::from("name"), Value::from(n.as_str()));
                    if c.method == "tools/call" {
                        o.insert(Value::from("tool"), Value::from(n.as_str()));
                    }
                }
                let labels: std::collections::BTreeSet<Value> =
                    c.labels.iter().map(|l| Value::from(l.as_str())).collect();
                o.insert(Value::from("labels"), Value::from(labels));
                o.insert(Value::from("allowed"), Value::from(c.allowed));
                Value::from(o)
            })
            .collect();
        let labels: std::collections::BTreeSet<Value> = self
            .labels_seen
            .iter()
            .map(|l| Value::from(l.as_str()))
            .collect();
        let mut o = BTreeMap::new();
        o.insert(Value::from("id"), Value::from(id));
        o.insert(Value::from("started_ms"), Value::from(self.created));
        o.insert(Value::from("calls"), Value::from(calls));
        o.insert(Value::from("labels"), Value::from(labels));
        if let Some(p) = &self.principal {
            o.insert(Value::from("principal"), Value::from(p.as_str()));
        }
        if let Some(k) = self.kill(now) {
            o.insert(Value::from("killed"), kill_value(k));
        }
        Value::from(o)
    }

    /// The counts over the window, with this message included.
    pub fn rate_value(&self, tool: Option<&str>, now: u64, window: u64) -> Value {
        let mut o = BTreeMap::new();
        o.insert(
            Value::from("window"),
            Value::from(self.rate.value(now, window) + 1),
        );
        let mut tools = BTreeMap::new();
        for (name, c) in &self.tool_rates {
            let mut v = c.value(now, window);
            if Some(name.as_str()) == tool {
                v += 1;
            }
            if v > 0 {
                tools.insert(Value::from(name.as_str()), Value::from(v));
            }
        }
        if let Some(t) = tool {
            tools.entry(Value::from(t)).or_insert(Value::from(1u64));
        }
        o.insert(Value::from("tools"), Value::from(tools));
        Value::from(o)
    }

    fn record_call(&mut self, call: Call, now: u64, s: &SessionSettings) {
        let window = s.rate_window_seconds.saturating_mul(1000);
        self.rate.add(now, window);
        if let Some(name) = call.name.as_ref().filter(|_| call.method == "tools/call") {
            if !self.tool_rates.contains_key(name) && self.tool_rates.len() >= MAX_TOOL_COUNTERS {
                // Full: drop the quietest counter, so junk names cannot
                // crowd out the counters of tools actually in use.
                let quietest = self
                    .tool_rates
                    .iter()
                    .min_by_key(|(_, c)| c.value(now, window))
                    .map(|(k, _)| k.clone());
                if let Some(k) = quietest {
                    self.tool_rates.remove(&k);
                }
            }
            self.tool_rates
                .entry(name.clone())
                .or_default()
                .add(now, window);
        }
        if call.allowed {
            for l in &call.labels {
                if self.labels_seen.len() < MAX_LABELS {
                    self.labels_seen.insert(l.clone());
                }
            }
        }
        self.calls.push(call);
        if self.calls.len() > s.max_calls {
            let extra = self.calls.len() - s.max_calls;
            self.calls.drain(..extra);
        }
        self.last = now;
    }
}

pub fn kill_value(k: &Kill) -> Value {
    let mut o = BTreeMap::new();
    o.insert(Value::from("reason"), Value::from(k.reason.as_str()));
    o.insert(Value::from("at_ms"), Value::from(k.at));
    o.insert(Value::from("until_ms"), Value::from(k.until));
    Value::from(o)
}

/// FNV-1a: a hash every worker (and every build) agrees on, for choosing
/// a key in the shared store.
pub(crate) fn fnv1a(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The slot of a key.
fn slot_key(key: &str, slots: u32) -> String {
    format!("mcp-policy/state/{}", fnv1a(key) % u64::from(slots))
}

/// Reading and updating records in the store.
pub struct States<'a> {
    pub store: &'a dyn Store,
    pub settings: &'a SessionSettings,
    pub now: u64,
}

/// A change to apply to a record, retried under compare-and-swap.
pub struct Update<'a> {
    pub call: Option<Call>,
    pub bind: Option<&'a str>,
    pub kill: Option<(String, u64)>,
    pub clear_kill: bool,
}

impl States<'_> {
    fn load(&self, slot: &str) -> (Vec<Record>, Option<u32>) {
        match self.store.get(slot) {
            Some((bytes, cas)) if !bytes.is_empty() => {
                // A slot that does not parse (another version wrote it) is
                // treated as empty and overwritten.
                (
                    serde_json::from_slice(&bytes).unwrap_or_default(),
                    Some(cas),
                )
            }
            Some((_, cas)) => (Vec::new(), Some(cas)),
            None => (Vec::new(), None),
        }
    }

    /// The live record for `key`, if any.
    pub fn get(&self, key: &str) -> Option<Record> {
        let slot = slot_key(key, self.settings.slots);
        let (records, _) = self.load(&slot);
        records
            .into_iter()
            .find(|r| r.key == key && !r.expired(self.now, self.settings))
    }

    /// Apply `update` to the record for `key` (creating it), with
    /// compare-and-swap retries.
    pub fn update(&self, key: &str, update: &Update<'_>) -> Result<(), String> {
        let slot = slot_key(key, self.settings.slots);
        for _ in 0..16 {
            let (mut records, cas) = self.load(&slot);
            records.retain(|r| r.key == key || !r.expired(self.now, self.settings));
            let pos = match records.iter().position(|r| r.key == key) {
                Some(p)
                    if records
                        .get(p)
                        .is_some_and(|r| r.expired(self.now, self.settings)) =>
                {
                    if let Some(r) = records.get_mut(p) {
                        *r = Record::new(key, self.now);
                    }
                    p
                }
                Some(p) => p,
                None => {
                    if records.len() >= self.settings.slot_records {
                        evict(&mut records);
                    }
                    records.push(Record::new(key, self.now));
                    records.len() - 1
                }
            };
            if let Some(r) = records.get_mut(pos) {
                if r.principal.is_none() {
                    r.principal = update.bind.map(str::to_string);
                }
                if update.clear_kill {
                    r.killed = None;
                }
                if let Some((reason, ttl_ms)) = &update.kill {
                    r.killed = Some(Kill {
                        reason: reason.clone(),
                        at: self.now,
                        until: self.now + ttl_ms,
                    });
                }
                if let Some(c) = &update.call {
                    r.record_call(c.clone(), self.now, self.settings);
                }
                r.last = self.now;
            }
            let bytes = serde_json::to_vec(&records).map_err(|e| e.to_string())?;
            match self.store.set(&slot, &bytes, cas) {
                Ok(()) => return Ok(()),
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Failed(e)) => return Err(e),
            }
        }
        Err("session state is too contended (compare-and-swap kept failing)".into())
    }
}

/// Make room: the least recently used record that is not killed, else the
/// least recently used.
fn evict(records: &mut Vec<Record>) {
    let victim = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.killed.is_none())
        .min_by_key(|(_, r)| r.last)
        .or_else(|| records.iter().enumerate().min_by_key(|(_, r)| r.last))
        .map(|(i, _)| i);
    if let Some(i) = victim {
        records.remove(i);
    }
}

/// An in-process store: what the CLI and the native tests use, and what a
/// single-threaded host would use.
#[derive(Default)]
pub struct MemoryStore {
    map: std::cell::RefCell<BTreeMap<String, (Vec<u8>, u32)>>,
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.map.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut m = self.map.borrow_mut();
        let next = match (m.get(key), cas) {
            (Some((_, cur)), Some(c)) if *cur != c => return Err(StoreError::CasMismatch),
            (Some((_, cur)), _) => cur.wrapping_add(1),
            (None, _) => 1,
        };
        m.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(t: u64, name: &str, labels: &[&str]) -> Call {
        Call {
            t,
            method: "tools/call".into(),
            name: Some(name.into()),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            allowed: true,
        }
    }

    fn upd(c: Call) -> Update<'static> {
        Update {
            call: Some(c),
            bind: None,
            kill: None,
            clear_kill: false,
        }
    }

    #[test]
    fn history_is_kept_bounded_and_expires() {
        let store = MemoryStore::default();
        let settings = SessionSettings {
            max_calls: 3,
            ..Default::default()
        };
        for i in 0..5u64 {
            let s = States {
                store: &store,
                settings: &settings,
                now: 1000 + i,
            };
            s.update("s:a", &upd(call(1000 + i, &format!("t{i}"), &[])))
                .unwrap();
        }
        let s = States {
            store: &store,
            settings: &settings,
            now: 2000,
        };
        let r = s.get("s:a").unwrap();
        assert_eq!(
            r.calls
                .iter()
                .map(|c| c.name.clone().unwrap())
                .collect::<Vec<_>>(),
            ["t2", "t3", "t4"]
        );
        let later = States {
            store: &store,
            settings: &settings,
            now: 2000 + 3_600_001,
        };
        assert!(later.get("s:a").is_none());
    }

    #[test]
    fn binding_is_set_once() {
        let store = MemoryStore::default();
        let settings = SessionSettings::default();
        let s = States {
            store: &store,
            settings: &settings,
            now: 10,
        };
        s.update(
            "s:x",
            &Update {
                call: None,
                bind: Some("sub:alice"),
                kill: None,
                clear_kill: false,
            },
        )
        .unwrap();
        s.update(
            "s:x",
            &Update {
                call: None,
                bind: Some("sub:mallory"),
                kill: None,
                clear_kill: false,
            },
        )
        .unwrap();
        assert_eq!(
            s.get("s:x").unwrap().principal.as_deref(),
            Some("sub:alice")
        );
    }

    #[test]
    fn rates_slide() {
        let store = MemoryStore::default();
        let settings = SessionSettings::default();
        let w = 60_000;
        for i in 0..50u64 {
            let s = States {
                store: &store,
                settings: &settings,
                now: 120_000 + i * 100,
            };
            s.update("p:bot", &upd(call(0, "get_record", &[]))).unwrap();
        }
        let s = States {
            store: &store,
            settings: &settings,
            now: 126_000,
        };
        let r = s.get("p:bot").unwrap();
        let v = r.rate_value(Some("get_record"), 126_000, w);
        assert_eq!(v["window"], Value::from(51u64));
        assert_eq!(v["tools"]["get_record"], Value::from(51u64));
        // Two windows later everything has slid out.
        let v = r.rate_value(Some("get_record"), 126_000 + 2 * w, w);
        assert_eq!(v["tools"]["get_record"], Value::from(1u64));
    }

    #[test]
    fn kills_last_until_cleared_or_expired() {
        let store = MemoryStore::default();
        let settings = SessionSettings::default();
        let s = States {
            store: &store,
            settings: &settings,
            now: 1_000,
        };
        s.update(
            "s:k",
            &Update {
                call: None,
                bind: None,
                kill: Some(("too fast".into(), 5_000)),
                clear_kill: false,
            },
        )
        .unwrap();
        assert_eq!(
            s.get("s:k").unwrap().kill(2_000).unwrap().reason,
            "too fast"
        );
        assert!(s.get("s:k").unwrap().kill(7_000).is_none());
        s.update(
            "s:k",
            &Update {
                call: None,
                bind: None,
                kill: None,
                clear_kill: true,
            },
        )
        .unwrap();
        assert!(s.get("s:k").unwrap().killed.is_none());
    }

    #[test]
    fn slots_are_bounded_and_prefer_evicting_unkilled_records() {
        let store = MemoryStore::default();
        let settings = SessionSettings {
            slots: 1,
            slot_records: 2,
            ..Default::default()
        };
        let s = States {
            store: &store,
            settings: &settings,
            now: 1,
        };
        s.update(
            "s:killed",
            &Update {
                call: None,
                bind: None,
                kill: Some(("x".into(), 1_000_000)),
                clear_kill: false,
            },
        )
        .unwrap();
        for (i, k) in ["s:a", "s:b", "s:c"].iter().enumerate() {
            let s = States {
                store: &store,
                settings: &settings,
                now: 10 + i as u64,
            };
            s.update(k, &upd(call(0, "x", &[]))).unwrap();
        }
        let s = States {
            store: &store,
            settings: &settings,
            now: 20,
        };
        assert!(
            s.get("s:killed").is_some(),
            "a killed record survives the flood"
        );
        assert!(s.get("s:c").is_some());
        assert_eq!(store.map.borrow().len(), 1);
    }

    #[test]
    fn cas_conflicts_are_retried() {
        struct Flaky {
            inner: MemoryStore,
            fails: std::cell::Cell<u32>,
        }
        impl Store for Flaky {
            fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
                self.inner.get(key)
            }
            fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
                if self.fails.get() > 0 {
                    self.fails.set(self.fails.get() - 1);
                    return Err(StoreError::CasMismatch);
                }
                self.inner.set(key, value, cas)
            }
        }
        let store = Flaky {
            inner: MemoryStore::default(),
            fails: std::cell::Cell::new(3),
        };
        let settings = SessionSettings::default();
        let s = States {
            store: &store,
            settings: &settings,
            now: 5,
        };
        s.update("s:z", &upd(call(5, "x", &["l"]))).unwrap();
        assert_eq!(s.get("s:z").unwrap().calls.len(), 1);
        store.fails.set(100);
        assert!(s.update("s:z", &upd(call(6, "x", &[]))).is_err());
    }

    #[test]
    fn session_value_shape() {
        let mut r = Record::new("s:q", 1);
        r.principal = Some("sub:alice".into());
        let settings = SessionSettings::default();
        r.record_call(call(2, "read_db", &["sensitive_read"]), 2, &settings);
        let v = r.session_value("q", 3);
        assert_eq!(v["id"], Value::from("q"));
        assert_eq!(v["calls"][0]["tool"], Value::from("read_db"));
        assert!(v["labels"]
            .as_set()
            .unwrap()
            .contains(&Value::from("sensitive_read")));
        assert_eq!(v["principal"], Value::from("sub:alice"));
    }
}
