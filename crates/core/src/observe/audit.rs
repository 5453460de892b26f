//! The audit trail: one event for every decision, allowed or denied, as a
//! JSON object (schema in docs/audit.md). Arguments are never logged as they
//! are: the event carries a digest of them, plus only the argument fields the
//! policy chose to reveal (its `reveal` output); everything else is masked.

/// What precedes each event in Envoy's log (docs/audit.md); the replay
/// reader (`replay::audit`) finds events by it.
pub const LOG_PREFIX: &str = "mcp-policy audit ";

use regorus::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What the audit event says about one decided message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub decision_id: String,
    /// The message: `request`, `notification`, `response`, or `transport`
    /// (an HTTP request without a message) or `invalid`.
    pub kind: String,
    pub method: String,
    /// The tool, prompt or resource the message names.
    pub tool: Option<String>,
    pub prompt: Option<String>,
    pub resource: Option<String>,
    pub allowed: bool,
    /// What the client got: `allow`, `deny`, or in audit mode the decision
    /// that was made but not enforced.
    pub reasons: Vec<String>,
    /// Reasons the policy marked as dry-run (`dry_run`): recorded, not
    /// enforced.
    pub dry_run: Vec<String>,
    pub labels: Vec<String>,
    /// `sha256:` of the arguments' canonical JSON.
    pub arguments_digest: Option<String>,
    /// The revealed argument fields, as JSON.
    pub arguments_revealed: Option<String>,
    pub subject: Option<String>,
    pub principal: Option<String>,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
    pub upstream: Option<String>,
    /// Evaluation time in microseconds.
    pub eval_us: u64,
    /// Nothing was evaluated for this decision (a list answer whose every
    /// item's verdict was reused): it has no evaluation time to count in
    /// the `mcp_policy_eval_us` histogram. Not part of the event.
    pub nothing_evaluated: bool,
    /// The policy killed the session/principal with this reason.
    pub kill: Option<String>,
    /// The policy lifted a kill.
    pub clear_kill: bool,
    /// A message the server sent (a response, a server request or a
    /// notification on an SSE stream), not one the client sent.
    pub server_to_client: bool,
    /// Items of a list result not shown to this caller.
    pub hidden: Vec<String>,
    /// Findings of the detectors in a result: `kind/detector` names.
    pub findings: Vec<String>,
    /// Findings replaced in the forwarded result.
    pub redacted: usize,
    /// The policy's `confirm` messages (it wants a person to approve).
    pub confirm: Vec<String>,
    /// What became of the confirmation: `asked`, `approved`, `declined`,
    /// `expired`, `forged`, `mismatch`, `unavailable` (docs/approval.md).
    pub approval: Option<String>,
    /// The approval id: the same on the question and on its retry.
    pub approval_id: Option<String>,
}

/// The digest of a value's canonical JSON (objects are key-sorted). The JSON
/// is streamed into the hash, never held as a string.
pub fn digest(v: &Value) -> Option<String> {
    // The serializer writes token by token; a buffer in front of the hash
    // turns those many small updates into a few large ones.
    let mut h = std::io::BufWriter::with_capacity(4096, HashWriter(Sha256::new()));
    serde_json::to_writer(&mut h, v).ok()?;
    let h = h.into_inner().ok()?;
    let d = h.0.finalize();
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    push_hex(&mut s, &d);
    Some(s)
}

/// Feeds what is written into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // ASCII digits into a byte buffer, then one append (not a char and its
    // UTF-8 encoding per digit).
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'));
        }
    }
    s.push_str(std::str::from_utf8(&out).unwrap_or_default());
}

/// The revealed fields of `arguments`: those named in `reveal`.
pub fn revealed(arguments: &Value, reveal: &[String]) -> Option<String> {
    if reveal.is_empty() {
        return None;
    }
    let Value::Object(o) = arguments else {
        return None;
    };
    let mut out = BTreeMap::new();
    for (k, v) in o.iter() {
        if let Value::String(name) = k {
            if reveal.iter().any(|r| r.as_str() == name.as_ref()) {
                out.insert(Value::from(name.as_ref()), v.clone());
            }
        }
    }
    serde_json::to_string(&Value::from(out)).ok()
}

