//! The structural pre-scan: nesting, lone surrogates and costly numbers,
//! refused in every member before serde reads a body.

use std::fmt;

/// The most digits of an integer literal: CPython's `int` refuses longer
/// ones (`sys.int_info.default_max_str_digits`), so the Python SDK cannot
/// read them either.
pub const MAX_INTEGER_DIGITS: usize = 4300;

/// The most digits (before the exponent, integer and fraction parts
/// together) of a number literal with a fraction or an exponent. The same
/// bound as for integers: no serialiser of a double writes more than 17
/// significant digits, and this keeps the exact value regorus builds small.
pub const MAX_NUMBER_DIGITS: usize = 4300;

/// The largest exponent a number literal may write (`1e1000`, `1e-1000`).
/// Every double is written with an exponent between −324 and 308 (shortest
/// form) or a little beyond when its digits are written out; regorus builds
/// a literal with a positive exponent as an exact integer, so `0e20000000`
/// (which is 0.0 to every JSON reader) would cost it 10^20000000.
pub const MAX_EXPONENT: u64 = 1000;

/// The most arrays and objects nested in one another in a body, the
/// outermost (the message object, or a batch's array) included. The 128th
/// is refused: serde_json's recursion limit is 128 and refuses exactly that
/// one, so the pre-scan and every later parse agree (docs/hardening.md).
pub const MAX_NESTING: usize = 127;

/// What the structural pre-scan refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StructureError {
    /// Arrays and objects nested more than [`MAX_NESTING`] deep; `at`: the
    /// byte of the bracket that went too deep.
    TooDeep { at: usize },
    /// A high surrogate escape (`unit`) not followed by a low one.
    LoneHighSurrogate { unit: u32, at: usize },
    /// A low surrogate escape (`unit`) without a high one before it.
    LoneLowSurrogate { unit: u32, at: usize },
    /// An integer of more than [`MAX_INTEGER_DIGITS`] digits.
    IntegerTooLong,
    /// A number with a fraction or exponent of more than
    /// [`MAX_NUMBER_DIGITS`] digits.
    NumberTooLong,
    /// A number whose exponent is beyond ±[`MAX_EXPONENT`] (its literal,
    /// shortened).
    ExponentTooLarge { number: String },
    /// A number beyond a double (its literal, shortened).
    Infinite { number: String },
}

impl fmt::Display for StructureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StructureError::TooDeep { at } => write!(
                f,
                "arrays and objects nested more than {MAX_NESTING} deep (byte {at})"
            ),
            StructureError::LoneHighSurrogate { unit, at } => write!(
                f,
                "lone surrogate \\u{unit:04x} in a string (byte {at}): a high surrogate must be followed by a \\u escape of a low surrogate"
            ),
            StructureError::LoneLowSurrogate { unit, at } => write!(
                f,
                "lone surrogate \\u{unit:04x} in a string (byte {at}): a low surrogate without a high surrogate before it"
            ),
            StructureError::IntegerTooLong => write!(
                f,
                "an integer of more than {MAX_INTEGER_DIGITS} digits is out of range"
            ),
            StructureError::NumberTooLong => write!(
                f,
                "a number of more than {MAX_NUMBER_DIGITS} digits is out of range"
            ),
            StructureError::ExponentTooLarge { number } => write!(
                f,
                "the number {number} is out of range (its exponent is beyond ±{MAX_EXPONENT})"
            ),
            StructureError::Infinite { number } => write!(
                f,
                "the number {number} is out of range (beyond a double: MCP servers read it as infinity)"
            ),
        }
    }
}

impl std::error::Error for StructureError {}

/// The structural pre-scan every body goes through before serde (and so
/// before regorus or any exact-number code) reads it: requests, batches,
/// server responses and SSE event data, whatever member holds the bytes (serde
/// skips members the wire model does not name without checking them). One
/// linear pass, no allocation; syntax errors are left to the JSON parser.
/// It refuses:
/// - arrays and objects nested more than [`MAX_NESTING`] deep;
/// - a lone surrogate in a `\u` escape, in any string or object key: a high
///   surrogate (`\ud800`–`\udbff`) not followed by a `\u` low surrogate
///   (`\udc00`–`\udfff`), or a low surrogate on its own;
/// - numbers the MCP servers read differently, or that cost too much to
///   hold exactly: a literal with a fraction or exponent whose value
///   overflows a double (`1e400`: Python reads `inf`), whose exponent is
///   beyond ±[`MAX_EXPONENT`] (`0e20000000`), or which has more than
///   [`MAX_NUMBER_DIGITS`] digits; an integer of more than
///   [`MAX_INTEGER_DIGITS`] digits.
pub fn check_structure(body: &[u8]) -> Result<(), StructureError> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => i = scan_string(body, i + 1)?,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(StructureError::TooDeep { at: i });
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => i = scan_number(body, i)?,
            _ => i += 1,
        }
    }
    Ok(())
}

