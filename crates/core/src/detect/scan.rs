//! Matching one text: the detector table compiled once per VM, one pass
//! per pattern (on the lower-cased text for the `lower` ones), each match
//! checked, then sorted and made disjoint (earlier table entries win a
//! tie), with the AWS secret-key pass next to access key ids.

use super::checks::check;
use super::finding::Finding;
use super::spec::{pattern_of, Check, SECRET, SPECS};
use once_cell::sync::Lazy;
use regex::Regex;
use std::fmt;

/// Bytes of one string that are scanned (the rest is not, and a
/// `limit`/`scan_truncated` finding says so).
pub const MAX_SCAN_BYTES: usize = 256 * 1024;

/// A detector pattern that does not compile: a bug in the table
/// (`spec.rs`), never caused by configuration. Its text is the regex
/// crate's message, as the `String` error it replaces was.
#[derive(Debug, Clone)]
pub struct PatternError {
    /// The detector whose pattern failed (`"aws_secret_key"` for the pass
    /// next to access key ids).
    pub detector: &'static str,
    error: regex::Error,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for PatternError {}

/// Callers that still report errors as text (`catalog::poison::init`)
/// keep using `?`.
impl From<PatternError> for String {
    fn from(e: PatternError) -> String {
        e.to_string()
    }
}

struct Compiled {
    /// One per entry of `SPECS`, in order.
    regexes: Vec<Regex>,
    aws_secret_near: Regex,
}

fn compile(detector: &'static str, pattern: &str) -> Result<Regex, PatternError> {
    Regex::new(pattern).map_err(|error| PatternError { detector, error })
}

/// Built on first use, once per VM (the VM is single-threaded in Envoy;
/// natively the benches, tests and CLI may share it across threads, and
/// `Regex` is `Sync`, so `sync::Lazy` serves both). A pattern that does
/// not compile is kept as the error: every scan then reports
/// `limit`/`detector_error` instead of panicking.
static COMPILED: Lazy<Result<Compiled, PatternError>> = Lazy::new(|| {
    let regexes = SPECS
        .iter()
        .map(|spec| compile(spec.name, &pattern_of(spec)))
        .collect::<Result<Vec<_>, _>>()?;
    let aws_secret_near = compile("aws_secret_key", r"(?-u:\b)[A-Za-z0-9/+]{40}")?;
    Ok(Compiled {
        regexes,
        aws_secret_near,
    })
});

/// Compile the detectors now (they compile on first use otherwise).
/// An error here is a bug in a pattern.
pub fn init() -> Result<(), PatternError> {
    COMPILED.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// The largest char boundary at or below `i`.
pub(crate) fn floor_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Scan one text. Findings are sorted by start and do not overlap; at most
/// [`MAX_SCAN_BYTES`] are scanned (then a `limit`/`scan_truncated` finding
/// at the cut ends the list).
pub fn scan_text(text: &str) -> Vec<Finding> {
    scan_bounded(text, MAX_SCAN_BYTES)
}

/// [`scan_text`] without the size bound (the caller bounds the text).
pub(crate) fn scan_text_unbounded(text: &str) -> Vec<Finding> {
    scan_bounded(text, usize::MAX)
}

fn scan_bounded(text: &str, limit: usize) -> Vec<Finding> {
    let compiled = match COMPILED.as_ref() {
        Ok(c) => c,
        Err(_) => {
            return vec![Finding {
                kind: "limit",
                detector: "detector_error",
                start: 0,
                end: 0,
            }]
        }
    };
    let cut = floor_boundary(text, limit);
    let scanned = text.get(..cut).unwrap_or("");
    let mut found = raw_findings(compiled, scanned);
    found.sort_by(|a, b| {
        a.0.start
            .cmp(&b.0.start)
            .then(b.0.end.cmp(&a.0.end))
            .then(a.1.cmp(&b.1))
    });
    let mut out: Vec<Finding> = Vec::new();
    let mut last_end = 0;
    for (f, _) in found {
        if f.start < last_end || f.start >= f.end {
            continue;
        }
        last_end = f.end;
        out.push(f);
    }
    if cut < text.len() {
        out.push(Finding {
            kind: "limit",
            detector: "scan_truncated",
            start: cut,
            end: cut,
        });
    }
    out
}

/// Every checked match, with its spec index (the tie-breaker).
fn raw_findings(c: &Compiled, text: &str) -> Vec<(Finding, usize)> {
    let mut out = Vec::new();
    if text.is_empty() {
        return out;
    }
    // One pass per pattern: each is small enough for the lazy DFA and most
    // have a literal prefix to skip ahead with. (A RegexSet of all of them
    // is one pass, but its automaton is so large that on varied text the
    // DFA cache thrashes and the scan drops to a few MB/s.)
    let lowered = text.to_ascii_lowercase();
    for (i, (spec, re)) in SPECS.iter().zip(&c.regexes).enumerate() {
        if spec.check == Check::UnicodeTags && !text.as_bytes().contains(&0xF3) {
            // Tag characters are encoded F3 A0 8x xx: skip the pass.
            continue;
        }
        let hay = if spec.lower { lowered.as_str() } else { text };
        let spans: Vec<(usize, usize)> = if spec.group == 0 {
            re.find_iter(hay).map(|m| (m.start(), m.end())).collect()
        } else {
            re.captures_iter(hay)
                .filter_map(|caps| caps.get(spec.group).map(|m| (m.start(), m.end())))
                .collect()
        };
        for (s, e) in spans {
            if let Some((s, e)) = check(spec.check, text, s, e) {
                out.push((
                    Finding {
                        kind: spec.kind,
                        detector: spec.name,
                        start: s,
                        end: e,
                    },
                    i,
                ));
            }
        }
    }
    // AWS secret keys next to an access key id (a key pair pasted together).
    let ids: Vec<(usize, usize)> = out
        .iter()
        .filter(|(f, _)| f.detector == "aws_access_key")
        .map(|(f, _)| (f.start, f.end))
        .collect();
    for (s, e) in ids {
        let from = floor_boundary(text, s.saturating_sub(256));
        let to = floor_boundary(text, e.saturating_add(256));
        let Some(window) = text.get(from..to) else {
            continue;
        };
        for m in c.aws_secret_near.find_iter(window) {
            let (ms, me) = (from + m.start(), from + m.end());
            if check(Check::AwsSecret, text, ms, me).is_some() {
                out.push((
                    Finding {
                        kind: SECRET,
                        detector: "aws_secret_key",
                        start: ms,
                        end: me,
                    },
                    0,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn patterns_compile() {
        init().unwrap();
        for spec in SPECS.iter().filter(|s| s.lower) {
            for esc in [r"\A", r"\B", r"\D", r"\S", r"\W", r"\P", r"\X", r"\Z"] {
                assert!(
                    !spec.pattern.contains(esc),
                    "{}: {esc} would change meaning lower-cased",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn multibyte_text_keeps_char_boundaries() {
        let text = "résumé: ünïcödé AKIAZ3MHALQ4ABCDEFGH — ✓ jane@acme.io 日本語";
        for f in scan_text(text) {
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        let s = "é".repeat(10);
        assert_eq!(floor_boundary(&s, 5), 4);
    }
}
