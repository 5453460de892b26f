//! Source text around regorus' spans.

/// Whether the last character of `s` outside strings and comments is `{`
/// (the text between `if` and a body's first statement).
pub(super) fn ends_with_open_brace(s: &str) -> bool {
    let mut last = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                last = Some('"');
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
                last = Some('`');
            }
            c if c.is_whitespace() => {}
            c => last = Some(c),
        }
    }
    last == Some('{')
}

/// A statement's byte range in `text`. regorus' spans of string tokens
/// leave out their quotes, so a statement that starts or ends with a string
/// is widened by the quote (no statement otherwise touches a quote). Also
/// used by the negation rewrite (`negation/`).
pub(crate) fn widen(text: &str, start: usize, end: usize) -> (usize, usize) {
    let quote = |i: usize| matches!(text.as_bytes().get(i), Some(b'"' | b'`'));
    let start = if start > 0 && quote(start - 1) {
        start - 1
    } else {
        start
    };
    let end = if quote(end) { end + 1 } else { end };
    (start, end)
}
