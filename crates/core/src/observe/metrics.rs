//! Metric names (Envoy stats; docs/metrics.md). Names carry their labels as
//! `.<label>.<value>` segments, which the Envoy bootstrap's `stats_tags`
//! turn into Prometheus labels; values are sanitised so they cannot break
//! the name, and the number of distinct tools and principals is capped per
//! VM so a client cannot explode the stats' cardinality.

use crate::observe::audit::Record;
use std::collections::BTreeSet;

/// Decisions: `mcp_policy_decisions.method.<m>.tool.<t>.outcome.<o>`.
pub const DECISIONS: &str = "mcp_policy_decisions";
/// Denials per identity: `mcp_policy_denials.principal.<p>`.
pub const DENIALS: &str = "mcp_policy_denials";
/// Protocol rejections: `mcp_policy_rejections.reason.<r>`.
pub const REJECTIONS: &str = "mcp_policy_rejections";
/// Policy evaluation errors (each denied the message, or would have in
/// audit mode): `mcp_policy_errors.kind.<builtin|conflict|limit|output|engine>`.
pub const ERRORS: &str = "mcp_policy_errors";
/// Policy evaluation time, microseconds (histogram).
pub const EVAL_US: &str = "mcp_policy_eval_us";
/// Configuration loads and refusals.
pub const CONFIG_LOADS: &str = "mcp_policy_config_loads";
pub const CONFIG_FAILURES: &str = "mcp_policy_config_failures";
/// Audit events delivered to, and dropped on the way to, the HTTP collector.
pub const AUDIT_SENT: &str = "mcp_policy_audit_sent";
pub const AUDIT_DROPPED: &str = "mcp_policy_audit_dropped";
/// Policy bundles loaded (swapped in), refused or failed to download, and
/// polls answered 304 (counted per VM: every VM polls).
pub const BUNDLE_LOADS: &str = "mcp_policy_bundle_loads";
pub const BUNDLE_FAILURES: &str = "mcp_policy_bundle_failures";
pub const BUNDLE_NOT_MODIFIED: &str = "mcp_policy_bundle_not_modified";
/// Gauge: VMs serving each bundle revision,
/// `mcp_policy_bundle_active.revision.<r>`.
pub const BUNDLE_ACTIVE: &str = "mcp_policy_bundle_active";

/// Human approvals: `mcp_policy_approvals.status.<asked|approved|declined|expired|forged|mismatch|unavailable>`.
pub const APPROVALS: &str = "mcp_policy_approvals";

const MAX_TOOLS: usize = 200;
const MAX_PRINCIPALS: usize = 100;

/// A label value: `[A-Za-z0-9_-]`, at most 64 characters, `-` if empty.
pub fn sanitize(v: &str) -> String {
    let s: String = v
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// Caps the distinct values a label may take (per VM).
#[derive(Default, Debug)]
pub struct Cardinality {
    tools: BTreeSet<String>,
    principals: BTreeSet<String>,
}

impl Cardinality {
    fn cap(set: &mut BTreeSet<String>, max: usize, v: String) -> String {
        if set.contains(&v) || set.len() < max {
            set.insert(v.clone());
            v
        } else {
            "other".into()
        }
    }

    /// The counters one decision increments.
    pub fn counters(&mut self, r: &Record) -> Vec<String> {
        let mut out = Vec::new();
        if r.kind == "rejected" {
            let reason = r
                .reasons
                .first()
                .map(|s| rejection_kind(s))
                .unwrap_or("other");
            out.push(format!("{REJECTIONS}.reason.{reason}"));
            return out;
        }
        let asked = r.approval.as_deref() == Some("asked");
        let outcome = match (r.allowed, r.dry_run.is_empty()) {
            (false, _) if asked => "confirm",
            (false, _) => "deny",
            (true, false) => "dry_run",
            (true, true) => "allow",
        };
        let name = r
            .tool
            .as_deref()
            .or(r.prompt.as_deref())
            .or(r.resource.as_deref())
            .unwrap_or("");
        let tool = Self::cap(&mut self.tools, MAX_TOOLS, sanitize(name));
        // What the server sent is counted apart: `response_<method>`.
        let method = if r.server_to_client {
            format!("response_{}", r.method)
        } else {
            r.method.clone()
        };
        out.push(format!(
            "{DECISIONS}.method.{}.tool.{tool}.outcome.{outcome}",
            sanitize(&method)
        ));
        if let Some(kind) = r
            .reasons
            .iter()
            .find_map(|x| crate::policy::engine::error_kind_of_reason(x))
        {
            out.push(format!("{ERRORS}.kind.{kind}"));
        }
        if let Some(status) = &r.approval {
            out.push(format!("{APPROVALS}.status.{}", sanitize(status)));
        }
        if !r.allowed && !r.server_to_client && !asked {
            let who = r
                .subject
                .as_deref()
                .map(|s| format!("sub_{s}"))
                .or_else(|| r.principal.as_deref().map(|p| format!("peer_{p}")))
                .unwrap_or_else(|| "anonymous".into());
            let who = Self::cap(&mut self.principals, MAX_PRINCIPALS, sanitize(&who));
            out.push(format!("{DENIALS}.principal.{who}"));
        }
        out
    }
}

/// The kind of a protocol rejection, from its message.
fn rejection_kind(msg: &str) -> &'static str {
    if msg.starts_with("request body is not valid JSON") {
        "not_json"
    } else if msg.starts_with("invalid JSON-RPC message") {
        "invalid_jsonrpc"
    } else if msg.starts_with("Header mismatch") {
        "header_mismatch"
    } else if msg.contains("byte limit") {
        "too_large"
    } else if msg.contains("Content-Encoding") {
        "content_encoding"
    } else if msg.contains("Content-Type") {
        "content_type"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn server_to_client_decisions_are_counted_apart() {
        let mut c = Cardinality::default();
        let r = Record {
            kind: "response".into(),
            method: "tools/call".into(),
            tool: Some("fetch".into()),
            allowed: false,
            server_to_client: true,
            ..Record::default()
        };
        assert_eq!(
            c.counters(&r),
            ["mcp_policy_decisions.method.response_tools_call.tool.fetch.outcome.deny"]
        );
    }

    #[test]
    fn names_are_sanitised_and_capped() {
        let mut c = Cardinality::default();
        let r = Record {
            kind: "request".into(),
            method: "tools/call".into(),
            tool: Some("get.weather/v2".into()),
            allowed: false,
            subject: Some("alice@example.com".into()),
            ..Record::default()
        };
        assert_eq!(
            c.counters(&r),
            vec![
                "mcp_policy_decisions.method.tools_call.tool.get_weather_v2.outcome.deny"
                    .to_string(),
                "mcp_policy_denials.principal.sub_alice_example_com".to_string(),
            ]
        );
        for i in 0..300 {
            let r = Record {
                kind: "request".into(),
                method: "tools/call".into(),
                tool: Some(format!("t{i}")),
                allowed: true,
                ..Record::default()
            };
            let names = c.counters(&r);
            if i >= 199 {
                assert!(names[0].contains(".tool.other."), "{names:?}");
            }
        }
        let rej = Record {
            kind: "rejected".into(),
            reasons: vec!["Header mismatch: x".into()],
            ..Record::default()
        };
        assert_eq!(
            c.counters(&rej),
            vec!["mcp_policy_rejections.reason.header_mismatch".to_string()]
        );
    }
}
