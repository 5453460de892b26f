//! Reading the decision out of the entry rule's value: each output's shape
//! is checked, and a wrong one is an error of kind `output` (the message is
//! denied).

use super::decision::{
    Denial, KillOrder, PolicyResult, RateLimitOrder, Redact, MAX_RATE_LIMIT_COST,
};
use regorus::Value;
use std::fmt;

/// A decision output whose value the filter cannot use: the evaluation is
/// an error of kind `output`, and the message is denied. The text names the
/// output and the problem (`` `denial.code` must be an integer, got "x" ``).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputError {
    /// An output, or a field of one, holds a value of the wrong type or
    /// form: `` `output` must be expected, got got `` (a type name, or the
    /// value itself).
    WrongType {
        output: String,
        expected: String,
        got: String,
    },
    /// A value of the right type that is not allowed (a reserved JSON-RPC
    /// code, a header the proxy owns, an empty descriptor…); `message` says
    /// which, naming the output's field.
    Invalid { output: String, message: String },
}

impl OutputError {
    /// The decision output at fault (`denial`, `rate_limit`, a header rule…),
    /// or the field of it (`denial.code`).
    pub fn output(&self) -> &str {
        match self {
            OutputError::WrongType { output, .. } | OutputError::Invalid { output, .. } => output,
        }
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::WrongType {
                output,
                expected,
                got,
            } => write!(f, "`{output}` must be {expected}, got {got}"),
            OutputError::Invalid { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for OutputError {}

fn wrong(
    output: impl Into<String>,
    expected: impl Into<String>,
    got: impl fmt::Display,
) -> OutputError {
    OutputError::WrongType {
        output: output.into(),
        expected: expected.into(),
        got: got.to_string(),
    }
}

fn invalid(output: impl Into<String>, message: String) -> OutputError {
    OutputError::Invalid {
        output: output.into(),
        message,
    }
}

/// The entry rule's value, read in one pass: each decision output by name
/// (`Undefined` when the policy does not define it). Indexing the value by
/// name would build a key value per output and per decision.
struct Outputs<'a> {
    allow: &'a Value,
    deny: &'a Value,
    denial: &'a Value,
    rewrite: &'a Value,
    request_headers: &'a Value,
    response_headers: &'a Value,
    kill: &'a Value,
    rate_limit: &'a Value,
    clear_kill: &'a Value,
    reveal: &'a Value,
    dry_run: &'a Value,
    confirm: &'a Value,
    visible: &'a Value,
    redact: &'a Value,
    labels: &'a Value,
}

static UNDEFINED: Value = Value::Undefined;

impl<'a> Outputs<'a> {
    fn of(out: &'a Value) -> Outputs<'a> {
        let u = &UNDEFINED;
        let mut o = Outputs {
            allow: u,
            deny: u,
            denial: u,
            rewrite: u,
            request_headers: u,
            response_headers: u,
            kill: u,
            rate_limit: u,
            clear_kill: u,
            reveal: u,
            dry_run: u,
            confirm: u,
            visible: u,
            redact: u,
            labels: u,
        };
        let Value::Object(fields) = out else {
            return o;
        };
        for (k, v) in fields.iter() {
            let Value::String(name) = k else { continue };
            let slot = match name.as_ref() {
                "allow" => &mut o.allow,
                "deny" => &mut o.deny,
                "denial" => &mut o.denial,
                "rewrite" => &mut o.rewrite,
                "request_headers" => &mut o.request_headers,
                "response_headers" => &mut o.response_headers,
                "kill" => &mut o.kill,
                "rate_limit" => &mut o.rate_limit,
                "clear_kill" => &mut o.clear_kill,
                "reveal" => &mut o.reveal,
                "dry_run" => &mut o.dry_run,
                "confirm" => &mut o.confirm,
                "visible" => &mut o.visible,
                "redact" => &mut o.redact,
                "labels" => &mut o.labels,
                _ => continue,
            };
            *slot = v;
        }
        o
    }
}

pub(super) fn read_decision(out: &Value) -> Result<PolicyResult, OutputError> {
    let out = Outputs::of(out);
    let mut r = read_allow_deny(&out)?;
    r.denial = read_denial(out.denial)?;
    r.rewrite = match out.rewrite {
        Value::Undefined | Value::Null => Vec::new(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| match k {
                Value::String(k) if !k.is_empty() => Ok((k.to_string(), v.clone())),
                _ => Err(invalid(
                    "rewrite",
                    "`rewrite` keys must be non-empty strings".to_string(),
                )),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(wrong("rewrite", "an object", type_name(other))),
    };
    r.request_headers = read_headers(out.request_headers, "request_headers")?;
    r.response_headers = read_headers(out.response_headers, "response_headers")?;
    r.kill = read_kill(out.kill)?;
    r.rate_limit = read_rate_limit(out.rate_limit)?;
    r.clear_kill = matches!(out.clear_kill, Value::Bool(true));
    r.reveal = string_set(out.reveal, "reveal")?;
    r.dry_run = string_set(out.dry_run, "dry_run")?;
    r.confirm = string_set(out.confirm, "confirm")?;
    r.visible = match out.visible {
        Value::Undefined | Value::Null => None,
        Value::Bool(b) => Some(*b),
        other => return Err(wrong("visible", "a boolean", type_name(other))),
    };
    r.redact = match out.redact {
        Value::Undefined | Value::Null | Value::Bool(false) => Redact::None,
        Value::Bool(true) => Redact::All,
        v @ (Value::Set(_) | Value::Array(_)) => {
            let names = string_set(v, "redact")?;
            if names.is_empty() {
                Redact::None
            } else {
                Redact::Only(names)
            }
        }
        other => {
            return Err(wrong(
                "redact",
                "true or a set of detector names/kinds",
                type_name(other),
            ))
        }
    };
    r.labels = match out.labels {
        Value::Undefined | Value::Null => Vec::new(),
        Value::Set(s) => s.iter().map(reason_text).collect(),
        Value::Array(a) => a.iter().map(reason_text).collect(),
        other => return Err(wrong("labels", "a set of strings", type_name(other))),
    };
    Ok(r)
}

fn string_set(v: &Value, rule: &str) -> Result<Vec<String>, OutputError> {
    match v {
        Value::Undefined | Value::Null => Ok(Vec::new()),
        Value::Set(s) => Ok(s.iter().map(reason_text).collect()),
        Value::Array(a) => Ok(a.iter().map(reason_text).collect()),
        other => Err(wrong(rule, "a set of strings", type_name(other))),
    }
}

fn read_rate_limit(v: &Value) -> Result<Option<RateLimitOrder>, OutputError> {
    let o = match v {
        Value::Undefined | Value::Null => return Ok(None),
        Value::Object(o) => o,
        other => return Err(wrong("rate_limit", "an object", type_name(other))),
    };
    for k in o.keys() {
        if !matches!(k, Value::String(s) if matches!(s.as_ref(), "entries" | "cost")) {
            return Err(invalid(
                "rate_limit",
                format!("`rate_limit` has an unknown field {k} (expected `entries` and `cost`)"),
            ));
        }
    }
    let entries = match &v["entries"] {
        Value::Object(e) if !e.is_empty() => e,
        Value::Object(_) => {
            return Err(invalid(
                "rate_limit",
                "`rate_limit.entries` is empty".into(),
            ))
        }
        other => return Err(wrong("rate_limit.entries", "an object", type_name(other))),
    };
    let mut out = Vec::with_capacity(entries.len());
    for (k, val) in entries.iter() {
        let Value::String(key) = k else {
            return Err(invalid(
                "rate_limit",
                "`rate_limit.entries` keys must be strings".into(),
            ));
        };
        if key.is_empty()
            || key.len() > 32
            || key.as_ref() == "cost"
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                "rate_limit",
                format!(
                "`rate_limit.entries`: {key:?} is not a valid key ([a-z0-9_], 1 to 32 characters, not \"cost\")"
            )));
        }
        let value = match val {
            Value::String(s) => s.to_string(),
            Value::Number(_) | Value::Bool(_) => val.to_string(),
            other => {
                return Err(wrong(
                    format!("rate_limit.entries.{key}"),
                    "a string",
                    type_name(other),
                ))
            }
        };
        if value.is_empty() || value.len() > 256 || value.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(invalid(
                "rate_limit",
                format!(
                    "`rate_limit.entries.{key}` must be 1 to 256 bytes without control characters"
                ),
            ));
        }
        out.push((key.to_string(), value));
    }
    let cost = match &v["cost"] {
        Value::Undefined => 1,
        n => n
            .as_u64()
            .ok()
            .filter(|c| *c <= MAX_RATE_LIMIT_COST)
            .ok_or_else(|| {
                wrong(
                    "rate_limit.cost",
                    format!("an integer from 0 to {MAX_RATE_LIMIT_COST}"),
                    n,
                )
            })?,
    };
    Ok(Some(RateLimitOrder { entries: out, cost }))
}

fn read_kill(v: &Value) -> Result<Option<KillOrder>, OutputError> {
    match v {
        Value::Undefined | Value::Null | Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(KillOrder {
            reason: "killed by policy".into(),
            principal: false,
            ttl_seconds: None,
        })),
        Value::String(s) => Ok(Some(KillOrder {
            reason: s.to_string(),
            principal: false,
            ttl_seconds: None,
        })),
        Value::Object(_) => {
            let reason = match &v["reason"] {
                Value::String(s) => s.to_string(),
                Value::Undefined => "killed by policy".to_string(),
                other => return Err(wrong("kill.reason", "a string", type_name(other))),
            };
            let principal = match &v["scope"] {
                Value::Undefined => false,
                Value::String(s) if s.as_ref() == "session" => false,
                Value::String(s) if s.as_ref() == "principal" => true,
                other => return Err(wrong("kill.scope", "\"session\" or \"principal\"", other)),
            };
            let ttl_seconds = match &v["ttl_seconds"] {
                Value::Undefined => None,
                n => Some(
                    n.as_u64()
                        .ok()
                        .filter(|t| *t > 0)
                        .ok_or_else(|| wrong("kill.ttl_seconds", "a positive integer", n))?,
                ),
            };
            Ok(Some(KillOrder {
                reason,
                principal,
                ttl_seconds,
            }))
        }
        other => Err(wrong(
            "kill",
            "a string, true or an object",
            type_name(other),
        )),
    }
}