/// The event, as one line of JSON.
#[allow(clippy::too_many_arguments)]
pub fn event(
    r: &Record,
    time_ms: u64,
    mode: &str,
    revision: &str,
    http_status: Option<u32>,
) -> String {
    // Borrowed fields, serialized in one pass, members in alphabetical order
    // (as a JSON object with sorted keys); absent members are left out.
    #[derive(serde::Serialize)]
    struct Arguments<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        digest: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        revealed: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Serialize)]
    struct Identity<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        principal: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<&'a str>,
    }
    fn empty<T>(v: &[T]) -> bool {
        v.is_empty()
    }
    fn not(b: &bool) -> bool {
        !*b
    }
    fn zero(n: &usize) -> bool {
        *n == 0
    }
    #[derive(serde::Serialize)]
    struct ApprovalEvent<'a> {
        #[serde(skip_serializing_if = "empty")]
        confirm: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    struct Event<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        approval: Option<ApprovalEvent<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        arguments: Option<Arguments<'a>>,
        #[serde(skip_serializing_if = "not")]
        clear_kill: bool,
        decision: &'a str,
        decision_id: &'a str,
        direction: &'a str,
        #[serde(skip_serializing_if = "empty")]
        dry_run: &'a [String],
        eval_us: u64,
        #[serde(skip_serializing_if = "empty")]
        findings: &'a [String],
        #[serde(skip_serializing_if = "empty")]
        hidden: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        http_status: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        identity: Option<Identity<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        kill: Option<&'a str>,
        kind: &'a str,
        labels: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        method: Option<&'a str>,
        mode: &'a str,
        policy_revision: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        protocol_version: Option<&'a str>,
        reasons: &'a [String],
        #[serde(skip_serializing_if = "zero")]
        redacted: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        resource: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<&'a str>,
        time: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        upstream: Option<&'a str>,
    }
    let time = rfc3339(time_ms);
    // The revealed fields are JSON made by `revealed`; anything else is
    // left out rather than written unchecked.
    let revealed = r
        .arguments_revealed
        .as_deref()
        .and_then(|t| serde_json::from_str::<&serde_json::value::RawValue>(t).ok());
    let e = Event {
        approval: (r.approval.is_some() || !r.confirm.is_empty()).then_some(ApprovalEvent {
            confirm: &r.confirm,
            id: r.approval_id.as_deref(),
            status: r.approval.as_deref(),
        }),
        // Without a digest (`audit.arguments_digest: false`), only what
        // the policy revealed.
        arguments: (r.arguments_digest.is_some() || revealed.is_some()).then_some(Arguments {
            digest: r.arguments_digest.as_deref(),
            revealed,
        }),
        clear_kill: r.clear_kill,
        decision: if r.allowed { "allow" } else { "deny" },
        decision_id: &r.decision_id,
        direction: if r.server_to_client {
            "response"
        } else {
            "request"
        },
        dry_run: &r.dry_run,
        eval_us: r.eval_us,
        findings: &r.findings,
        hidden: &r.hidden,
        http_status,
        identity: (r.subject.is_some() || r.principal.is_some()).then_some(Identity {
            principal: r.principal.as_deref(),
            subject: r.subject.as_deref(),
        }),
        kill: r.kill.as_deref(),
        kind: &r.kind,
        labels: &r.labels,
        method: Some(r.method.as_str()).filter(|m| !m.is_empty()),
        mode,
        policy_revision: revision,
        prompt: r.prompt.as_deref(),
        protocol_version: r.protocol_version.as_deref(),
        reasons: &r.reasons,
        redacted: r.redacted,
        resource: r.resource.as_deref(),
        session_id: r.session_id.as_deref(),
        time: &time,
        tool: r.tool.as_deref(),
        upstream: r.upstream.as_deref(),
    };
    serde_json::to_string(&e).unwrap_or_default()
}

/// `2026-11-22T05:08:23.123Z` from milliseconds since the epoch.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let days = (secs / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

