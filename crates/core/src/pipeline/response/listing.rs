//! List results (tools, prompts, resources, templates) filtered per
//! caller: each item decided as the request that would use it, verdicts of
//! a deterministic policy reused from the [`ListingMemo`](crate::pipeline::memo::ListingMemo),
//! and a list that may differ per caller marked private.

use super::exchange::{Output, Read, ResponseStream, Verdict};
use super::splice::{ListSpans, Names};
use crate::config::settings::Mode;
use crate::mcp::jsonrpc;
use crate::mcp::keys::key;
use crate::pipeline::actions::Decided;
use crate::pipeline::memo::{hash_str, hash_value, HashWrite};
use crate::pipeline::plugin::Plugin;
use crate::pipeline::subject;
use crate::policy::input::{self, Origin};
use regorus::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

impl ResponseStream {
    /// A list result: filtered, marked private when it may differ per
    /// caller, recorded. `Some`: the replacement text (not in audit mode).
    /// The items are found in the text as the server wrote it; those this
    /// caller may not see are cut out of it, the rest is forwarded byte
    /// for byte (`splice.rs`). A shape that reading leaves aside is read
    /// whole and re-serialised. `spans`: the items already found (the
    /// stream's one-pass reading of a plain answer).
    pub(super) fn filter_result(
        &mut self,
        plugin: &mut Plugin,
        orig: &Origin,
        raw: &[u8],
        spans: Option<ListSpans<'_>>,
        read: &mut Read,
        out: &mut Output,
    ) -> Option<Verdict> {
        let member = subject::list_member(&orig.method)?;
        let text = std::str::from_utf8(raw).ok();
        let spans = match spans {
            Some(s) => Some(s),
            None => text.and_then(|t| ListSpans::read(t, member)),
        };
        let Some((text, mut spans)) = text.zip(spans) else {
            return self.filter_reserialised(plugin, orig, raw, read, out);
        };
        let definitions = self.watch.definitions;
        let names = std::mem::take(&mut spans.names);
        let items: Vec<Item<'_>> = spans
            .items
            .iter()
            .zip(names)
            .map(|(r, n)| Item::of_raw(r, n, definitions))
            .collect();
        let annotated = read.annotated.take();
        let (kept, eval_us) = self.decide_items(plugin, orig, &items, annotated.as_deref());
        let hidden = hidden_names(&orig.method, &items, &kept);
        // A list that may differ per caller must not be cached
        // across callers (2026-07-28 `cacheScope`).
        let private = (orig.modern || spans.has_cache_hints()) && spans.needs_private();
        let d = self.list_decided(plugin, orig, &hidden, eval_us);
        out.decided.push(d);
        if (hidden.is_empty() && !private) || plugin.settings.mode == Mode::Audit {
            return None;
        }
        let spliced = spans.splice(text, &kept, private).or_else(|| {
            let mut v = serde_json::from_str::<serde_json::Value>(text).ok()?;
            rebuild(&mut v, member, &kept, private)?;
            serde_json::to_string(&v).ok()
        });
        // Fail closed: a list that cannot be edited is not forwarded whole.
        Some(spliced.map_or(Verdict::Drop, Verdict::Replace))
    }

    /// [`Self::filter_result`] on the message read whole: the kept items
    /// and the result re-serialised.
    fn filter_reserialised(
        &mut self,
        plugin: &mut Plugin,
        orig: &Origin,
        raw: &[u8],
        read: &mut Read,
        out: &mut Output,
    ) -> Option<Verdict> {
        let member = subject::list_member(&orig.method)?;
        read.json(raw)?;
        let annotated = read.annotated.take();
        let filtered = read.message.as_mut()?;
        let values = match filtered.get("result").and_then(|r| r.get(member)) {
            Some(serde_json::Value::Array(values)) => values.as_slice(),
            _ => &[],
        };
        let definitions = self.watch.definitions;
        let items: Vec<Item<'_>> = values
            .iter()
            .map(|v| Item::of_value(v, definitions))
            .collect();
        let (kept, eval_us) = self.decide_items(plugin, orig, &items, annotated.as_deref());
        let hidden = hidden_names(&orig.method, &items, &kept);
        drop(items);
        let cacheable = orig.modern
            || filtered
                .get("result")
                .is_some_and(|r| r.get("cacheScope").is_some() || r.get("ttlMs").is_some());
        let private = cacheable && needs_private(filtered);
        if !hidden.is_empty() || private {
            rebuild(filtered, member, &kept, private);
        }
        let d = self.list_decided(plugin, orig, &hidden, eval_us);
        out.decided.push(d);
        if (!hidden.is_empty() || private) && plugin.settings.mode != Mode::Audit {
            if let Ok(s) = serde_json::to_string(filtered) {
                return Some(Verdict::Replace(s));
            }
        }
        None
    }