/// The value of the four hex digits at `at`, if they are hex digits.
fn hex4(body: &[u8], at: usize) -> Option<u32> {
    let digits = body.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        Some(acc * 16 + d)
    })
}

/// From just after an opening quote to just after the closing one (or the
/// end of the body): checks `\u` escapes for lone surrogates.
fn scan_string(body: &[u8], mut i: usize) -> Result<usize, StructureError> {
    loop {
        // Only a quote or a backslash matters inside a string: jump to the
        // next one (most of a body's bytes are string contents).
        match body
            .get(i..)
            .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
        {
            Some(n) => i += n,
            None => return Ok(body.len()),
        }
        let Some(&b) = body.get(i) else {
            return Ok(i);
        };
        match b {
            b'"' => return Ok(i + 1),
            b'\\' => {
                if body.get(i + 1) != Some(&b'u') {
                    i += 2;
                    continue;
                }
                let Some(unit) = hex4(body, i + 2) else {
                    // Not an escape: the JSON parser says so.
                    i += 2;
                    continue;
                };
                match unit {
                    0xD800..=0xDBFF => {
                        let low = match body.get(i + 6..i + 8) {
                            Some(b"\\u") => hex4(body, i + 8),
                            _ => None,
                        };
                        if !low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) {
                            return Err(StructureError::LoneHighSurrogate { unit, at: i });
                        }
                        i += 12;
                    }
                    0xDC00..=0xDFFF => {
                        return Err(StructureError::LoneLowSurrogate { unit, at: i });
                    }
                    _ => i += 6,
                }
            }
            _ => i += 1,
        }
    }
}