fn read_denial(v: &Value) -> Result<Denial, OutputError> {
    let mut d = Denial::default();
    match v {
        Value::Undefined | Value::Null => return Ok(d),
        Value::Object(_) => {}
        other => return Err(wrong("denial", "an object", type_name(other))),
    }
    match &v["as"] {
        Value::Undefined | Value::Null => {}
        Value::String(s) if s.as_ref() == "error" => {}
        Value::String(s) if s.as_ref() == "tool_result" => d.as_tool_result = true,
        other => return Err(wrong("denial.as", "\"error\" or \"tool_result\"", other)),
    }
    match &v["code"] {
        Value::Undefined | Value::Null => {}
        n => {
            let code = n
                .as_i64()
                .map_err(|_| wrong("denial.code", "an integer", n))?;
            if (-32768..=-32000).contains(&code) {
                return Err(invalid(
                    "denial",
                    format!(
                        "`denial.code` {code} is in the range JSON-RPC reserves (-32768 to -32000)"
                    ),
                ));
            }
            d.code = Some(code);
        }
    }
    match &v["message"] {
        Value::Undefined | Value::Null => {}
        Value::String(s) => d.message = Some(s.to_string()),
        other => return Err(wrong("denial.message", "a string", type_name(other))),
    }
    match &v["http_status"] {
        Value::Undefined | Value::Null => {}
        n => {
            let status = n
                .as_u32()
                .ok()
                .filter(|s| (200..=599).contains(s))
                .ok_or_else(|| wrong("denial.http_status", "an HTTP status (200-599)", n))?;
            d.http_status = Some(status);
        }
    }
    Ok(d)
}

