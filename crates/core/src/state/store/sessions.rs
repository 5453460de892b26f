//! Records in the store: the slot a key hashes to, reading a record, and
//! applying an update under compare-and-swap (evicting when a slot is
//! full).

use super::backend::{fnv1a, read_modify_write, Store, UpdateError};
use super::records::{Call, Kill, Record, SessionSettings};

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
    /// The records of a slot as read (`None`: absent). A slot that does not
    /// parse (another version wrote it) is treated as empty and overwritten.
    fn records(bytes: Option<&[u8]>) -> Vec<Record> {
        match bytes {
            Some(bytes) if !bytes.is_empty() => serde_json::from_slice(bytes).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The live record for `key`, if any.
    pub fn get(&self, key: &str) -> Option<Record> {
        let slot = slot_key(key, self.settings.slots);
        let records = Self::records(self.store.get(&slot).as_ref().map(|(b, _)| b.as_slice()));
        records
            .into_iter()
            .find(|r| r.key == key && !r.expired(self.now, self.settings))
    }

    /// Apply `update` to the record for `key` (creating it), with
    /// compare-and-swap retries.
    pub fn update(&self, key: &str, update: &Update<'_>) -> Result<(), UpdateError> {
        let slot = slot_key(key, self.settings.slots);
        read_modify_write(self.store, &slot, "session state", |bytes| {
            let mut records = Self::records(bytes);
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
            serde_json::to_vec(&records)
                .map(Some)
                .map_err(UpdateError::Encode)
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::{MemoryStore, StoreError};
    use regorus::Value;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
