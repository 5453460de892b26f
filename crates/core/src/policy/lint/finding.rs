//! A lint finding and how serious it is.

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The policy decides differently from OPA: refuse it at configuration time.
    Error,
    /// Probably a mistake: report it.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding, located in a module (name as given to [`lint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub module: String,
    pub line: u32,
    pub column: u32,
    pub severity: Severity,
    /// Stable identifier (`input-path`, `sprintf-verb`, …).
    pub code: &'static str,
    pub message: String,
    /// A suggested rewrite, when there is one.
    pub suggestion: Option<String>,
}
