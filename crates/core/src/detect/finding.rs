//! What a detector reports: a span in one text ([`Finding`]) and, for a
//! result, the same span with the JSON pointer of the string it is in
//! ([`ResultFinding`], the shape `input.mcp.findings` gives the policy).

use serde::Serialize;

/// One detected span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `"secret"`, `"pii"`, `"injection"`, or `"limit"` (a bound was hit:
    /// something was not scanned).
    pub kind: &'static str,
    /// The detector, e.g. `"aws_access_key"`, `"email"`,
    /// `"ignore_instructions"`.
    pub detector: &'static str,
    /// Byte offsets into the scanned text (on char boundaries).
    pub start: usize,
    pub end: usize,
}

/// A finding in one string of a result, with that string's JSON pointer
/// (RFC 6901) into the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultFinding {
    pub pointer: String,
    pub finding: Finding,
}

impl ResultFinding {
    /// The policy input shape: `{"kind","detector","pointer","start","end"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.finding.kind,
            "detector": self.finding.detector,
            "pointer": self.pointer,
            "start": self.finding.start,
            "end": self.finding.end,
        })
    }
}
