//! List results (tools, prompts, resources, templates) filtered per
//! caller: each item decided as the request that would use it, verdicts of
//! a deterministic policy reused from the [`ListingMemo`](crate::pipeline::memo::ListingMemo),
//! and a list that may differ per caller marked private.

use super::exchange::{Output, Read, ResponseStream, Verdict};
use crate::config::settings::Mode;
use crate::mcp::jsonrpc;
use crate::mcp::keys::key;
use crate::pipeline::actions::Decided;
use crate::pipeline::memo::{hash_str, hash_value, HashWrite};
use crate::pipeline::plugin::Plugin;
use crate::pipeline::subject;
use crate::policy::input::{self, Origin};
use regorus::Value;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

impl ResponseStream {
    /// A list result: filtered, marked private when it may differ per
    /// caller, recorded. `Some`: the replacement text (not in audit mode).
    pub(super) fn filter_result(
        &mut self,
        plugin: &mut Plugin,
        orig: &Origin,
        raw: &[u8],
        read: &mut Read,
        out: &mut Output,
    ) -> Option<Verdict> {
        read.json(raw)?;
        let annotated = read.annotated.take();
        let filtered = read.message.as_mut()?;
        let hidden = self.filter_list(plugin, orig, filtered, annotated.as_deref());
        // A list that may differ per caller must not be cached
        // across callers (2026-07-28 `cacheScope`).
        let cacheable = orig.modern
            || filtered
                .get("result")
                .is_some_and(|r| r.get("cacheScope").is_some() || r.get("ttlMs").is_some());
        let private = cacheable && set_private(filtered);
        let d = self.list_decided(plugin, orig, &hidden);
        out.decided.push(d);
        if (!hidden.is_empty() || private) && plugin.settings.mode != Mode::Audit {
            if let Ok(s) = serde_json::to_string(filtered) {
                return Some(Verdict::Replace(s));
            }
        }
        None
    }

    /// Remove the items this caller may not use from a list result (in
    /// place); returns their names.
    fn filter_list(
        &mut self,
        plugin: &mut Plugin,
        origin: &Origin,
        message: &mut serde_json::Value,
        annotated: Option<&[serde_json::Value]>,
    ) -> Vec<String> {
        let Some(member) = subject::list_member(&origin.method) else {
            return Vec::new();
        };
        let shared = self.shared();
        let Some(serde_json::Value::Array(items)) = message
            .get_mut("result")
            .and_then(|r| r.get_mut(member))
            .map(std::mem::take)
        else {
            return Vec::new();
        };
        let mut hidden = Vec::new();
        let mut kept = Vec::with_capacity(items.len());
        // Definitions are built as policy values only for a policy that
        // reads them (`Needs::definition`): the conversion costs more than
        // the evaluation.
        let definitions = self.watch.definitions;
        let learnt: HashMap<&str, &serde_json::Value> = annotated
            .filter(|_| definitions)
            .map(|defs| {
                defs.iter()
                    .filter_map(|d| Some((d.get("name")?.as_str()?, d)))
                    .collect()
            })
            .unwrap_or_default();
        // A deterministic policy's verdict on an item is reused. The key is
        // a hash of everything the item's listing input is made from (see
        // `input::for_listing`): the parts shared by every item, hashed
        // once here, then each item's own. On a hit the input is not built.
        let memo = (!plugin.needs.volatile && !plugin.policy.recording())
            .then(|| self.list_hashers(plugin, origin, &shared));
        for item in items {
            let name = item.get("name").and_then(|n| n.as_str()).unwrap_or("");
            // The definition as the policy gets it: with its pin and
            // poisoning facts when learnt, else as listed.
            let def_json =
                definitions.then(|| match subject::is_tools_list(Some(&origin.method)) {
                    true => learnt.get(name).copied().unwrap_or(&item),
                    false => &item,
                });
            let key = memo.as_ref().map(|list| item_key(list, &item, def_json));
            let listed = match key.and_then(|k| plugin.listing.get(k)) {
                Some(listed) => listed,
                None => {
                    let (listed, failed) =
                        self.item_verdict(plugin, origin, &shared, &item, def_json);
                    if let (Some(k), false) = (key, failed) {
                        plugin.listing.put(k, listed);
                    }
                    listed
                }
            };
            if listed {
                kept.push(item);
            } else {
                hidden.push(listed_name(&origin.method, &item).to_string());
            }
        }
        if let Some(r) = message.get_mut("result").and_then(|r| r.as_object_mut()) {
            r.insert(member.to_string(), serde_json::Value::Array(kept));
        }
        hidden
    }

