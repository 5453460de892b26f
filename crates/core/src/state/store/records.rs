//! What a session or principal record holds (history, binding, rates,
//! kills), how it reads as policy input, and the settings that bound it.

use crate::mcp::methods;
use regorus::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

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
    pub fn validate(&self) -> Result<(), SessionSettingsError> {
        if self.ttl_seconds == 0 || self.kill_ttl_seconds == 0 || self.rate_window_seconds == 0 {
            return Err(SessionSettingsError::ZeroDuration);
        }
        if self.max_calls == 0 || self.max_calls > 4096 {
            return Err(SessionSettingsError::MaxCalls(self.max_calls));
        }
        if self.slots == 0 || self.slots > 1 << 20 {
            return Err(SessionSettingsError::Slots(self.slots));
        }
        if self.slot_records == 0 || self.slot_records > 64 {
            return Err(SessionSettingsError::SlotRecords(self.slot_records));
        }
        Ok(())
    }
}

/// A `sessions` setting out of its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSettingsError {
    /// A duration of 0 seconds.
    ZeroDuration,
    /// `max_calls` not within 1 to 4096.
    MaxCalls(usize),
    /// `slots` not within 1 to 1048576.
    Slots(u32),
    /// `slot_records` not within 1 to 64.
    SlotRecords(usize),
}

impl fmt::Display for SessionSettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionSettingsError::ZeroDuration => {
                write!(f, "durations must be at least 1 second")
            }
            SessionSettingsError::MaxCalls(n) => {
                write!(f, "max_calls {n} is out of range (1 to 4096)")
            }
            SessionSettingsError::Slots(n) => {
                write!(f, "slots {n} is out of range (1 to 1048576)")
            }
            SessionSettingsError::SlotRecords(n) => {
                write!(f, "slot_records {n} is out of range (1 to 64)")
            }
        }
    }
}

impl std::error::Error for SessionSettingsError {}

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

    pub(super) fn new(key: &str, now: u64) -> Record {
        Record {
            key: key.to_string(),
            created: now,
            last: now,
            ..Record::default()
        }
    }

    pub(super) fn expired(&self, now: u64, s: &SessionSettings) -> bool {
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
                    if c.method == methods::TOOLS_CALL {
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

    pub(super) fn record_call(&mut self, call: Call, now: u64, s: &SessionSettings) {
        let window = s.rate_window_seconds.saturating_mul(1000);
        self.rate.add(now, window);
        if let Some(name) = call
            .name
            .as_ref()
            .filter(|_| call.method == methods::TOOLS_CALL)
        {
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
