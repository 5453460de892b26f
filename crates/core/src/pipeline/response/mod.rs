//! The response path, host-independent: what the filter does with what the
//! server sends back — the answer to a forwarded POST (`application/json`
//! or `text/event-stream`) and the GET SSE stream.
//!
//! ```text
//! response headers ─► not 2xx, or neither JSON nor SSE: passed through
//!    │               ─► Content-Encoding other than identity: fails closed
//!    ▼
//! JSON body: buffered (max_response_bytes), decided at its end
//! SSE: parsed as it arrives; each event is decided as soon as it is
//!      complete and released at once (an incomplete trailing event is
//!      held back until its end arrives)
//!    ▼
//! each JSON-RPC message, direction server_to_client:
//!   a response to the client's request ─► learn tools/list definitions
//!                                     ─► policy (deny blocks → JSON-RPC
//!                                        error with the request's id)
//!                                     ─► list filtering per caller
//!                                     ─► redaction of result findings
//!   a server request / notification    ─► policy (deny drops it)
//! ```
//!
//! Bytes of messages that pass unchanged are forwarded exactly as received.
//!
//! This file reads the response headers ([`start`]) and feeds the body
//! ([`ResponseStream::feed`]): a JSON body whole, SSE events as they
//! complete (`stream.rs`), each JSON-RPC message decided in `message.rs`,
//! list results filtered per caller in `listing.rs` (edited in their own
//! bytes by `splice.rs`); `exchange.rs` holds
//! the stream's state and what every step shares. A response that cannot
//! be read fails closed here. The steps import downwards only: `mod` →
//! `stream` → `message` → `listing` → `exchange`.

mod exchange;
mod listing;
mod message;
mod splice;
mod stream;

#[cfg(test)]
mod tests;

pub use crate::pipeline::actions::ResponseWatch;
pub use crate::pipeline::memo::ListingMemo;
pub use crate::pipeline::subject::is_list;
pub use exchange::{Framing, Output, ResponseStream};

use exchange::Verdict;

use crate::config::settings::Mode;
use crate::mcp::sse;
use crate::pipeline::error::StateError;
use crate::pipeline::plugin::Plugin;
use crate::pipeline::replies;
use crate::policy::input::Origin;
use crate::state::store::Store;

/// What the adapter does with the response headers.
#[derive(Debug)]
pub enum Start {
    /// Nothing to inspect: pass the response through.
    Pass,
    /// Inspect the body: remove `Content-Length` (the body may change
    /// length; it is then sent chunked), and `Content-Encoding` when
    /// `strip_encoding` (the body is replaced by a plain error).
    Inspect {
        stream: Box<ResponseStream>,
        strip_encoding: bool,
    },
}