    /// The memo's two hashers, fed with what every item's listing input
    /// shares.
    fn list_hashers(
        &self,
        plugin: &mut Plugin,
        origin: &Origin,
        shared: &[(&'static str, Value)],
    ) -> (DefaultHasher, DefaultHasher) {
        let (mut a, mut b) = plugin.listing.hashers();
        let version = origin.params[&key("_meta")][&key(jsonrpc::META_PROTOCOL_VERSION)]
            .as_string()
            .ok()
            .map(|v| v.to_string());
        for h in [&mut a, &mut b] {
            for (k, v) in shared {
                h.write(k.as_bytes());
                hash_value(v, h);
            }
            hash_str(h, Some(&origin.method));
            hash_str(h, version.as_deref());
            hash_str(h, self.watch.routing.protocol_version.as_deref());
            hash_str(h, self.watch.routing.session_id.as_deref());
        }
        (a, b)
    }

    /// The policy's verdict on one item: `(listed, the evaluation
    /// failed)` (a failed one is not memoised).
    fn item_verdict(
        &self,
        plugin: &mut Plugin,
        origin: &Origin,
        shared: &[(&'static str, Value)],
        item: &serde_json::Value,
        def_json: Option<&serde_json::Value>,
    ) -> (bool, bool) {
        let def = def_json
            .map(|d| crate::policy::engine::json_to_value(d).unwrap_or(Value::Undefined))
            .unwrap_or(Value::Undefined);
        let (method, subject) = listing_subject(origin.method.as_str(), item, def);
        let input = input::for_listing(shared, &self.watch.routing, origin, method, subject);
        let o = plugin.evaluate_untimed(input);
        let listed = match o.result.visible {
            Some(v) if !o.failed() => v,
            _ => o.allowed,
        };
        (listed, o.failed())
    }

    fn list_decided(&mut self, plugin: &mut Plugin, origin: &Origin, hidden: &[String]) -> Decided {
        let mut d = Decided::new("response", origin.method.clone(), true, Vec::new());
        d.record.server_to_client = true;
        d.record.hidden = hidden.to_vec();
        self.stamp(plugin, d)
    }
}

/// One item's memo key: the list's hashers fed with the item's own parts.
fn item_key(
    list: &(DefaultHasher, DefaultHasher),
    item: &serde_json::Value,
    def_json: Option<&serde_json::Value>,
) -> u128 {
    let text = |k: &str| item.get(k).and_then(|n| n.as_str());
    let (mut a, mut b) = list.clone();
    for h in [&mut a, &mut b] {
        hash_str(h, text("name"));
        hash_str(h, text("uri"));
        hash_str(h, text("uriTemplate"));
        match def_json {
            Some(d) => {
                h.write_u8(1);
                let _ = serde_json::to_writer(HashWrite(h), d);
            }
            None => h.write_u8(0),
        }
    }
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// The request an item of a list result is decided as, and the subject
/// member of its `input.mcp` (`tool`, `prompt`, `resource`).
fn listing_subject(
    list_method: &str,
    item: &serde_json::Value,
    definition: Value,
) -> (&'static str, (&'static str, Value)) {
    let mut o = std::collections::BTreeMap::new();
    let named = Value::from(listed_name(list_method, item));
    let (method, member, by_name) = subject::listing_request(list_method);
    if by_name {
        o.insert(key("name"), named);
    } else {
        o.insert(key("uri"), named);
        if let Some(t) = item.get("uriTemplate").and_then(|n| n.as_str()) {
            o.insert(key("template"), Value::from(t));
        }
    }
    if definition != Value::Undefined {
        o.insert(key("definition"), definition);
    }
    (method, (member, Value::from(o)))
}

/// What an item of a list result is named by: a tool's or prompt's `name`,
/// a resource's `uri` (a template's `uriTemplate`).
fn listed_name<'a>(list_method: &str, item: &'a serde_json::Value) -> &'a str {
    let text = |k: &str| item.get(k).and_then(|n| n.as_str());
    match subject::listing_request(list_method) {
        (_, _, true) => text("name"),
        _ => text("uri").or(text("uriTemplate")),
    }
    .unwrap_or("")
}

/// Mark a (2026-07-28) list result as private to this caller: returns
/// whether anything changed.
fn set_private(message: &mut serde_json::Value) -> bool {
    let Some(r) = message.get_mut("result").and_then(|r| r.as_object_mut()) else {
        return false;
    };
    if r.get("cacheScope").and_then(|s| s.as_str()) == Some("private") {
        return false;
    }
    r.insert("cacheScope".into(), serde_json::Value::from("private"));
    true
}
