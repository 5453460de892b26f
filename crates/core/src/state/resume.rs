//! Answers that arrive on another HTTP stream than their request.
//!
//! In the 2025 transport a server may end the SSE stream of a POST before it
//! answers (SSE polling, 2025-11-25), and a connection may drop; the client
//! then resumes with a GET that carries `Last-Event-ID`, and the server sends
//! the rest of the interrupted stream there — the answer included. The GET
//! carries no JSON-RPC request, so without help the filter would not know
//! what the answer answers: a `tools/list` would pass unfiltered, a
//! `tools/call` result would be decided without its tool.
//!
//! So when an inspected SSE answer stream ends with requests still
//! unanswered, the filter keeps those requests (method, id, params) in the
//! host's shared store, under the upstream and the session; a resuming GET of
//! the same session reads them back and its stream is decided as the original
//! would have been. Answers delivered there are forgotten when that stream
//! ends. The store is bounded: [`SLOTS`] keys, at most [`PER_SLOT`] requests
//! and [`MAX_SLOT_BYTES`] each (oldest out first), `params` above
//! [`MAX_PARAMS_BYTES`] cut to the request's `name` and `uri`, and entries
//! older than [`TTL_MS`] are dropped.

use crate::mcp::jsonrpc::Origin;
use crate::state::store::{read_modify_write, Store, UpdateError};
use regorus::Value;
use serde::{Deserialize, Serialize};

/// Keys in the shared store (`mcp-policy/resume/<n>`).
pub const SLOTS: u32 = 1024;
/// Requests kept per key.
pub const PER_SLOT: usize = 32;
/// How long an unanswered request is kept.
pub const TTL_MS: u64 = 10 * 60 * 1000;
/// Bytes a key's requests may take: the oldest go first.
pub const MAX_SLOT_BYTES: usize = 32 * 1024;
/// Larger `params` are kept as their `name` and `uri` only (the answer is
/// then decided without the request's arguments).
pub const MAX_PARAMS_BYTES: usize = 4 * 1024;
/// Longer upstream or session ids are not kept at all.
const MAX_OWNER_BYTES: usize = 512;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    /// Upstream and session.
    k: String,
    m: String,
    id: String,
    /// `params` as JSON (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    #[serde(default)]
    modern: bool,
    at: u64,
}

fn owner(upstream: &str, session: &str) -> String {
    format!("{upstream}\n{session}")
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        now.saturating_sub(self.at) < TTL_MS
    }

    fn size(&self) -> usize {
        64 + self.k.len() + self.m.len() + self.id.len() + self.p.as_ref().map_or(0, String::len)
    }
}

/// `params` as kept: whole when small, else only what names the subject.
fn kept_params(params: &Value) -> Option<String> {
    let whole = match params {
        Value::Undefined => return None,
        v => serde_json::to_string(v).ok()?,
    };
    if whole.len() <= MAX_PARAMS_BYTES {
        return Some(whole);
    }
    let mut subject = serde_json::Map::new();
    for key in ["name", "uri"] {
        if let Ok(v) = params[key].as_string() {
            if v.len() <= MAX_PARAMS_BYTES / 2 {
                subject.insert(key.into(), serde_json::Value::String(v.to_string()));
            }
        }
    }
    serde_json::to_string(&subject).ok()
}

/// The store key of an owner's requests.
fn slot(owner: &str) -> String {
    format!(
        "mcp-policy/resume/{}",
        crate::state::store::fnv1a(owner) % u64::from(SLOTS)
    )
}

/// The entries of a slot as read (`None`: absent). A value that does not
/// parse (another version wrote it) counts as empty and is overwritten.
fn entries(bytes: Option<&[u8]>) -> Vec<Entry> {
    bytes
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default()
}

/// Apply `change` to the entries of `owner`'s slot under compare-and-swap.
fn update(
    store: &dyn Store,
    now: u64,
    owner: &str,
    change: impl Fn(&mut Vec<Entry>),
) -> Result<(), UpdateError> {
    read_modify_write(store, &slot(owner), "the resume store", |bytes| {
        let mut entries = entries(bytes);
        let before = entries.clone();
        entries.retain(|e| e.live(now));
        change(&mut entries);
        if entries.len() > PER_SLOT {
            let extra = entries.len() - PER_SLOT;
            entries.drain(..extra);
        }
        while entries.iter().map(Entry::size).sum::<usize>() > MAX_SLOT_BYTES && !entries.is_empty()
        {
            entries.remove(0);
        }
        if entries == before {
            return Ok(None);
        }
        serde_json::to_vec(&entries)
            .map(Some)
            .map_err(UpdateError::Encode)
    })
}

/// Keep requests whose answers did not come on their own stream.
pub fn remember(
    store: &dyn Store,
    now: u64,
    upstream: &str,
    session: &str,
    origins: &[Origin],
) -> Result<(), UpdateError> {
    let k = owner(upstream, session);
    if origins.is_empty() || k.len() > MAX_OWNER_BYTES {
        return Ok(());
    }
    let new: Vec<Entry> = origins
        .iter()
        .map(|o| Entry {
            k: k.clone(),
            m: o.method.clone(),
            id: o.id_raw.clone(),
            p: kept_params(&o.params),
            modern: o.modern,
            at: now,
        })
        .collect();
    update(store, now, &k, |entries| {
        entries.retain(|e| !(e.k == k && new.iter().any(|n| n.id == e.id)));
        entries.extend(new.iter().cloned());
    })
}

