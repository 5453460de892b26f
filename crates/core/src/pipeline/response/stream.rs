//! The framing of what the server sends: an SSE event's data decided and
//! the event rebuilt when its message changes; a JSON text that is one
//! message or a batch of them; a text that cannot be read.

use super::exchange::{Framing, Output, ResponseStream, Verdict};
use super::splice::ListSpans;
use crate::config::settings::Mode;
use crate::mcp::jsonrpc::{self, Body, Kind, Message};
use crate::mcp::sse;
use crate::pipeline::plugin::Plugin;
use crate::pipeline::replies;
use crate::pipeline::subject;
use crate::state::store::Store;
use regorus::Value;

impl ResponseStream {
    /// One SSE block: a complete event (or a comment).
    pub(super) fn sse_block(
        &mut self,
        plugin: &mut Plugin,
        b: sse::Block,
        store: Option<(&dyn Store, u64)>,
        out: &mut Output,
    ) {
        let Some(event) = &b.event else {
            // Comments (keep-alives), a lone retry: nothing to decide.
            out.bytes.extend_from_slice(&b.raw);
            return;
        };
        if event.data.trim().is_empty() {
            // A priming event (an id for resumption, no message).
            out.bytes.extend_from_slice(&b.raw);
            return;
        }
        match self.decide_text(plugin, event.data.as_bytes(), store, out) {
            Verdict::Keep => out.bytes.extend_from_slice(&b.raw),
            Verdict::Replace(data) => {
                let mut e = String::new();
                if let Some(name) = &event.event {
                    e.push_str(&format!("event: {name}\n"));
                }
                if let Some(id) = &event.id {
                    e.push_str(&format!("id: {id}\n"));
                }
                if let Some(r) = event.retry {
                    e.push_str(&format!("retry: {r}\n"));
                }
                // A spliced message keeps the server's line breaks: one
                // `data:` line each.
                for line in data.split('\n') {
                    e.push_str(&format!("data: {line}\n"));
                }
                e.push('\n');
                out.bytes.extend_from_slice(e.as_bytes());
            }
            Verdict::Drop => {}
        }
    }

    /// One JSON text: a message, or a batch of them.
    pub(super) fn decide_text(
        &mut self,
        plugin: &mut Plugin,
        text: &[u8],
        store: Option<(&dyn Store, u64)>,
        out: &mut Output,
    ) -> Verdict {
        // The answer to a list request, when nothing else reads it: one
        // pass finds the envelope and the items.
        if !self.watch.evaluate {
            if let Some(v) = self.list_answer(plugin, text, store, out) {
                return v;
            }
        }
        // A response is read as a policy value only when the policy rules on
        // responses; list filtering reads the result as JSON.
        let parse = if self.watch.evaluate {
            jsonrpc::parse
        } else {
            jsonrpc::parse_shallow
        };
        let parsed = match parse(text) {
            Ok(p) => p,
            Err(e) => {
                let reason = format!("the server sent an unreadable message: {e}");
                return self.unreadable(plugin, reason, out);
            }
        };
        match parsed {
            Body::Single(m) => self.decide_message(plugin, &m, text, None, store, out),
            Body::Batch(_) => {
                // Decide each element on its own; rebuild the array if any
                // changed.
                let elements: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(text)
                {
                    Ok(e) => e,
                    Err(e) => {
                        let reason = format!("the server sent an unreadable batch: {e}");
                        return self.unreadable(plugin, reason, out);
                    }
                };
                let mut changed = false;
                let mut kept: Vec<String> = Vec::with_capacity(elements.len());
                for raw in elements {
                    let bytes = raw.get().as_bytes();
                    let v = match parse(bytes) {
                        Ok(Body::Single(m)) => {
                            self.decide_message(plugin, &m, bytes, None, store, out)
                        }
                        _ => {
                            let reason = "the server sent an unreadable batch element".to_string();
                            self.unreadable(plugin, reason, out)
                        }
                    };
                    match v {
                        Verdict::Keep => kept.push(raw.get().to_string()),
                        Verdict::Replace(s) => {
                            changed = true;
                            kept.push(s);
                        }
                        Verdict::Drop => changed = true,
                    }
                }
                if !changed {
                    Verdict::Keep
                } else if kept.is_empty() {
                    Verdict::Drop
                } else {
                    Verdict::Replace(format!("[{}]", kept.join(",")))
                }
            }
        }
    }

    /// A plain answer on a stream that waits for one list request, read in
    /// one pass ([`ListSpans::read_answer`]: the envelope and the
    /// items) after the same checks [`jsonrpc::parse_shallow`] makes (UTF-8,
    /// the structural pre-scan), and decided as the message that reading
    /// gives. `None`: any other text, left to the full reading.
    fn list_answer(
        &mut self,
        plugin: &mut Plugin,
        text: &[u8],
        store: Option<(&dyn Store, u64)>,
        out: &mut Output,
    ) -> Option<Verdict> {
        let [origin] = self.watch.origins.as_slice() else {
            return None;
        };
        if !self.watch.filter_lists {
            return None;
        }
        let member = subject::list_member(&origin.method)?;
        let s = std::str::from_utf8(text).ok()?;
        jsonrpc::check_structure(text).ok()?;
        // The message is the one `parse_shallow` would give; whether it
        // answers `origin` is `decide_message`'s match by id, as for any
        // other answer.
        let (spans, id_raw, id) = ListSpans::read_answer(s, member)?;
        let m = Message {
            kind: Kind::Response,
            id_raw: Some(id_raw),
            id,
            method: None,
            params: Value::Undefined,
            result: Value::Null,
            error: Value::Undefined,
        };
        Some(self.decide_message(plugin, &m, text, Some(spans), store, out))
    }

    /// A message the filter cannot read is not passed on (fail closed): a
    /// waiting request gets an error instead.
    fn unreadable(&mut self, plugin: &mut Plugin, reason: String, out: &mut Output) -> Verdict {
        let d = self.rejected(plugin, &reason);
        out.decided.push(d);
        if plugin.settings.mode == Mode::Audit {
            return Verdict::Keep;
        }
        match (self.framing, self.watch.origins.as_slice()) {
            (Framing::Json, [o]) => Verdict::Replace(replies::refused_response(&o.id_raw, &reason)),
            _ => Verdict::Drop,
        }
    }
}
