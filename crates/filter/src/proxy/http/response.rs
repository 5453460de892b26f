//! The response side of the HTTP context: the policy's response headers,
//! session binding on an `initialize` answer, learning tool definitions
//! from a `tools/list` answer, and an inspected answer fed to the core's
//! `ResponseStream`.

use super::{Http, Path};
use crate::proxy::capabilities::{log, now_ms, SharedData};
use crate::proxy::host::{Action, Buffer, Host, Map};
use mcp_policy_core::catalog::tools::Watcher;
use mcp_policy_core::config::settings::{Mode, DEFAULT_MAX_RESPONSE_BYTES};
use mcp_policy_core::host::{Level, Store};
use mcp_policy_core::observe::report;
use mcp_policy_core::pipeline::response::{self, Start};

impl<H: Host> Http<H> {
    pub(super) fn response_headers(&mut self) -> Action {
        for (k, v) in std::mem::take(&mut self.response_headers) {
            let _ = self
                .host
                .set_map_value(Map::HttpResponseHeaders, &k, Some(&v));
        }
        if let Some(principal) = self.bind_on_response.take() {
            let minted = self
                .host
                .get_map_value_bytes(Map::HttpResponseHeaders, "mcp-session-id")
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok());
            if let (Some(id), Some(plugin)) = (minted, self.plugin.as_ref()) {
                if let Ok(p) = plugin.try_borrow() {
                    if let Err(e) =
                        p.bind_session(&SharedData(&self.host), now_ms(&self.host), &id, &principal)
                    {
                        log(
                            &self.host,
                            Level::Warn,
                            &format!("mcp-policy: could not bind session {id}: {e}"),
                        );
                    }
                }
            }
        }
        // The answer's headers, all in one host call, when anything reads
        // them.
        let all = if self.response_watch.is_some() || self.watch.is_some() {
            self.host
                .get_map_bytes(Map::HttpResponseHeaders)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let header = |name: &str| {
            all.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        if let Some(rw) = self.response_watch.take() {
            let (max, audit) = self
                .plugin
                .as_ref()
                .and_then(|p| {
                    p.try_borrow().ok().map(|p| {
                        (
                            p.settings.max_response_bytes,
                            p.settings.mode == Mode::Audit,
                        )
                    })
                })
                .unwrap_or((DEFAULT_MAX_RESPONSE_BYTES, false));
            let status = header(":status").parse::<u32>().ok();
            let learn = rw.learn.clone();
            match response::start(
                rw,
                status,
                &header("content-type"),
                &header("content-encoding"),
                max,
                audit,
            ) {
                Start::Pass => self.watch = learn,
                Start::Inspect {
                    stream,
                    strip_encoding,
                } => {
                    // The body may change length: it goes chunked.
                    let _ =
                        self.host
                            .set_map_value(Map::HttpResponseHeaders, "content-length", None);
                    if strip_encoding {
                        let _ = self.host.set_map_value(
                            Map::HttpResponseHeaders,
                            "content-encoding",
                            None,
                        );
                    }
                    self.stream = Some(stream);
                }
            }
        }
        if let Some(w) = self.watch.take() {
            let ct = header("content-type");
            self.watcher = Watcher::new(&w.id_raw, &ct).map(|watcher| (watcher, w));
        }
        Action::Continue
    }

    /// Responses pass through untouched; a tools/list answer is read as it
    /// goes by, to learn the tool definitions.
    pub(super) fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.stream.is_some() {
            return self.inspect_response(body_size, end_of_stream);
        }
        let mut learnt = None;
        if let Some((watcher, w)) = self.watcher.as_mut() {
            if body_size > 0 {
                if let Ok(Some(chunk)) =
                    self.host.get_buffer(Buffer::HttpResponseBody, 0, body_size)
                {
                    learnt = watcher.feed(&chunk).map(|tools| (w.clone(), tools));
                }
            }
        }
        if let Some((w, tools)) = learnt {
            self.learn(&w, &tools);
        }
        if end_of_stream && self.watcher.is_some() {
            if let Some((watcher, w)) = self.watcher.take() {
                if let Some(tools) = watcher.finish() {
                    self.learn(&w, &tools);
                }
            }
        }
        Action::Continue
    }

    /// Remember the tool definitions of a watched tools/list answer (core:
    /// `observe::report::learn`).
    fn learn(
        &self,
        w: &mcp_policy_core::pipeline::request::ToolsWatch,
        tools: &[serde_json::Value],
    ) {
        let now = now_ms(&self.host);
        self.report(|r| {
            report::learn(
                &SharedData(&self.host),
                r,
                &w.upstream,
                tools,
                w.replace,
                now,
            )
        });
    }

    /// One chunk of an inspected response: decided messages go on at once,
    /// an incomplete trailing SSE event (or a JSON body until its end) is
    /// held back in the stream.
    fn inspect_response(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(stream), Some(plugin)) = (self.stream.as_mut(), self.plugin.clone()) else {
            return Action::Continue;
        };
        let chunk = if body_size == 0 {
            Vec::new()
        } else {
            match self.host.get_buffer(Buffer::HttpResponseBody, 0, body_size) {
                Ok(Some(b)) => b,
                _ => Vec::new(),
            }
        };
        let Ok(mut p) = plugin.try_borrow_mut() else {
            return Action::Continue;
        };
        // The clock is read only for a chunk that can decide something
        // (not for the first parts of a JSON body, which are only held).
        let shared = SharedData(&self.host);
        let store = stream
            .decides(end_of_stream)
            .then(|| (&shared as &dyn Store, now_ms(&self.host)));
        let out = stage!(13, stream.feed(&mut p, &chunk, end_of_stream, store));
        if out.bytes != chunk
            && stage!(
                15,
                self.host
                    .set_buffer(Buffer::HttpResponseBody, 0, body_size, &out.bytes)
            )
            .is_err()
        {
            log(
                &self.host,
                Level::Error,
                "mcp-policy: could not replace a response chunk",
            );
        }
        if let Some((upstream, n)) = &out.learnt {
            log(
                &self.host,
                Level::Debug,
                &format!("mcp-policy: learnt {n} tool definition(s) from {upstream}"),
            );
        }
        if out.tools_changed {
            log(
                &self.host,
                Level::Debug,
                "mcp-policy: the server announced notifications/tools/list_changed",
            );
        }
        stage!(14, self.record(&p, &out.decided, None, Path::Response));
        if end_of_stream {
            drop(p);
            self.close_stream();
        }
        Action::Continue
    }

    /// The inspected answer is over: requests it left unanswered are kept
    /// for a GET that resumes it (core: `ResponseStream::close`).
    pub(super) fn close_stream(&mut self) {
        if let Some(stream) = self.stream.take() {
            if let Err(e) = stream.close(Some((&SharedData(&self.host), now_ms(&self.host)))) {
                log(
                    &self.host,
                    Level::Warn,
                    &format!(
                        "mcp-policy: could not keep unanswered requests for a resumed stream: {e}"
                    ),
                );
            }
        }
    }
}
