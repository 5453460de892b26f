//! A list answer edited in its own bytes: where its items are (one reading
//! of the text, the items kept as borrowed raw JSON), and the text with
//! some items taken out and the result marked private. What is kept is
//! byte for byte what the server sent: the items, their separators, the
//! whitespace, every other member.
//!
//! A text this reading does not accept (a `result` that is not an object,
//! a member present twice in it, no items array, an item that is not an
//! object with members, an item key written with escapes) is left to the
//! re-serialising path of `listing.rs`, which reads it as serde_json does.

use regorus::Value;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// The parts of a list answer an edit touches, as byte ranges of its text.
#[derive(Debug)]
pub(super) struct ListSpans<'a> {
    /// The items, each as the server wrote it.
    pub(super) items: Vec<&'a str>,
    /// Each item's names, read in the same pass (one per item).
    pub(super) names: Vec<Names<'a>>,
    /// Just after the items array's `]` (`None`: no items).
    array_end: Option<usize>,
    /// Each item's range.
    spans: Vec<Range<usize>>,
    /// The value of `result.cacheScope`, and whether it is `"private"`.
    cache_scope: Option<(Range<usize>, bool)>,
    /// `result.ttlMs` is present.
    ttl: bool,
}

impl<'a> ListSpans<'a> {
    /// Read `text` (one JSON-RPC message) for the items of `result.<member>`.
    /// `None`: a shape this reading leaves to the re-serialising path.
    pub(super) fn read(text: &'a str, member: &str) -> Option<ListSpans<'a>> {
        let top = Self::read_top(text, member)?;
        Self::from_found(text, top.found?)
    }

    /// [`Self::read`] for a whole answer in one pass: the items and the
    /// envelope a response is read by. `Some` only for the plain shape of
    /// a JSON-RPC success answer, which `jsonrpc::parse_shallow` would read
    /// as a response with this id and nothing else: `jsonrpc` exactly
    /// `"2.0"`, an `id`, a `result` holding the items; no `method`,
    /// `params` or `error`; no member of the envelope twice. Anything else
    /// is `None`, left to the full reading (which says what is wrong). The
    /// id comes as written and as a policy value.
    pub(super) fn read_answer(
        text: &'a str,
        member: &str,
    ) -> Option<(ListSpans<'a>, &'a RawValue, Value)> {
        let top = Self::read_top(text, member)?;
        if top.other || top.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
            return None;
        }
        let raw = top.id?;
        let id = crate::mcp::jsonrpc::id_value(raw)?;
        Some((Self::from_found(text, top.found?)?, raw, id))
    }

    fn read_top(text: &'a str, member: &str) -> Option<Top<'a>> {
        let mut de = serde_json::Deserializer::from_str(text);
        let top = TopSeed { member }.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(top)
    }

    fn from_found(text: &'a str, found: Found<'a>) -> Option<ListSpans<'a>> {
        let mut spans = Vec::with_capacity(found.items.len());
        let mut items = Vec::with_capacity(found.items.len());
        let mut names = Vec::with_capacity(found.items.len());
        for i in found.items {
            let s = i.span(text)?;
            items.push(text.get(s.clone())?);
            spans.push(s);
            names.push(i.names);
        }
        // The array's `]`: after the last item and spacing. (An empty
        // array has no position here: marking it private is left to the
        // re-serialising path.)
        let array_end = spans.last().and_then(|last| {
            let rest = text.get(last.end..)?;
            let close = last.end + (rest.len() - rest.trim_start_matches(JSON_SPACE).len());
            (text.as_bytes().get(close) == Some(&b']')).then_some(close + 1)
        });
        let cache_scope = match found.cache_scope {
            Some(v) => {
                let private =
                    serde_json::from_str::<Cow<'_, str>>(v.get()).is_ok_and(|s| s == "private");
                Some((span(text, v.get())?, private))
            }
            None => None,
        };
        Some(ListSpans {
            items,
            names,
            array_end,
            spans,
            cache_scope,
            ttl: found.ttl,
        })
    }

