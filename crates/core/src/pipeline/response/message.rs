//! One JSON-RPC message from the server: matched to the request it
//! answers, tool definitions learnt from a tools/list answer, the result
//! scanned by the detectors, the policy's verdict (block, redact), the list
//! filtered per caller.

use super::exchange::{Output, Read, ResponseStream, Verdict};
use super::splice::ListSpans;
use crate::config::settings::Mode;
use crate::detect::ResultFinding;
use crate::mcp::jsonrpc::{Kind, Message};
use crate::pipeline::actions::{Decided, Outcome};
use crate::pipeline::plugin::Plugin;
use crate::pipeline::replies;
use crate::pipeline::subject::{self, Subject};
use crate::policy::input::{self, Origin};
use crate::state::store::Store;
use regorus::Value;
use std::ops::ControlFlow;

impl ResponseStream {
    pub(super) fn decide_message(
        &mut self,
        plugin: &mut Plugin,
        m: &Message<'_>,
        raw: &[u8],
        spans: Option<ListSpans<'_>>,
        store: Option<(&dyn Store, u64)>,
        out: &mut Output,
    ) -> Verdict {
        let origin = self.origin_of(m);
        if let Some(o) = &origin {
            if !self.seen.contains(&o.id_raw) {
                self.seen.push(o.id_raw.clone());
            }
        }
        if origin
            .as_ref()
            .is_some_and(|o| self.answered.contains(&o.id_raw))
        {
            // Already answered with an error by the filter.
            return Verdict::Drop;
        }
        if subject::is_tools_list_changed(m.method()) {
            out.tools_changed = true;
            if let (true, Some((store, now))) = (self.watch.definitions, store) {
                crate::catalog::tools::note_list_changed(store, &self.watch.upstream, now);
            }
        }
        let mut read = Read::default();
        self.learn_tools(origin.as_ref(), raw, store, out, &mut read);
        let mut verdict = Verdict::Keep;
        if self.watch.evaluate {
            match self.evaluate_message(plugin, m, raw, origin.as_ref(), store, out, &mut read) {
                ControlFlow::Continue(v) => verdict = v,
                ControlFlow::Break(v) => return v,
            }
        }
        // List filtering per caller.
        if let Some(orig) = &origin {
            if self.watch.filter_lists && subject::is_list(&orig.method) {
                if let Some(v) = self.filter_result(plugin, orig, raw, spans, &mut read, out) {
                    verdict = v;
                }
            }
        }
        verdict
    }

    /// The request a response answers, by id.
    fn origin_of(&self, m: &Message<'_>) -> Option<Origin> {
        if m.kind != Kind::Response {
            return None;
        }
        let id: serde_json::Value = serde_json::from_str(m.id_raw?.get()).ok()?;
        self.watch
            .origins
            .iter()
            .find(|o| serde_json::from_str::<serde_json::Value>(&o.id_raw).ok() == Some(id.clone()))
            .cloned()
    }

    /// The server's own answer to tools/list: remember the definitions
    /// (the whole list, before any filtering), with their pins and
    /// poisoning findings.
    fn learn_tools(
        &self,
        origin: Option<&Origin>,
        raw: &[u8],
        store: Option<(&dyn Store, u64)>,
        out: &mut Output,
        read: &mut Read,
    ) {
        let (Some(o), Some(w), Some((store, now))) = (origin, &self.watch.learn, store) else {
            return;
        };
        if !subject::is_tools_list(Some(&o.method)) {
            return;
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) {
            if let Some(serde_json::Value::Array(tools)) =
                v.get("result").and_then(|r| r.get("tools"))
            {
                let defs =
                    crate::catalog::tools::remember_at(store, &w.upstream, tools, w.replace, now);
                out.learnt = Some((w.upstream.clone(), defs.len()));
                read.annotated = Some(defs);
            }
            read.message = Some(v);
        }
    }

