//! The one recorder of a VM: what the filter reports about decisions,
//! learnt tool definitions and the audit collector, handed to a
//! [`Recorder`] as metric changes by name, log lines with their level and
//! filter-state values, in the order the host is to see them. The adapter
//! only writes each to the host ([`crate::host`]).

use crate::host::{Clock, Level, MetricKind, Recorder, Store};
use crate::observe::audit::{self, Outbox, Record};
use crate::observe::metrics::{self, Cardinality};

/// One decided message, as the recorder reads it (the pipeline's
/// `Decided`, seen without depending on the pipeline).
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub method: &'a str,
    pub allowed: bool,
    /// The reasons given to the client (the access log's).
    pub reasons: &'a [String],
    pub labels: &'a [String],
    /// The audit record (docs/audit.md).
    pub record: &'a Record,
}

/// What every audit event of a plugin carries.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The plugin's mode (`enforce`, `audit`).
    pub mode: &'a str,
    /// The policy revision in force.
    pub revision: &'a str,
    /// Audit events go to the proxy log (`audit.log`).
    pub audit_log: bool,
    /// The request's decision goes to filter state for the access log
    /// (`audit.filter_state`).
    pub filter_state: bool,
}

/// Which path decided: the request's decision goes to filter state too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Request,
    Response,
}

/// The per-VM state of reporting: the metric labels seen so far (capped).
#[derive(Debug, Default)]
pub struct Reporter {
    cardinality: Cardinality,
}