    /// Whether each item is listed for this caller, and how long the
    /// evaluations took (microseconds; `None` when nothing was evaluated:
    /// every verdict was reused, or there were no items):
    /// the list is timed as a whole, not item by item, so the host's clock
    /// is read twice per list at most.
    fn decide_items(
        &mut self,
        plugin: &mut Plugin,
        origin: &Origin,
        items: &[Item<'_>],
        annotated: Option<&[serde_json::Value]>,
    ) -> (Vec<bool>, Option<u64>) {
        let shared = self.shared();
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
        let tools = subject::is_tools_list(Some(&origin.method));
        let mut kept = Vec::with_capacity(items.len());
        let mut started: Option<u64> = None;
        for item in items {
            // The definition as the policy gets it: with its pin and
            // poisoning facts when learnt, else as listed.
            let own = item.value.as_deref();
            let def_json = match (definitions, tools) {
                (false, _) => None,
                (true, true) => learnt
                    .get(item.name.as_deref().unwrap_or(""))
                    .copied()
                    .or(own),
                (true, false) => own,
            };
            let key = memo.as_ref().map(|list| item_key(list, item, def_json));
            let listed = match key.and_then(|k| plugin.listing.get(k)) {
                Some(listed) => listed,
                None => {
                    if started.is_none() {
                        started = Some((plugin.clock)());
                    }
                    let (listed, failed) =
                        self.item_verdict(plugin, origin, &shared, item, def_json);
                    if let (Some(k), false) = (key, failed) {
                        plugin.listing.put(k, listed);
                    }
                    listed
                }
            };
            kept.push(listed);
        }
        let eval_us = started.map(|t| (plugin.clock)().saturating_sub(t));
        (kept, eval_us)
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
        item: &Item<'_>,
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

    fn list_decided(
        &mut self,
        plugin: &mut Plugin,
        origin: &Origin,
        hidden: &[String],
        eval_us: Option<u64>,
    ) -> Decided {
        let mut d = Decided::new("response", origin.method.clone(), true, Vec::new());
        d.record.server_to_client = true;
        d.record.eval_us = eval_us.unwrap_or(0);
        d.record.nothing_evaluated = eval_us.is_none();
        d.record.hidden = hidden.to_vec();
        self.stamp(plugin, d)
    }
}

/// One item of a list result as the policy and the audit event see it:
/// its names, and the item itself when the policy reads definitions.
struct Item<'a> {
    name: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
    uri_template: Option<Cow<'a, str>>,
    value: Option<Cow<'a, serde_json::Value>>,
}

impl<'a> Item<'a> {
    /// An item as the server wrote it, with the names the reading found in
    /// it; `whole`: read the whole item too.
    fn of_raw(raw: &'a str, names: Names<'a>, whole: bool) -> Item<'a> {
        Item {
            name: names.name,
            uri: names.uri,
            uri_template: names.uri_template,
            value: whole.then(|| {
                Cow::Owned(serde_json::from_str::<serde_json::Value>(raw).unwrap_or_default())
            }),
        }
    }

    fn of_value(v: &'a serde_json::Value, whole: bool) -> Item<'a> {
        let text = |k: &str| v.get(k).and_then(|n| n.as_str()).map(Cow::Borrowed);
        Item {
            name: text("name"),
            uri: text("uri"),
            uri_template: text("uriTemplate"),
            value: whole.then_some(Cow::Borrowed(v)),
        }
    }

    /// What the item is named by: a tool's or prompt's `name`, a
    /// resource's `uri` (a template's `uriTemplate`).
    fn listed_name(&self, list_method: &str) -> &str {
        match subject::listing_request(list_method) {
            (_, _, true) => self.name.as_deref(),
            _ => self.uri.as_deref().or(self.uri_template.as_deref()),
        }
        .unwrap_or("")
    }
}

/// The names of the items not kept.
fn hidden_names(list_method: &str, items: &[Item<'_>], kept: &[bool]) -> Vec<String> {
    items
        .iter()
        .zip(kept)
        .filter(|(_, k)| !**k)
        .map(|(i, _)| i.listed_name(list_method).to_string())
        .collect()
}

/// One item's memo key: the list's hashers fed with the item's own parts.
fn item_key(
    list: &(DefaultHasher, DefaultHasher),
    item: &Item<'_>,
    def_json: Option<&serde_json::Value>,
) -> u128 {
    let (mut a, mut b) = list.clone();
    for h in [&mut a, &mut b] {
        hash_str(h, item.name.as_deref());
        hash_str(h, item.uri.as_deref());
        hash_str(h, item.uri_template.as_deref());
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
    item: &Item<'_>,
    definition: Value,
) -> (&'static str, (&'static str, Value)) {
    let mut o = std::collections::BTreeMap::new();
    let named = Value::from(item.listed_name(list_method));
    let (method, member, by_name) = subject::listing_request(list_method);
    if by_name {
        o.insert(key("name"), named);
    } else {
        o.insert(key("uri"), named);
        if let Some(t) = item.uri_template.as_deref() {
            o.insert(key("template"), Value::from(t));
        }
    }
    if definition != Value::Undefined {
        o.insert(key("definition"), definition);
    }
    (method, (member, Value::from(o)))
}

/// The result's items reduced to those `kept`, and its `cacheScope` set to
/// `"private"` when `private`. `None`: the message has no result object.
fn rebuild(
    message: &mut serde_json::Value,
    member: &str,
    kept: &[bool],
    private: bool,
) -> Option<()> {
    let r = message.get_mut("result")?.as_object_mut()?;
    if let Some(serde_json::Value::Array(items)) = r.get_mut(member) {
        let mut flags = kept.iter();
        items.retain(|_| flags.next().copied().unwrap_or(false));
    }
    if private {
        r.insert("cacheScope".into(), serde_json::Value::from("private"));
    }
    Some(())
}

/// A (2026-07-28) list result is not yet marked private to this caller.
fn needs_private(message: &serde_json::Value) -> bool {
    message
        .get("result")
        .and_then(|r| r.as_object())
        .is_some_and(|r| r.get("cacheScope").and_then(|s| s.as_str()) != Some("private"))
}
