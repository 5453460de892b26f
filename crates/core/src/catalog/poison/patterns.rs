//! The poisoning patterns, compiled once per VM, and why they could not be.

use crate::detect;
use once_cell::sync::Lazy;
use regex::Regex;

pub(super) struct Patterns {
    pub(super) sensitive_file: Regex,
    pub(super) use_verb: Regex,
    pub(super) pass_as_param: Regex,
    pub(super) pass_context: Regex,
    pub(super) also_send: Regex,
    pub(super) do_not_mention: Regex,
    pub(super) when_tool: Regex,
    pub(super) other_tools: Regex,
}

/// Patterns run on the lower-cased text (same offsets), so they are
/// lower-cased too and need no `(?i)`: the regex keeps its literal
/// prefilters. `[^\n]` also stops at the NUL between strings.
fn re(p: &str) -> Result<Regex, PoisonError> {
    let p = p
        .replace("%s", r"[ \t\r\n]+")
        .replace("%b", r"(?-u:\b)")
        .replace("(?i-u:", "(?:")
        .replace(r"[^\n]", r"[^\n\x00]")
        .to_ascii_lowercase();
    Regex::new(&p).map_err(PoisonError::Pattern)
}

/// Built once per VM, on first use (or at [`init`]): `Regex` is `Sync`, so
/// one table serves every thread of a native host too.
pub(super) static PATTERNS: Lazy<Result<Patterns, PoisonError>> = Lazy::new(|| {
    Ok(Patterns {
        sensitive_file: re(
            r#"(?i-u:\.ssh(?:/|%b)|%bid_(?:rsa|dsa|ecdsa|ed25519)%b|\.aws/(?:credentials|config)|(?:^|[ \t\r\n\x00/"'`(])\.env(?:\.[a-z]+)?%b|/etc/(?:passwd|shadow|sudoers)|\.netrc|\.npmrc|\.pypirc|\.git-credentials|\.docker/config\.json|\.kube/config|%bmcp\.json|claude_desktop_config\.json|\.cursor/|%bcredentials\.json|\.pgpass|%bwallet\.dat|\.bash_history|\.zsh_history|\.gnupg|keychain)"#,
        )?,
        use_verb: re(
            r"(?i-u:%b(?:read|cat|open|load|include|attach|pass|send|upload|copy|contents?|print|output|fetch|get)%b)",
        )?,
        pass_as_param: re(
            r#"(?i-u:%b(?:pass|put|include|insert|add|provide|send|place|append|embed|supply)(?:%s(?:the|its|their|all|full|entire|complete|file|this|that|whole|raw)){0,3}%s(?:content|contents|text|value|data|output|result|conversation|chat%shistory|history|messages|system%sprompt)s?%b)[^\n]{0,80}?(?i-u:%b(?:as|in|into|inside|within|to|via)%s(?:(?:the|a)%s)?)(?:[`'"][A-Za-z_][A-Za-z0-9_]{0,40}[`'"]|[A-Za-z_][A-Za-z0-9_]{0,40}(?i-u:%s(?:parameter|argument|field|param|arg)%b))"#,
        )?,
        pass_context: re(
            r"(?i-u:%b(?:read|cat)%b|conversation|chat%shistory|previous%smessages|system%sprompt|environment%svariables|%bssh%b|private%skeys?|credentials)",
        )?,
        also_send: re(
            r"(?i-u:%b(?:always|also|secretly|silently|additionally|quietly)%s(?:send|forward|bcc|cc|copy|email|post|upload|transmit|report)%b)[^\n]{0,80}?(?:(?i-u:https?)://|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,24})",
        )?,
        do_not_mention: re(
            r"(?i-u:%b(?:do%snot|don't|dont|never)%s(?:mention|tell|reveal|disclose|inform|notify)%s(?:that|this|it|anything|about)%b|%b(?:could|would|might)%s(?:even%s)?(?:upset|alarm|worry|scare)%sthe%suser%b)",
        )?,
        when_tool: re(
            r#"(?i-u:%bwhen(?:ever)?%s(?:(?:the|any|an?|other)%s)?)[`'"]?([A-Za-z0-9_.-]{2,64})[`'"]?(?i-u:%s(?:tool|function)%s(?:is|gets|are)%s(?:used|called|invoked|run|executed)%b)"#,
        )?,
        other_tools: re(
            r"(?i-u:%b(?:before|after|instead%sof)%s(?:using|calling|invoking|running)%s(?:(?:any|all|every)%s)?other%stools?%b|%b(?:all|any|every)%sother%stools?%s(?:must|should|shall)%b)",
        )?,
    })
});

/// Compile the patterns now (they compile on first use otherwise).
pub fn init() -> Result<(), PoisonError> {
    detect::init().map_err(|e| PoisonError::Detectors(e.to_string()))?;
    PATTERNS.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// Why the scanners could not be built (a bug in a shipped pattern).
#[derive(Debug, Clone)]
pub enum PoisonError {
    /// A poisoning pattern does not compile.
    Pattern(regex::Error),
    /// The result detectors the scan shares do not compile (their message).
    Detectors(String),
}

impl std::fmt::Display for PoisonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoisonError::Pattern(e) => write!(f, "{e}"),
            PoisonError::Detectors(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PoisonError {}