fn read_headers(v: &Value, rule: &str) -> Result<Vec<(String, String)>, OutputError> {
    let o = match v {
        Value::Undefined | Value::Null => return Ok(Vec::new()),
        Value::Object(o) => o,
        other => return Err(wrong(rule, "an object", type_name(other))),
    };
    let mut out = Vec::new();
    for (k, v) in o.iter() {
        let Value::String(name) = k else {
            return Err(invalid(rule, format!("`{rule}` names must be strings")));
        };
        let name = name.to_ascii_lowercase();
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(invalid(
                rule,
                format!("`{rule}`: {name:?} is not a valid header name"),
            ));
        }
        if name.starts_with(':')
            || matches!(
                name.as_str(),
                "content-length" | "host" | "transfer-encoding"
            )
        {
            return Err(invalid(rule, format!("`{rule}` may not set {name}")));
        }
        let value = reason_text(v);
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(invalid(
                rule,
                format!("`{rule}`: the value of {name} contains a line break"),
            ));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn read_allow_deny(out: &Outputs<'_>) -> Result<PolicyResult, OutputError> {
    let allow = matches!(out.allow, Value::Bool(true));
    let deny = match out.deny {
        Value::Undefined | Value::Null | Value::Bool(false) => Vec::new(),
        Value::Bool(true) => vec!["denied by policy".to_string()],
        Value::Set(s) => s.iter().map(reason_text).collect(),
        Value::Array(a) => a.iter().map(reason_text).collect(),
        other => return Err(wrong("deny", "a set of strings", type_name(other))),
    };
    Ok(PolicyResult {
        allow,
        deny,
        ..PolicyResult::default()
    })
}

fn reason_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}