impl Reporter {
    /// The metrics of decisions: their counters, and the evaluation time
    /// of every decision a policy made (docs/metrics.md).
    pub fn decisions(&mut self, rec: &mut impl Recorder, decided: &[Decision<'_>]) {
        for d in decided {
            for name in self.cardinality.counters(d.record) {
                rec.count(&name, 1);
            }
            // Only decisions that evaluated something are timed: a rejected
            // message or a list answer decided from reused verdicts would add
            // a zero that no evaluation took.
            if d.record.kind != "rejected" && !d.record.nothing_evaluated {
                rec.observe(metrics::EVAL_US, d.record.eval_us);
            }
        }
    }

    /// Record decisions: their metrics; one audit event per decided
    /// message in the proxy log (and the collector's outbox); a warning for
    /// a denial by a policy error; and, on the request path, the request's
    /// decision in filter state for Envoy's access log
    /// (`%FILTER_STATE(wasm.mcp_policy.decision:PLAIN)%` and friends).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        rec: &mut impl Recorder,
        cx: &Context<'_>,
        mut outbox: Option<&mut Outbox>,
        decided: &[Decision<'_>],
        status: Option<u32>,
        clock: &impl Clock,
        path: Path,
    ) {
        if decided.is_empty() {
            return;
        }
        self.decisions(rec, decided);
        // Read after the metrics are written (the host sees this order).
        let now_ms = clock.now_ms();
        let mut events = Vec::with_capacity(decided.len());
        let mut full = 0u64;
        for d in decided {
            let e = audit::event(d.record, now_ms, cx.mode, cx.revision, status);
            if cx.audit_log && rec.enabled(Level::Info) {
                rec.audit_line(&format!("{}{e}", audit::LOG_PREFIX));
            }
            if let Some(reason) = d
                .record
                .reasons
                .iter()
                .find(|r| crate::policy::engine::error_kind_of_reason(r).is_some())
            {
                rec.log(
                    Level::Warn,
                    &format!(
                        "mcp-policy: decision {} denied by a policy error ({} {}): {reason}",
                        d.record.decision_id, d.record.method, cx.mode
                    ),
                );
            }
            if let Some(o) = outbox.as_deref_mut() {
                if !o.push(e.clone()) {
                    full += 1;
                }
            }
            events.push(e);
        }
        if full > 0 {
            rec.log(
                Level::Error,
                &format!("mcp-policy: audit collector queue full: {full} event(s) dropped (counted in mcp_policy_audit_dropped)"),
            );
            rec.count(metrics::AUDIT_DROPPED, full);
        }
        if path == Path::Response || !cx.filter_state {
            return;
        }
        let allowed = decided.iter().all(|d| d.allowed);
        let ids: Vec<&str> = decided
            .iter()
            .map(|d| d.record.decision_id.as_str())
            .collect();
        let reasons: Vec<&str> = decided
            .iter()
            .flat_map(|d| d.reasons.iter().map(String::as_str))
            .collect();
        rec.filter_state(
            "mcp_policy.decision",
            if allowed { "allow" } else { "deny" },
        );
        rec.filter_state("mcp_policy.decision_id", &ids.join(","));
        // No reasons (an allowed request): nothing to write; the access log
        // shows the value as missing.
        if !reasons.is_empty() {
            rec.filter_state("mcp_policy.reasons", &reasons.join("; "));
        }
        rec.filter_state("mcp_policy.audit", &events.join("\n"));
    }
}

/// The allowed messages of a request, at debug level.
pub fn allowed(rec: &mut impl Recorder, decided: &[Decision<'_>]) {
    if !rec.enabled(Level::Debug) {
        return;
    }
    for d in decided.iter().filter(|d| d.allowed) {
        if d.labels.is_empty() {
            rec.log(Level::Debug, &format!("mcp-policy: allowed {}", d.method));
        } else {
            rec.log(
                Level::Debug,
                &format!("mcp-policy: allowed {} labels {:?}", d.method, d.labels),
            );
        }
    }
}

/// Remember the tool definitions of a watched tools/list answer.
pub fn learn(
    store: &dyn Store,
    rec: &mut impl Recorder,
    upstream: &str,
    tools: &[serde_json::Value],
    replace: bool,
    now_ms: u64,
) {
    crate::catalog::tools::remember_at(store, upstream, tools, replace, now_ms);
    rec.log(
        Level::Debug,
        &format!(
            "mcp-policy: learnt {} tool definition(s) from {upstream}",
            tools.len()
        ),
    );
}

/// The collector counters, defined when a collector is configured so they
/// are exported (as 0) before anything happens.
pub fn define_collector(rec: &mut impl Recorder) {
    rec.define(MetricKind::Counter, metrics::AUDIT_DROPPED);
    rec.define(MetricKind::Counter, metrics::AUDIT_SENT);
}

/// The audit collector answered a batch (`status` None: no answer).
pub fn collector_answered(rec: &mut impl Recorder, outbox: &mut Outbox, status: Option<u32>) {
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let before = outbox.queued();
    let dropped = outbox.on_result(ok);
    let sent = if ok {
        before.saturating_sub(outbox.queued()) as u64
    } else {
        0
    };
    if sent > 0 {
        rec.count(metrics::AUDIT_SENT, sent);
    }
    if dropped > 0 {
        rec.count(metrics::AUDIT_DROPPED, dropped);
    }
    if !ok {
        let shown = status.map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
        if dropped > 0 {
            rec.log(Level::Error, &format!("mcp-policy: audit collector failed ({shown}); {dropped} event(s) dropped after retries (counted in mcp_policy_audit_dropped)"));
        } else {
            rec.log(
                Level::Warn,
                &format!("mcp-policy: audit collector failed ({shown}); will retry"),
            );
        }
    }
}

/// A batch for the collector could not even be sent (e.g. unknown
/// cluster): a failed attempt. `error` is the host's reason.
pub fn collector_not_sent(
    rec: &mut impl Recorder,
    outbox: &mut Outbox,
    cluster: &str,
    error: &dyn std::fmt::Debug,
) {
    let dropped = outbox.on_result(false);
    rec.log(
        Level::Warn,
        &format!("mcp-policy: audit collector call to {cluster} failed: {error:?}"),
    );
    if dropped > 0 {
        rec.log(Level::Error, &format!("mcp-policy: {dropped} audit event(s) dropped after retries (counted in mcp_policy_audit_dropped)"));
        rec.count(metrics::AUDIT_DROPPED, dropped);
    }
}

/// A [`Recorder`] that keeps what it is given, in order (tests, and any
/// caller that writes it out later).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recording {
    pub writes: Vec<Write>,
}

/// One thing reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Log(Level, String),
    Define(MetricKind, String),
    Count(String, u64),
    Gauge(String, i64),
    Observe(String, u64),
    FilterState(String, String),
}