/// One number literal from `start` (a `-` or a digit), as the JSON grammar
/// reads it; returns where it ends. The exponent's digits are counted, not
/// parsed into an unbounded integer.
fn scan_number(body: &[u8], start: usize) -> Result<usize, StructureError> {
    let digits_from = |mut i: usize| {
        while body.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = start;
    if body.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_end = digits_from(i);
    let mut digits = int_end - i;
    i = int_end;
    let mut float = false;
    if body.get(i) == Some(&b'.') {
        float = true;
        let end = digits_from(i + 1);
        digits += end - (i + 1);
        i = end;
    }
    let mut exponent = 0u64;
    if matches!(body.get(i), Some(b'e' | b'E')) {
        float = true;
        i += 1;
        if matches!(body.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while let Some(&c) = body.get(i).filter(|c| c.is_ascii_digit()) {
            exponent = exponent
                .saturating_mul(10)
                .saturating_add(u64::from(c - b'0'));
            i += 1;
        }
    }
    let text = || {
        body.get(start..i)
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or_default()
    };
    if !float {
        if digits > MAX_INTEGER_DIGITS {
            return Err(StructureError::IntegerTooLong);
        }
        return Ok(i);
    }
    if digits > MAX_NUMBER_DIGITS {
        return Err(StructureError::NumberTooLong);
    }
    if exponent > MAX_EXPONENT {
        return Err(StructureError::ExponentTooLarge {
            number: shorten(text()),
        });
    }
    if text().parse::<f64>().is_ok_and(|f| f.is_infinite()) {
        return Err(StructureError::Infinite {
            number: shorten(text()),
        });
    }
    Ok(i)
}

fn shorten(text: &str) -> String {
    if text.len() <= 40 {
        return text.to_string();
    }
    let head: String = text.chars().take(37).collect();
    format!("{head}...")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::jsonrpc::{parse, parse_shallow, ParseError};
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn numbers_beyond_a_double_or_too_long_are_not_json() {
        let msg = |n: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{{"a":{n}}}}}}}"#
            )
        };
        for bad in [
            "1e400",
            "-1e400",
            "1E+999",
            "1e1000000",
            "17976931348623159e292",
        ] {
            match parse(msg(bad).as_bytes()) {
                Err(ParseError::NotJson(e)) => assert!(e.contains("out of range"), "{e}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let long = "9".repeat(MAX_INTEGER_DIGITS + 1);
        assert!(matches!(
            parse(msg(&long).as_bytes()),
            Err(ParseError::NotJson(_))
        ));
        for ok in [
            "1e308",
            "-1.5e-400",
            "0.1",
            "123456789012345678901234567890",
            &"9".repeat(MAX_INTEGER_DIGITS),
        ] {
            assert!(parse(msg(ok).as_bytes()).is_ok(), "{ok}");
        }
        // Inside strings, escaped quotes included, digits are text.
        let s = r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\"1e400","b":"1e400"}}"#;
        assert!(parse(s.as_bytes()).is_ok());
    }

    fn not_json_because(body: &[u8], what: &str) {
        match parse(body) {
            Err(ParseError::NotJson(e)) => assert!(e.contains(what), "{e}"),
            other => panic!(
                "expected not-json ({what}) for {:?}, got {other:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }

    #[test]
    fn the_66_byte_zero_with_a_huge_exponent_is_refused_at_once() {
        let body = br#"{"jsonrpc":"2.0","id":2,"method":"ping","params":{"x":0e20000000}}"#;
        assert_eq!(body.len(), 66);
        // No clock on wasm32-unknown-unknown (std::time::Instant panics there).
        #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
        let t = std::time::Instant::now();
        not_json_because(body, "exponent");
        #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        // In every member, and in the response path's shallow parse.
        for body in [
            r#"{"jsonrpc":"2.0","id":2,"method":"ping","extra":[0e20000000]}"#,
            r#"{"jsonrpc":"2.0","id":2,"result":{"x":-0.0E+20000000}}"#,
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"m","data":1e-1001}}"#,
            r#"[{"jsonrpc":"2.0","id":2,"method":"ping","params":{"_meta":{"x":0e1001}}}]"#,
        ] {
            not_json_because(body.as_bytes(), "exponent");
            assert!(matches!(
                parse_shallow(body.as_bytes()),
                Err(ParseError::NotJson(_))
            ));
        }
        // A megabyte of exponent digits is counted, not parsed.
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"ping","x":1e{}}}"#,
            "9".repeat(1 << 20)
        );
        not_json_because(body.as_bytes(), "exponent");
    }

    #[test]
    fn numbers_with_too_many_digits_are_refused() {
        let msg = |n: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","x":{n}}}"#);
        let fraction = format!("0.{}", "1".repeat(MAX_NUMBER_DIGITS));
        not_json_because(msg(&fraction).as_bytes(), "digits");
        let fraction = format!("0.{}", "1".repeat(MAX_NUMBER_DIGITS - 1));
        assert!(parse(msg(&fraction).as_bytes()).is_ok());
        let mantissa = format!("{}e-5000", "1".repeat(MAX_NUMBER_DIGITS + 1));
        not_json_because(msg(&mantissa).as_bytes(), "digits");
    }

    #[test]
    fn legitimate_numbers_stay_accepted() {
        // What Python's json and JavaScript's JSON.parse (the TypeScript
        // SDK) read as ordinary numbers.
        for ok in [
            "1e-5",
            "1.5E+3",
            "-0.0",
            "-0",
            "0",
            "12345678901234567890",
            "5e-324",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "123456789012345678e-340",
            "1e-1000",
            "0e1000",
            "-0.5e+0",
            "1E0",
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":{ok}}},"b":[{ok}]}}"#
            );
            assert!(parse(body.as_bytes()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn nesting_is_limited_in_every_member() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        // The message object is one level: 126 more are accepted, in any
        // member, and serde agrees.
        for member in ["params", "unknown"] {
            let ok = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","{member}":{{"a":{}}}}}"#,
                nest(MAX_NESTING - 2)
            );
            assert!(parse(ok.as_bytes()).is_ok(), "{member}");
            let deep = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ping","{member}":{{"a":{}}}}}"#,
                nest(MAX_NESTING - 1)
            );
            not_json_because(deep.as_bytes(), "nested more than 127");
        }
        // Objects count as arrays do, in `_meta` too, and far deeper.
        let objects = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        let meta = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"_meta":{}}}}}"#,
            objects(200)
        );
        not_json_because(meta.as_bytes(), "nested");
        let unknown = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","x":{}}}"#,
            nest(100_000)
        );
        not_json_because(unknown.as_bytes(), "nested");
        // A batch's array is a level: its elements get one less.
        let batch = format!(
            r#"[{{"jsonrpc":"2.0","id":1,"method":"ping","x":{}}}]"#,
            nest(MAX_NESTING - 1)
        );
        not_json_because(batch.as_bytes(), "nested");
        let batch = format!(
            r#"[{{"jsonrpc":"2.0","id":1,"method":"ping","x":{}}}]"#,
            nest(MAX_NESTING - 2)
        );
        assert!(parse(batch.as_bytes()).is_ok());
        // Brackets in strings are text.
        let text = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","x":"{}"}}"#,
            "[".repeat(500)
        );
        assert!(parse(text.as_bytes()).is_ok());
    }

    #[test]
    fn lone_surrogates_are_refused_in_every_string_and_key() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","unknown":"\ud800"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","unknown":{"deep":["\udfff"]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","unknown":{"\ud83d":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"\uDC00x":1}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x\ud800":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud800\ud800"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud800\n"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud800\u0041"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud800"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping","x":"\udbff"}]"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"x":"\ud800"}}"#,
        ] {
            not_json_because(body.as_bytes(), "lone surrogate");
        }
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\ud83d\ude00 \\ud800 \\\ud83d\uDE00"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","\ud83d\ude00":"\u00e9\uffff\u0000"}"#,
        ] {
            assert!(parse(body.as_bytes()).is_ok(), "{body}");
        }
    }

    #[test]
    fn invalid_utf8_in_skipped_members_is_not_json() {
        let body = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"unknown\":{\"a\xff\":1}}";
        match parse(body) {
            Err(ParseError::NotJson(e)) => assert!(e.contains("UTF-8"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