    /// The policy on the message (with the result's findings, and a
    /// tools/call's definition, when it reads them). `Break`: the final
    /// verdict (blocked, or dropped); `Continue`: kept, or redacted.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_message(
        &mut self,
        plugin: &mut Plugin,
        m: &Message<'_>,
        raw: &[u8],
        origin: Option<&Origin>,
        store: Option<(&dyn Store, u64)>,
        out: &mut Output,
        read: &mut Read,
    ) -> ControlFlow<Verdict, Verdict> {
        let audit_mode = plugin.settings.mode == Mode::Audit;
        // Detector findings of a result (tools/call, resources/read,
        // prompts/get), when the policy reads them.
        let scanned = origin.is_some_and(|o| subject::result_subject(&o.method).is_some())
            && self.watch.findings;
        let mut findings: Vec<ResultFinding> = Vec::new();
        if scanned {
            if let Some(result) = read.json(raw).and_then(|v| v.get("result")) {
                findings = crate::detect::scan_result(result);
            }
        }
        let o = self.evaluate(plugin, m, origin, store, scanned.then_some(&findings));
        // On this direction only `deny` (or an error) blocks: `allow`
        // is not required.
        let blocked = !o.result.deny.is_empty() || o.failed();
        let reasons = if blocked {
            if o.result.deny.is_empty() {
                o.reasons.clone()
            } else {
                o.result.deny.clone()
            }
        } else {
            Vec::new()
        };
        let mut d = self.decided(plugin, m, origin, !blocked, &reasons, &o);
        d.record.findings = findings
            .iter()
            .map(|f| format!("{}/{}", f.finding.kind, f.finding.detector))
            .collect();
        d.record.findings.dedup();
        let mut verdict = Verdict::Keep;
        // Redaction: the selected findings' spans replaced in the
        // forwarded result.
        if !blocked && !o.result.redact.is_none() && !findings.is_empty() {
            if let Some(v) = read.message.as_mut() {
                let redact = &o.result.redact;
                let select = |f: &crate::detect::Finding| redact.selects(f.kind, f.detector);
                let n = v
                    .get_mut("result")
                    .map(|r| crate::detect::redact_result(r, &findings, &select))
                    .unwrap_or(0);
                d.record.redacted = n;
                if n > 0 && !audit_mode {
                    match serde_json::to_string(v) {
                        Ok(s) => verdict = Verdict::Replace(s),
                        Err(_) => {
                            out.decided.push(d);
                            return ControlFlow::Break(Verdict::Drop);
                        }
                    }
                }
            }
        }
        out.decided.push(d);
        if blocked && !audit_mode {
            return ControlFlow::Break(self.block(plugin, m, origin, &o, &reasons));
        }
        ControlFlow::Continue(verdict)
    }

    /// Build the message's input and evaluate it.
    fn evaluate(
        &mut self,
        plugin: &mut Plugin,
        m: &Message<'_>,
        origin: Option<&Origin>,
        store: Option<(&dyn Store, u64)>,
        findings: Option<&Vec<ResultFinding>>,
    ) -> Outcome {
        let shared = self.shared();
        let mut extra = Vec::new();
        if let Some(findings) = findings {
            let list: Vec<Value> = findings
                .iter()
                .filter_map(|f| crate::policy::engine::json_to_value(&f.to_json()).ok())
                .collect();
            extra.push(("findings", Value::from(list)));
        }
        let definition = match (origin, store) {
            (Some(o), Some((store, _)))
                if subject::is_tool_call(Some(&o.method)) && self.watch.definitions =>
            {
                o.params["name"]
                    .as_string()
                    .ok()
                    .and_then(|n| crate::catalog::tools::definition(store, &self.watch.upstream, n))
            }
            _ => None,
        };
        let input =
            input::for_server_message(&shared, &self.watch.routing, m, origin, definition, extra);
        plugin.evaluate(input)
    }

    /// A blocked response becomes an error for its request. A blocked
    /// server request on the stream of a client request fails that request
    /// (the client is not left waiting on a server that waits for an
    /// answer it will never get).
    fn block(
        &mut self,
        plugin: &Plugin,
        m: &Message<'_>,
        origin: Option<&Origin>,
        o: &Outcome,
        reasons: &[String],
    ) -> Verdict {
        let failed_origin = match (origin, m.kind, self.watch.origins.as_slice()) {
            (Some(orig), _, _) => Some(orig.clone()),
            (None, Kind::Request, [only]) => Some(only.clone()),
            _ => None,
        };
        match failed_origin {
            Some(orig) if !self.answered.contains(&orig.id_raw) => {
                self.answered.push(orig.id_raw.clone());
                Verdict::Replace(replies::blocked_answer(
                    &orig,
                    o,
                    reasons,
                    plugin.settings.deny_code,
                ))
            }
            // A notification, or a message for no waiting request:
            // dropped.
            _ => Verdict::Drop,
        }
    }

    /// The decision on a message from the server, and its record.
    fn decided(
        &mut self,
        plugin: &mut Plugin,
        m: &Message<'_>,
        origin: Option<&Origin>,
        allowed: bool,
        reasons: &[String],
        o: &Outcome,
    ) -> Decided {
        let method = match (m.kind, origin) {
            (Kind::Response, Some(orig)) => orig.method.clone(),
            _ => m.method().unwrap_or(m.kind.as_str()).to_string(),
        };
        let (name, params) = match origin {
            Some(orig) => (orig.method.as_str(), &orig.params),
            None => (m.method().unwrap_or(""), &m.params),
        };
        let mut d =
            Decided::new(m.kind.as_str(), method, allowed, reasons.to_vec()).with_outcome(o);
        let r = &mut d.record;
        r.server_to_client = true;
        let text = |k: &str| params[k].as_string().ok().map(|s| s.to_string());
        match subject::result_subject(name) {
            Some(Subject::Tool) => r.tool = text("name"),
            Some(Subject::Prompt) => r.prompt = text("name"),
            Some(Subject::Resource) => r.resource = text("uri"),
            None => {}
        }
        self.stamp(plugin, d)
    }
}