    /// The result may differ per caller when cached: it has a
    /// `cacheScope` or a `ttlMs` (2026-07-28 caching hints).
    pub(super) fn has_cache_hints(&self) -> bool {
        self.cache_scope.is_some() || self.ttl
    }

    /// Marking the result private changes it (it is not already).
    pub(super) fn needs_private(&self) -> bool {
        !matches!(self.cache_scope, Some((_, true)))
    }

    /// `text` without the items not `kept` (one flag per item, in order),
    /// and with `result.cacheScope` set to `"private"` when `private`.
    /// `None`: the flags do not match the items, or there are no items
    /// (nothing to cut, and no place known for a new `cacheScope`).
    pub(super) fn splice(&self, text: &str, kept: &[bool], private: bool) -> Option<String> {
        let (first, last) = (self.spans.first()?, self.spans.last()?);
        let array_end = self.array_end?;
        if kept.len() != self.spans.len() {
            return None;
        }
        let mut out = String::with_capacity(text.len().saturating_add(32));
        let mut at = 0;
        // An existing cacheScope is before or after the array.
        let scope = self
            .cache_scope
            .as_ref()
            .filter(|_| private && self.needs_private())
            .map(|(r, _)| r.clone());
        if let Some(r) = scope.as_ref().filter(|r| r.end <= first.start) {
            out.push_str(text.get(at..r.start)?);
            out.push_str("\"private\"");
            at = r.end;
        }
        // What precedes the first item, then each kept item with the
        // separator the server wrote before it (none before the first one
        // kept), then what follows the last item.
        out.push_str(text.get(at..first.start)?);
        let mut any = false;
        let mut prev_end = first.start;
        for (s, keep) in self.spans.iter().zip(kept) {
            if *keep {
                if any {
                    out.push_str(text.get(prev_end..s.start)?);
                }
                out.push_str(text.get(s.clone())?);
                any = true;
            }
            prev_end = s.end;
        }
        at = last.end;
        if private && self.cache_scope.is_none() {
            // Right after the array's `]`: whatever follows (`,` or `}`)
            // stays valid.
            out.push_str(text.get(at..array_end)?);
            out.push_str(",\"cacheScope\":\"private\"");
            at = array_end;
        }
        if let Some(r) = scope.filter(|r| r.start >= array_end) {
            out.push_str(text.get(at..r.start)?);
            out.push_str("\"private\"");
            at = r.end;
        }
        out.push_str(text.get(at..)?);
        Some(out)
    }
}

/// Whitespace between JSON tokens.
const JSON_SPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// The range `part` (a slice of `text`) covers in `text`.
fn span(text: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= text.len()).then_some(start..end)
}

/// What the reading finds in `result`.
struct Found<'a> {
    items: Vec<RawItem<'a>>,
    cache_scope: Option<&'a RawValue>,
    ttl: bool,
}

fn fail<E: de::Error>(what: &str) -> E {
    E::custom(format!("not a list answer this reading edits: {what}"))
}

/// What the reading finds in the message: `result`'s parts, and the
/// envelope's members a response is read by.
struct Top<'a> {
    found: Option<Found<'a>>,
    jsonrpc: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    /// `method`, `params` or `error` is present: not a plain answer.
    other: bool,
}