/// Decide how to read a response, from its status and headers.
pub fn start(
    watch: Box<ResponseWatch>,
    status: Option<u32>,
    content_type: &str,
    content_encoding: &str,
    max: usize,
    audit: bool,
) -> Start {
    if !status.is_some_and(|s| (200..300).contains(&s)) {
        return Start::Pass;
    }
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let framing = match media.as_str() {
        "application/json" => Framing::Json,
        "text/event-stream" => Framing::Sse,
        _ => return Start::Pass,
    };
    let encoded = content_encoding
        .split(',')
        .map(str::trim)
        .find(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
        .map(str::to_string);
    let failed = encoded.as_ref().map(|e| {
        format!(
            "the upstream's response is compressed (Content-Encoding {e}) and cannot be inspected"
        )
    });
    Start::Inspect {
        strip_encoding: failed.is_some() && !audit,
        stream: Box::new(ResponseStream {
            watch,
            framing,
            buf: Vec::new(),
            parser: sse::Parser::new(max),
            max,
            failed,
            failure_sent: false,
            answered: Vec::new(),
            seen: Vec::new(),
            passthrough: false,
            shared: None,
        }),
    }
}

impl ResponseStream {
    /// Whether a chunk fed now can decide anything, and so needs the
    /// store and the time: a JSON body is only held until its end.
    pub fn decides(&self, end: bool) -> bool {
        end || self.framing != Framing::Json
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The stream is over (it ended, or the request did): an SSE stream of
    /// a session keeps the requests it left unanswered for a GET that
    /// resumes it, and a resumed stream forgets those it delivered
    /// ([`crate::state::resume`]).
    pub fn close(&self, store: Option<(&dyn Store, u64)>) -> Result<(), StateError> {
        let (Some((store, now)), Framing::Sse) = (store, self.framing) else {
            return Ok(());
        };
        let Some(session) = self.watch.routing.session_id.as_deref() else {
            return Ok(());
        };
        let done = |o: &&Origin| {
            self.failure_sent || self.seen.contains(&o.id_raw) || self.answered.contains(&o.id_raw)
        };
        let upstream = &self.watch.upstream;
        if self.watch.resumed {
            let ids: Vec<String> = self
                .watch
                .origins
                .iter()
                .filter(done)
                .map(|o| o.id_raw.clone())
                .collect();
            crate::state::resume::forget(store, now, upstream, session, &ids).map_err(StateError)
        } else {
            let open: Vec<Origin> = self
                .watch
                .origins
                .iter()
                .filter(|o| !done(o))
                .cloned()
                .collect();
            crate::state::resume::remember(store, now, upstream, session, &open).map_err(StateError)
        }
    }

    /// Feed a chunk of the body (`end`: the last one). `store`: the shared
    /// store and the time, for tool definitions.
    pub fn feed(
        &mut self,
        plugin: &mut Plugin,
        chunk: &[u8],
        end: bool,
        store: Option<(&dyn Store, u64)>,
    ) -> Output {
        let mut out = Output::default();
        if self.passthrough {
            out.bytes = chunk.to_vec();
            return out;
        }
        let audit = plugin.settings.mode == Mode::Audit;
        if audit && self.failed.is_some() {
            // Audit mode changes nothing: the failure is recorded, and the
            // response passes as the server sent it.
            let reason = self.failed.clone().unwrap_or_default();
            let d = self.rejected(plugin, &reason);
            out.decided.push(d);
            out.bytes = std::mem::take(&mut self.buf);
            out.bytes.extend_from_slice(chunk);
            self.passthrough = true;
            return out;
        }
        if self.failed.is_none() {
            match self.framing {
                Framing::Json => {
                    if self.buf.len().saturating_add(chunk.len()) > self.max {
                        self.fail(format!(
                            "the response exceeds max_response_bytes ({} bytes)",
                            self.max
                        ));
                        if audit {
                            return self.feed(plugin, chunk, end, store);
                        }
                        self.buf = Vec::new();
                    } else {
                        self.buf.extend_from_slice(chunk);
                        if end {
                            let body = std::mem::take(&mut self.buf);
                            match self.decide_text(plugin, &body, store, &mut out) {
                                Verdict::Keep => out.bytes = body,
                                Verdict::Replace(s) => out.bytes = s.into_bytes(),
                                Verdict::Drop => {}
                            }
                        }
                    }
                }
                Framing::Sse => match self.parser.feed_blocks(chunk) {
                    Ok(blocks) => {
                        for b in blocks {
                            self.sse_block(plugin, b, store, &mut out);
                        }
                        if audit {
                            // Decided and recorded; forwarded as received.
                            out.bytes = chunk.to_vec();
                        }
                    }
                    Err(e) => {
                        self.fail(e.to_string());
                        if audit {
                            let reason = self.failed.clone().unwrap_or_default();
                            let d = self.rejected(plugin, &reason);
                            out.decided.push(d);
                            out.bytes = chunk.to_vec();
                            self.passthrough = true;
                            return out;
                        }
                    }
                },
            }
        }
        if self.failed.is_some() {
            self.failure(plugin, end, &mut out);
        }
        out
    }

    fn fail(&mut self, reason: String) {
        if self.failed.is_none() {
            self.failed = Some(reason);
        }
    }

    /// Failed closed: every request still waiting gets a JSON-RPC error
    /// (at once on SSE, at the end of a JSON body); nothing else passes.
    fn failure(&mut self, plugin: &mut Plugin, end: bool, out: &mut Output) {
        if self.failure_sent || (self.framing == Framing::Json && !end) {
            return;
        }
        self.failure_sent = true;
        let reason = self.failed.clone().unwrap_or_default();
        let errors: Vec<String> = self
            .watch
            .origins
            .iter()
            .map(|o| replies::refused_response(&o.id_raw, &reason))
            .collect();
        let mut d = self.rejected(plugin, &reason);
        d.record.method = self
            .watch
            .origins
            .first()
            .map(|o| o.method.clone())
            .unwrap_or_default();
        out.decided.push(d);
        match self.framing {
            Framing::Json => {
                out.bytes = match errors.len() {
                    0 => Vec::new(),
                    1 => errors.concat().into_bytes(),
                    _ => format!("[{}]", errors.join(",")).into_bytes(),
                }
            }
            Framing::Sse => {
                for e in errors {
                    out.bytes
                        .extend_from_slice(format!("event: message\ndata: {e}\n\n").as_bytes());
                }
            }
        }
    }
}