/// A decision id: 128 bits, hex, from a per-VM seed (the host's clock at
/// configuration, the policy revision) and a counter, hashed: unique per
/// request, not a secret.
pub struct Ids {
    seed: [u8; 32],
    counter: u64,
}

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ids")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Ids {
    pub fn new(seed: [u8; 32]) -> Ids {
        Ids { seed, counter: 0 }
    }

    pub fn next_id(&mut self) -> String {
        self.counter = self.counter.wrapping_add(1);
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(self.counter.to_le_bytes());
        let d = h.finalize();
        hex(d.get(..16).unwrap_or(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_325_303_123), "2026-11-22T05:28:23.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn digests_and_reveals() {
        let a = Value::from_json_str(r#"{"path":"/etc/passwd","token":"s3cret"}"#).unwrap();
        let b = Value::from_json_str(r#"{"token":"s3cret","path":"/etc/passwd"}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        // The SHA-256 of the canonical JSON text, as tools/audit_report.py
        // --digest computes it.
        assert_eq!(
            digest(&a).unwrap(),
            "sha256:e213a60fc70e698bbd19b8e9544d8fd22989f1717ed038541f8750f9d487a77d"
        );
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(
            revealed(&a, &["path".into()]).as_deref(),
            Some(r#"{"path":"/etc/passwd"}"#)
        );
        assert_eq!(revealed(&a, &[]), None);
    }

    #[test]
    fn events_carry_the_schema_fields() {
        let r = Record {
            decision_id: "abc".into(),
            kind: "request".into(),
            method: "tools/call".into(),
            tool: Some("read_file".into()),
            allowed: false,
            reasons: vec!["no".into()],
            arguments_digest: Some("sha256:00".into()),
            arguments_revealed: Some(r#"{"path":"/x"}"#.into()),
            subject: Some("alice".into()),
            session_id: Some("S".into()),
            ..Record::default()
        };
        let e: serde_json::Value =
            serde_json::from_str(&event(&r, 0, "enforce", "sha256:rev", Some(200))).unwrap();
        assert_eq!(e["decision"], "deny");
        assert_eq!(e["tool"], "read_file");
        assert_eq!(e["arguments"]["revealed"]["path"], "/x");
        assert_eq!(e["identity"]["subject"], "alice");
        assert_eq!(e["policy_revision"], "sha256:rev");
        assert_eq!(e["http_status"], 200);
        assert!(e.get("prompt").is_none());
    }

    #[test]
    fn ids_are_distinct() {
        let mut ids = Ids::new([7; 32]);
        let a = ids.next_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, ids.next_id());
    }
}

/// Where audit events wait for the HTTP collector: a bounded queue sent in
/// batches, one batch in flight at a time, a failed batch retried up to
/// `max_retries` times. Nothing is dropped silently: every event that cannot
/// be queued or delivered is counted in `dropped` (the adapter exports it as
/// a metric and logs it).
#[derive(Debug)]
pub struct Outbox {
    queue: std::collections::VecDeque<String>,
    limit: usize,
    batch: usize,
    max_retries: u32,
    in_flight: Option<Batch>,
    /// Events dropped so far (queue full, or delivery failed for good).
    pub dropped: u64,
}

#[derive(Debug)]
struct Batch {
    events: Vec<String>,
    attempts: u32,
    sent: bool,
}

impl Outbox {
    pub fn new(limit: usize, batch: usize, max_retries: u32) -> Outbox {
        Outbox {
            queue: std::collections::VecDeque::new(),
            limit: limit.max(1),
            batch: batch.max(1),
            max_retries,
            in_flight: None,
            dropped: 0,
        }
    }

    /// Queue an event; `false` (and counted) when the queue is full.
    pub fn push(&mut self, event: String) -> bool {
        if self.queue.len() >= self.limit {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back(event);
        true
    }

    pub fn queued(&self) -> usize {
        self.queue.len() + self.in_flight.as_ref().map_or(0, |b| b.events.len())
    }

    /// The next body to send (newline-delimited JSON), if nothing is in
    /// flight: a batch to retry, or a new one.
    pub fn next_batch(&mut self) -> Option<String> {
        match &mut self.in_flight {
            Some(b) if b.sent => None,
            Some(b) => {
                b.sent = true;
                Some(b.events.join("\n") + "\n")
            }
            None => {
                if self.queue.is_empty() {
                    return None;
                }
                let n = self.batch.min(self.queue.len());
                let events: Vec<String> = self.queue.drain(..n).collect();
                let body = events.join("\n") + "\n";
                self.in_flight = Some(Batch {
                    events,
                    attempts: 0,
                    sent: true,
                });
                Some(body)
            }
        }
    }

    /// The in-flight batch was delivered (`ok`) or not. Returns how many
    /// events were dropped for good.
    pub fn on_result(&mut self, ok: bool) -> u64 {
        let Some(mut b) = self.in_flight.take() else {
            return 0;
        };
        if ok {
            return 0;
        }
        b.attempts += 1;
        if b.attempts > self.max_retries {
            let n = b.events.len() as u64;
            self.dropped += n;
            return n;
        }
        b.sent = false;
        self.in_flight = Some(b);
        0
    }
}

#[cfg(test)]
mod outbox_tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn batches_retries_and_drops_are_counted() {
        let mut o = Outbox::new(5, 2, 1);
        for i in 0..6 {
            o.push(format!("e{i}"));
        }
        assert_eq!(o.dropped, 1, "the sixth event did not fit");
        assert_eq!(o.next_batch().as_deref(), Some("e0\ne1\n"));
        assert_eq!(o.next_batch(), None, "one batch in flight at a time");
        assert_eq!(o.on_result(false), 0);
        assert_eq!(o.next_batch().as_deref(), Some("e0\ne1\n"), "retried");
        assert_eq!(o.on_result(false), 2, "out of retries: dropped");
        assert_eq!(o.dropped, 3);
        assert_eq!(o.next_batch().as_deref(), Some("e2\ne3\n"));
        assert_eq!(o.on_result(true), 0);
        assert_eq!(o.next_batch().as_deref(), Some("e4\n"));
        assert_eq!(o.on_result(true), 0);
        assert_eq!(o.next_batch(), None);
        assert_eq!(o.queued(), 0);
    }
}
