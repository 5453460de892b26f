//! What can go wrong compiling or evaluating a policy, and how each
//! problem is worded (`file:line:col: message` at configure time, `<kind>
//! error at file:line:col: message` per message; tests, audit logs and the
//! metrics read these words back).

use std::fmt;

/// What kind of problem a [`PolicyError`] is. Evaluation errors are
/// counted by kind (`mcp_policy_errors.kind.<kind>`, docs/metrics.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The policy does not compile or load (configure time).
    Compile,
    /// A builtin or an operator failed on its operands (`to_number("abc")`,
    /// `1 / 0`, `"a" + 1`, a regular expression that does not compile…).
    Builtin,
    /// A complete rule or function produced two different values.
    Conflict,
    /// The instruction budget or the time budget ran out.
    Limit,
    /// A decision rule has a value of the wrong shape (`deny` not a set of
    /// strings, a malformed `denial`…).
    Output,
    /// Anything else the engine reported.
    Engine,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Compile => "compile",
            ErrorKind::Builtin => "builtin",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Limit => "limit",
            ErrorKind::Output => "output",
            ErrorKind::Engine => "engine",
        }
    }
}

/// A problem found while compiling modules and data, or while evaluating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// `module:line:column` of the problem, when it is in a module.
    pub location: Option<String>,
    /// One line saying what is wrong.
    pub message: String,
    pub kind: ErrorKind,
}

impl PolicyError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        PolicyError {
            location: None,
            message: message.into(),
            kind: ErrorKind::Compile,
        }
    }

    pub(super) fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// From a regorus error, whose text looks like `--> file:line:col`,
    /// the source excerpt, then `error: message`, possibly nested (a
    /// compilation error wrapping the specific one). The innermost location
    /// and every message are kept, on one line.
    pub fn from_regorus(err: &dyn fmt::Display, module: Option<&str>) -> Self {
        let text = err.to_string();
        let mut location = None;
        let mut messages: Vec<&str> = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(loc) = t.strip_prefix("--> ") {
                location = Some(loc.trim().to_string());
            } else if let Some(m) = t.strip_prefix("error: ") {
                let m = m.trim().trim_end_matches(':').trim();
                if !m.is_empty() {
                    messages.push(m);
                }
            }
        }
        let message = if messages.is_empty() {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            messages.join(": ")
        };
        PolicyError {
            location: location.or_else(|| module.map(str::to_string)),
            message,
            kind: ErrorKind::Compile,
        }
    }
}

impl fmt::Display for PolicyError {
    /// Configure-time problems read `file:line:col: message`; evaluation
    /// errors say their kind first (`builtin error at a.rego:4:12: to_number:
    /// could not parse string as number`), which the metrics read back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.location) {
            (ErrorKind::Compile, Some(l)) => write!(f, "{l}: {}", self.message),
            (ErrorKind::Compile, None) => write!(f, "{}", self.message),
            (k, Some(l)) => write!(f, "{} error at {l}: {}", k.as_str(), self.message),
            (k, None) => write!(f, "{} error: {}", k.as_str(), self.message),
        }
    }
}

/// The kind of a `policy evaluation failed: …` reason (see
/// [`PolicyError`]'s `Display`), for the `mcp_policy_errors` counter.
pub fn error_kind_of_reason(reason: &str) -> Option<&'static str> {
    let rest = reason.strip_prefix("policy evaluation failed: ")?;
    [
        ErrorKind::Builtin,
        ErrorKind::Conflict,
        ErrorKind::Limit,
        ErrorKind::Output,
        ErrorKind::Engine,
    ]
    .into_iter()
    .map(ErrorKind::as_str)
    .find(|k| {
        rest.strip_prefix(k)
            .is_some_and(|r| r.starts_with(" error"))
    })
    .or(Some("engine"))
}

impl std::error::Error for PolicyError {}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn error_kinds_are_read_back_from_reasons() {
        assert_eq!(
            error_kind_of_reason("policy evaluation failed: builtin error at a.rego:1:2: x"),
            Some("builtin")
        );
        assert_eq!(
            error_kind_of_reason("policy evaluation failed: limit error: Execution stopped"),
            Some("limit")
        );
        assert_eq!(error_kind_of_reason("tool is blocked"), None);
    }
}