/// The requests of `session` still waiting for an answer, for a resumed
/// stream.
pub fn recall(store: &dyn Store, now: u64, upstream: &str, session: &str) -> Vec<Origin> {
    let k = owner(upstream, session);
    entries(store.get(&slot(&k)).as_ref().map(|(b, _)| b.as_slice()))
        .into_iter()
        .filter(|e| e.k == k && e.live(now))
        .map(|e| Origin {
            method: e.m,
            id_raw: e.id,
            params: e
                .p
                .and_then(|p| Value::from_json_str(&p).ok())
                .unwrap_or(Value::Undefined),
            modern: e.modern,
        })
        .collect()
}

/// Forget requests that have been answered (ids as written).
pub fn forget(
    store: &dyn Store,
    now: u64,
    upstream: &str,
    session: &str,
    ids: &[String],
) -> Result<(), UpdateError> {
    if ids.is_empty() {
        return Ok(());
    }
    let k = owner(upstream, session);
    update(store, now, &k, |entries| {
        entries.retain(|e| !(e.k == k && ids.contains(&e.id)));
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::store::MemoryStore as Mem;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn origin(method: &str, id: &str) -> Origin {
        Origin {
            method: method.into(),
            id_raw: id.into(),
            params: Value::from_json_str(r#"{"name":"echo","arguments":{"a":1}}"#).unwrap(),
            modern: false,
        }
    }

    #[test]
    fn unanswered_requests_are_recalled_by_their_session_only() {
        let s = Mem::default();
        remember(
            &s,
            1000,
            "up",
            "s1",
            &[origin("tools/list", "7"), origin("tools/call", "\"x\"")],
        )
        .unwrap();
        let back = recall(&s, 2000, "up", "s1");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].method, "tools/list");
        assert_eq!(back[1].id_raw, "\"x\"");
        assert_eq!(back[1].params, origin("tools/call", "1").params);
        assert!(recall(&s, 2000, "up", "s2").is_empty());
        assert!(recall(&s, 2000, "other", "s1").is_empty());
    }

    #[test]
    fn answered_requests_are_forgotten_and_old_ones_expire() {
        let s = Mem::default();
        remember(
            &s,
            0,
            "up",
            "s",
            &[origin("tools/list", "1"), origin("tools/list", "2")],
        )
        .unwrap();
        forget(&s, 10, "up", "s", &["1".to_string()]).unwrap();
        let ids: Vec<String> = recall(&s, 10, "up", "s")
            .into_iter()
            .map(|o| o.id_raw)
            .collect();
        assert_eq!(ids, ["2"]);
        assert!(recall(&s, TTL_MS + 1, "up", "s").is_empty());
    }

    #[test]
    fn a_slot_keeps_the_newest_requests() {
        let s = Mem::default();
        for i in 0..(PER_SLOT + 5) {
            remember(
                &s,
                i as u64,
                "up",
                "s",
                &[origin("tools/call", &i.to_string())],
            )
            .unwrap();
        }
        let back = recall(&s, 100, "up", "s");
        assert_eq!(back.len(), PER_SLOT);
        assert_eq!(back[0].id_raw, "5");
    }

    #[test]
    fn large_requests_keep_their_subject_and_a_slot_its_byte_bound() {
        let s = Mem::default();
        let big = "x".repeat(MAX_PARAMS_BYTES);
        let mut o = origin("tools/call", "1");
        o.params = Value::from_json_str(&format!(
            r#"{{"name":"echo","arguments":{{"text":"{big}"}}}}"#
        ))
        .unwrap();
        remember(&s, 0, "up", "s", &[o]).unwrap();
        let back = recall(&s, 1, "up", "s");
        assert_eq!(
            back[0].params,
            Value::from_json_str(r#"{"name":"echo"}"#).unwrap()
        );
        // Many requests of near the largest kept size: the slot stays bounded.
        let near = "y".repeat(MAX_PARAMS_BYTES - 100);
        for i in 0..20 {
            let mut o = origin("tools/call", &i.to_string());
            o.params = Value::from_json_str(&format!(r#"{{"name":"echo","a":"{near}"}}"#)).unwrap();
            remember(&s, 2, "up", "s", &[o]).unwrap();
        }
        let (bytes, _) = s.get(&slot(&owner("up", "s"))).unwrap();
        assert!(bytes.len() <= MAX_SLOT_BYTES, "{}", bytes.len());
        assert_eq!(recall(&s, 3, "up", "s").last().unwrap().id_raw, "19");
        // An absurd session id is not kept.
        remember(&s, 4, "up", &"z".repeat(1000), &[origin("tools/list", "1")]).unwrap();
        assert!(recall(&s, 5, "up", &"z".repeat(1000)).is_empty());
    }

    #[test]
    fn a_request_remembered_twice_is_kept_once() {
        let s = Mem::default();
        remember(&s, 0, "up", "s", &[origin("tools/list", "1")]).unwrap();
        remember(&s, 5, "up", "s", &[origin("tools/list", "1")]).unwrap();
        assert_eq!(recall(&s, 6, "up", "s").len(), 1);
    }
}
