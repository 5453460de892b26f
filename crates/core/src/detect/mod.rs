//! Built-in detectors over the text of results the server sends back
//! (`tools/call`, `resources/read`, `prompts/get`): secrets, PII and
//! prompt-injection markers. Their findings go to the policy as
//! `input.mcp.findings` (offsets and detector names, never the matched
//! text), and the policy may ask for the spans to be redacted
//! ([`redact_result`]). docs/detectors.md lists every detector.
//!
//! Matching uses the `regex` crate (finite automata: time linear in the
//! input, no backtracking blow-up) compiled once per VM. Each pattern is
//! written for the crate as the module builds it (no Unicode tables:
//! `(?-u:\b)` word boundaries, ASCII classes, `(?i-u:…)` for case
//! insensitivity). A match is then checked by code where a regular
//! expression cannot say enough (Luhn, IBAN mod-97, JWT header, entropy).
//!
//! Bounds: at most [`MAX_SCAN_BYTES`] of each string are scanned, at most
//! [`MAX_RESULT_SCAN_BYTES`] over one result, and at most [`MAX_FINDINGS`]
//! findings are reported for one result. What a bound leaves unscanned is
//! reported as a finding of kind `"limit"` so a policy can fail closed.
//!
//! The folder, by responsibility:
//! - `finding.rs`: [`Finding`] and [`ResultFinding`], what is reported;
//! - `spec.rs`: the detector table (patterns, groups, checks, case);
//! - `checks.rs`: the code a match must pass where a pattern cannot say
//!   enough;
//! - `scan.rs`: the table compiled once per VM ([`init`]) and one text
//!   scanned ([`scan_text`]);
//! - `walk.rs`: a result's strings walked, scanned as one text and the
//!   findings mapped back to JSON pointers ([`scan_result`]);
//! - `redact.rs`: spans replaced in a text or in a result
//!   ([`redact`], [`redact_result`]).

mod checks;
mod finding;
mod redact;
mod scan;
mod spec;
mod walk;

pub use finding::{Finding, ResultFinding};
pub use redact::{redact, redact_result};
pub(crate) use scan::{floor_boundary, scan_text_unbounded};
pub use scan::{init, scan_text, PatternError, MAX_SCAN_BYTES};
pub(crate) use walk::pointer_token;
pub use walk::{scan_result, MAX_FINDINGS, MAX_RESULT_SCAN_BYTES};

#[cfg(test)]
mod tests;