/// The message: its `result` (present once), and its envelope (each member
/// of it present once, as the full reading requires).
struct TopSeed<'m> {
    member: &'m str,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut top = Top {
            found: None,
            jsonrpc: None,
            id: None,
            other: false,
        };
        let mut result = false;
        let once = |seen: bool, what: &str| if seen { Err(fail(what)) } else { Ok(()) };
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            match k.as_ref() {
                "result" => {
                    once(result, "result twice")?;
                    result = true;
                    top.found = map.next_value_seed(ResultSeed {
                        member: self.member,
                    })?;
                }
                "jsonrpc" => {
                    once(top.jsonrpc.is_some(), "jsonrpc twice")?;
                    top.jsonrpc = Some(map.next_value()?);
                }
                "id" => {
                    once(top.id.is_some(), "id twice")?;
                    top.id = Some(map.next_value()?);
                }
                other => {
                    top.other |= matches!(other, "method" | "params" | "error");
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

/// The result object: the items array, `cacheScope`, `ttlMs`; every
/// member present once.
struct ResultSeed<'m> {
    member: &'m str,
}

impl<'de> DeserializeSeed<'de> for ResultSeed<'_> {
    type Value = Option<Found<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_> {
    type Value = Option<Found<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        let mut items: Option<Vec<RawItem<'de>>> = None;
        let mut cache_scope = None;
        let mut ttl = false;
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            if keys.contains(&k) {
                return Err(fail("a result member twice"));
            }
            if k == self.member {
                items = Some(map.next_value_seed(Items)?);
            } else if k == "cacheScope" {
                cache_scope = Some(map.next_value::<&'de RawValue>()?);
            } else {
                if k == "ttlMs" {
                    ttl = true;
                }
                map.next_value::<IgnoredAny>()?;
            }
            keys.push(k);
        }
        let Some(items) = items else {
            return Ok(None);
        };
        Ok(Some(Found {
            items,
            cache_scope,
            ttl,
        }))
    }
}

/// An item's names: its `name` (tools, prompts), `uri` (resources),
/// `uriTemplate` (resource templates), read as serde_json reads them: a
/// member that is not a string is no name, the last of a repeated member
/// counts.
#[derive(Debug, Default)]
pub(super) struct Names<'a> {
    pub(super) name: Option<Cow<'a, str>>,
    pub(super) uri: Option<Cow<'a, str>>,
    pub(super) uri_template: Option<Cow<'a, str>>,
}

/// One item of the array, read once: its names, and its first key and
/// last value as borrowed from the text, from which its bytes are found.
struct RawItem<'a> {
    first_key: &'a str,
    last_value: &'a str,
    names: Names<'a>,
}

impl RawItem<'_> {
    /// The item's range in `text`: from the `{` before its first key's
    /// opening quote to the `}` after its last value (only spacing between).
    fn span(&self, text: &str) -> Option<Range<usize>> {
        let quote = span(text, self.first_key)?.start.checked_sub(1)?;
        let before = text.get(..quote)?;
        let open = before.trim_end_matches(JSON_SPACE).len().checked_sub(1)?;
        let value = span(text, self.last_value)?;
        let after = text.get(value.end..)?;
        let close = value.end + (after.len() - after.trim_start_matches(JSON_SPACE).len());
        let bytes = text.as_bytes();
        (bytes.get(open) == Some(&b'{')
            && bytes.get(quote) == Some(&b'"')
            && bytes.get(close) == Some(&b'}'))
        .then_some(open..close + 1)
    }
}

/// The elements of an array, each an object with at least one member whose
/// keys are written without escapes (anything else fails the reading, and
/// the answer takes the re-serialising path).
struct Items;

impl<'de> DeserializeSeed<'de> for Items {
    type Value = Vec<RawItem<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items {
    type Value = Vec<RawItem<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(i) = seq.next_element_seed(ItemSeed)? {
            items.push(i);
        }
        Ok(items)
    }
}

/// One item: each member's value kept raw, the names read from theirs.
struct ItemSeed;

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = RawItem<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = RawItem<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut first_key = None;
        let mut last_value = None;
        let mut names = Names::default();
        while let Some(k) = map.next_key::<&'de str>()? {
            let v = map.next_value::<&'de RawValue>()?;
            // Borrowed from the text when written without escapes (serde's
            // `Cow` always allocates), else decoded.
            let name = || match serde_json::from_str::<&'de str>(v.get()) {
                Ok(s) => Some(Cow::Borrowed(s)),
                Err(_) => serde_json::from_str::<String>(v.get()).ok().map(Cow::Owned),
            };
            match k {
                "name" => names.name = name(),
                "uri" => names.uri = name(),
                "uriTemplate" => names.uri_template = name(),
                _ => {}
            }
            first_key.get_or_insert(k);
            last_value = Some(v.get());
        }
        match (first_key, last_value) {
            (Some(first_key), Some(last_value)) => Ok(RawItem {
                first_key,
                last_value,
                names,
            }),
            _ => Err(fail("an empty item")),
        }
    }
}
