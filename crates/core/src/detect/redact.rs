//! Redaction: replacing the spans of findings with
//! `[REDACTED:<detector>]`, in one text ([`redact`]) or in place in a
//! result, at the findings' pointers ([`redact_result`]).

use super::finding::{Finding, ResultFinding};

/// Replace each finding's span with `[REDACTED:<detector>]`. Findings are
/// expected sorted and non-overlapping (as [`scan_text`](super::scan_text)
/// returns them); one that overlaps an earlier one, is empty or does not
/// fit is skipped.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let mut spans: Vec<(usize, usize, &str)> = findings
        .iter()
        .map(|f| (f.start, f.end, f.detector))
        .collect();
    spans.sort_by_key(|s| s.0);
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (s, e, d) in spans {
        if s < pos || s >= e {
            continue;
        }
        let (Some(keep), Some(_)) = (text.get(pos..s), text.get(s..e)) else {
            continue;
        };
        out.push_str(keep);
        out.push_str("[REDACTED:");
        out.push_str(d);
        out.push(']');
        pos = e;
    }
    out.push_str(text.get(pos..).unwrap_or(""));
    out
}

/// Replace, in place, the spans of the findings `select` picks (strings at
/// those pointers only) with `[REDACTED:<detector>]`. Returns the number of
/// spans replaced. A string whose spans do not fit it any more (it changed
/// since the scan) is replaced whole by `[REDACTED]`, never left as is.
pub fn redact_result(
    result: &mut serde_json::Value,
    findings: &[ResultFinding],
    select: &dyn Fn(&Finding) -> bool,
) -> usize {
    let mut by_pointer: std::collections::BTreeMap<&str, Vec<Finding>> = Default::default();
    for f in findings {
        if f.finding.start < f.finding.end && select(&f.finding) {
            by_pointer
                .entry(f.pointer.as_str())
                .or_default()
                .push(f.finding.clone());
        }
    }
    let mut n = 0;
    for (pointer, mut spans) in by_pointer {
        let Some(serde_json::Value::String(s)) = result.pointer_mut(pointer) else {
            continue;
        };
        spans.sort_by_key(|f| f.start);
        let fits = spans.windows(2).all(|w| match w {
            [a, b] => a.end <= b.start,
            _ => true,
        }) && spans
            .iter()
            .all(|f| f.end <= s.len() && s.is_char_boundary(f.start) && s.is_char_boundary(f.end));
        if fits {
            *s = redact(s, &spans);
        } else {
            *s = "[REDACTED]".to_string();
        }
        n += spans.len();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::scan_text;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn redaction_replaces_spans() {
        let text = "key AKIAZ3MHALQ4ABCDEFGH and mail bob@acme.io.";
        let f = scan_text(text);
        assert_eq!(
            redact(text, &f),
            "key [REDACTED:aws_access_key] and mail [REDACTED:email]."
        );
        let only_secrets: Vec<Finding> = f.into_iter().filter(|f| f.kind == "secret").collect();
        assert_eq!(
            redact(text, &only_secrets),
            "key [REDACTED:aws_access_key] and mail bob@acme.io."
        );
    }

    #[test]
    fn a_string_changed_since_the_scan_is_redacted_whole() {
        let mut result = serde_json::json!({"content": [{"type": "text", "text": "short"}]});
        let f = vec![ResultFinding {
            pointer: "/content/0/text".into(),
            finding: Finding {
                kind: "secret",
                detector: "jwt",
                start: 2,
                end: 50,
            },
        }];
        assert_eq!(redact_result(&mut result, &f, &|_| true), 1);
        assert_eq!(result["content"][0]["text"], "[REDACTED]");
    }
}