impl Recorder for Recording {
    fn log(&mut self, level: Level, message: &str) {
        self.writes.push(Write::Log(level, message.to_string()));
    }
    fn define(&mut self, kind: MetricKind, name: &str) {
        self.writes.push(Write::Define(kind, name.to_string()));
    }
    fn count(&mut self, name: &str, n: u64) {
        self.writes.push(Write::Count(name.to_string(), n));
    }
    fn gauge(&mut self, name: &str, delta: i64) {
        self.writes.push(Write::Gauge(name.to_string(), delta));
    }
    fn observe(&mut self, name: &str, value: u64) {
        self.writes.push(Write::Observe(name.to_string(), value));
    }
    fn filter_state(&mut self, key: &str, value: &str) {
        self.writes
            .push(Write::FilterState(key.to_string(), value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> std::time::Duration {
            std::time::Duration::from_millis(1_767_225_600_000)
        }
    }

    fn record(tool: &str, allowed: bool, reasons: &[&str]) -> Record {
        Record {
            kind: "request".into(),
            method: "tools/call".into(),
            tool: Some(tool.into()),
            allowed,
            decision_id: format!("id-{tool}"),
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            eval_us: 7,
            ..Record::default()
        }
    }

    #[test]
    fn a_request_decision_is_counted_logged_queued_and_put_in_filter_state() {
        let denied = record(
            "rm",
            false,
            &["policy evaluation failed: builtin error at a.rego:1:2: x"],
        );
        let reasons = vec!["no".to_string()];
        let d = [Decision {
            method: "tools/call",
            allowed: false,
            reasons: &reasons,
            labels: &[],
            record: &denied,
        }];
        let cx = Context {
            mode: "enforce",
            revision: "r1",
            audit_log: true,
            filter_state: true,
        };
        let mut outbox = Outbox::new(1, 10, 1);
        assert!(outbox.push("{}".into()), "the queue is now full");
        let mut rec = Recording::default();
        Reporter::default().record(
            &mut rec,
            &cx,
            Some(&mut outbox),
            &d,
            Some(200),
            &Fixed,
            Path::Request,
        );
        let event = audit::event(&denied, 1_767_225_600_000, "enforce", "r1", Some(200));
        assert_eq!(
            rec.writes,
            vec![
                Write::Count(
                    "mcp_policy_decisions.method.tools_call.tool.rm.outcome.deny".into(),
                    1
                ),
                Write::Count("mcp_policy_errors.kind.builtin".into(), 1),
                Write::Count("mcp_policy_denials.principal.anonymous".into(), 1),
                Write::Observe(metrics::EVAL_US.into(), 7),
                Write::Log(Level::Info, format!("mcp-policy audit {event}")),
                Write::Log(
                    Level::Warn,
                    "mcp-policy: decision id-rm denied by a policy error (tools/call enforce): policy evaluation failed: builtin error at a.rego:1:2: x".into()
                ),
                Write::Log(
                    Level::Error,
                    "mcp-policy: audit collector queue full: 1 event(s) dropped (counted in mcp_policy_audit_dropped)".into()
                ),
                Write::Count(metrics::AUDIT_DROPPED.into(), 1),
                Write::FilterState("mcp_policy.decision".into(), "deny".into()),
                Write::FilterState("mcp_policy.decision_id".into(), "id-rm".into()),
                Write::FilterState("mcp_policy.reasons".into(), "no".into()),
                Write::FilterState("mcp_policy.audit".into(), event),
            ]
        );
    }

    #[test]
    fn a_response_decision_stays_out_of_filter_state() {
        let r = record("echo", true, &[]);
        let d = [Decision {
            method: "tools/call",
            allowed: true,
            reasons: &[],
            labels: &[],
            record: &r,
        }];
        let cx = Context {
            mode: "audit",
            revision: "r1",
            audit_log: false,
            filter_state: true,
        };
        let mut rec = Recording::default();
        Reporter::default().record(&mut rec, &cx, None, &d, None, &Fixed, Path::Response);
        assert!(rec
            .writes
            .iter()
            .all(|w| matches!(w, Write::Count(..) | Write::Observe(..))));
        allowed(&mut rec, &d);
        assert_eq!(
            rec.writes.last(),
            Some(&Write::Log(
                Level::Debug,
                "mcp-policy: allowed tools/call".into()
            ))
        );
    }

    #[test]
    fn collector_answers_count_sent_and_dropped_events() {
        let mut outbox = Outbox::new(10, 10, 0);
        assert!(outbox.push("{}".into()));
        assert!(outbox.next_batch().is_some());
        let mut rec = Recording::default();
        collector_answered(&mut rec, &mut outbox, Some(503));
        assert_eq!(
            rec.writes,
            vec![
                Write::Count(metrics::AUDIT_DROPPED.into(), 1),
                Write::Log(Level::Error, "mcp-policy: audit collector failed (HTTP 503); 1 event(s) dropped after retries (counted in mcp_policy_audit_dropped)".into()),
            ]
        );
    }
}
