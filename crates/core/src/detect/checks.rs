//! The checks a match must pass where a pattern alone matches too much
//! (`spec::Check`): standalone tokens, entropy, JWT headers, reserved
//! e-mail domains, Luhn, SSN ranges, IBAN length and mod-97, phone digit
//! counts, role-tag context, tool names.

use super::spec::{Check, SEPARATOR};

fn before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

fn after(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

fn is_b64(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '_' | '-')
}

/// Part of a longer number (`1.2.3.4-5`, a version, a decimal).
fn inside_number(text: &str, s: usize, e: usize) -> bool {
    let prev = before(text, s);
    let prev2 = prev.and_then(|p| before(text, s - p.len_utf8()));
    if matches!(prev, Some('.' | '-' | '/' | ',' | ':' | '+' | '_'))
        && prev2.is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return true;
    }
    let next = after(text, e);
    let next2 = next.and_then(|n| after(text, e + n.len_utf8()));
    matches!(next, Some('.' | '-' | '/' | ',' | ':' | '_'))
        && next2.is_some_and(|c| c.is_ascii_digit())
}

/// The span a match of a pattern with this check yields, if the match
/// passes (some checks shorten it: a generic secret's value, an IBAN).
pub(super) fn check(check: Check, text: &str, s: usize, e: usize) -> Option<(usize, usize)> {
    let m = text.get(s..e)?;
    let ok = match check {
        Check::None => true,
        Check::Standalone => standalone(text, s, e),
        Check::AwsSecret => {
            standalone(text, s, e)
                && m.bytes().any(|b| b.is_ascii_uppercase())
                && m.bytes().any(|b| b.is_ascii_lowercase())
                && m.bytes().any(|b| b.is_ascii_digit())
                && entropy(m) >= 4.0
        }
        Check::HasDigit => m.bytes().any(|b| b.is_ascii_digit()),
        Check::Entropy => return generic_secret(m).map(|len| (s, s + len)),
        Check::SkKey => {
            standalone(text, s, e)
                && m.bytes().any(|b| b.is_ascii_uppercase())
                && m.bytes().any(|b| b.is_ascii_lowercase())
                && m.bytes().any(|b| b.is_ascii_digit())
                && entropy(m) >= 4.0
        }
        Check::Jwt => jwt(m),
        Check::Email => email(text, m, e),
        Check::Luhn => !inside_number(text, s, e) && card(m),
        Check::Ssn => !inside_number(text, s, e) && ssn(m),
        Check::Iban => return iban(m).map(|len| (s, s + len)),
        Check::Phone => !inside_number(text, s, e) && phone(m),
        Check::UnicodeTags => before(text, s) != Some('\u{1F3F4}'),
        Check::ToolName => tool_name(m),
        Check::RoleTag => {
            let line_start = text
                .get(..s)
                .map(|t| t.rsplit(['\n', '\r', SEPARATOR]).next().unwrap_or(""))
                .is_some_and(|t| t.chars().all(|c| c == ' ' || c == '\t'));
            let line_end = text
                .get(e..)
                .map(|t| t.trim_start_matches([' ', '\t']))
                .is_some_and(|t| t.is_empty() || t.starts_with(['\n', '\r', SEPARATOR]));
            line_start || line_end || m.matches('<').count() > 1
        }
        Check::NotPossessive => !matches!(after(text, e), Some('\'' | '\u{2019}')),
    };
    ok.then_some((s, e))
}

fn tool_name(m: &str) -> bool {
    let words: Vec<&str> = m.split_whitespace().collect();
    let name = words
        .len()
        .checked_sub(2)
        .and_then(|i| words.get(i))
        .map(|w| w.trim_matches(['`', '\'', '"']).to_ascii_lowercase())
        .unwrap_or_default();
    !matches!(
        name.as_str(),
        "" | "the"
            | "a"
            | "an"
            | "this"
            | "that"
            | "its"
            | "their"
            | "your"
            | "my"
            | "our"
            | "same"
            | "other"
            | "following"
            | "above"
            | "below"
            | "given"
            | "callback"
            | "appropriate"
            | "relevant"
            | "right"
            | "correct"
            | "new"
            | "old"
    )
}

fn standalone(text: &str, s: usize, e: usize) -> bool {
    !before(text, s).is_some_and(is_b64) && !after(text, e).is_some_and(is_b64)
}

/// Shannon entropy in bits per character.
pub(crate) fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// The length of the secret in a `password=…` value, if it looks like one:
/// letters and digits, high entropy, not a placeholder or a reference.
fn generic_secret(value: &str) -> Option<usize> {
    // In a URL query the value ends at the next `&name=`.
    let mut value = value;
    for (i, _) in value.match_indices('&') {
        let rest = value.get(i + 1..).unwrap_or("");
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if name_len > 0 && rest.get(name_len..).is_some_and(|r| r.starts_with('=')) {
            value = value.get(..i).unwrap_or("");
            break;
        }
    }
    // A trailing period or colon ends a sentence, not a secret.
    let v = value.trim_end_matches(['.', ':', '!', '?']);
    if v.len() < 8 {
        return None;
    }
    let lower = v.to_ascii_lowercase();
    const PLACEHOLDERS: &[&str] = &[
        "xxxx",
        "****",
        "....",
        "example",
        "your",
        "changeme",
        "redacted",
        "placeholder",
        "dummy",
        "sample",
        "environ",
        "env.",
        "getenv",
        "secret_",
        "password",
        "process.",
        "config.",
        "settings.",
        "self.",
        "this.",
        "null",
        "none",
        "undefined",
    ];
    if PLACEHOLDERS.iter().any(|p| lower.contains(p))
        || v.starts_with(['$', '%', '#', '&', '*', '@'])
    {
        return None;
    }
    // Code, not a value: `module.Name.attr`, `snake_case_name2`.
    let ident = |p: &str| {
        p.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if v.contains('.') && v.split('.').all(ident) {
        return None;
    }
    if v.contains('_')
        && v.split('_').all(|p| {
            p.len() <= 12
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && v.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return None;
    }
    let letters = v.bytes().filter(u8::is_ascii_alphabetic).count();
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    if letters == 0 || digits == 0 || entropy(v) < 3.0 {
        return None;
    }
    Some(v.len())
}

fn jwt(m: &str) -> bool {
    use base64::Engine;
    let Some(header) = m.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(o)) => o.contains_key("alg") || o.contains_key("typ"),
        _ => false,
    }
}

/// Reserved documentation domains (RFC 2606, RFC 6761) are not PII; nor is
/// an SSH remote (`git@github.com:owner/repo`).
fn email(text: &str, m: &str, e: usize) -> bool {
    let domain = m.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
    const RESERVED: &[&str] = &["example.com", "example.org", "example.net"];
    const RESERVED_TLDS: &[&str] = &[".example", ".test", ".invalid", ".localhost", ".local"];
    if RESERVED.iter().any(|d| {
        domain
            .strip_suffix(d)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
    }) || RESERVED_TLDS.iter().any(|t| domain.ends_with(t))
    {
        return false;
    }
    if after(text, e) == Some(':') {
        let next = text.get(e + 1..).and_then(|s| s.chars().next());
        if next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '~') {
            return false;
        }
    }
    true
}

fn card(m: &str) -> bool {
    let seps: Vec<char> = m.chars().filter(|c| !c.is_ascii_digit()).collect();
    if let Some(first) = seps.first() {
        if seps.iter().any(|c| c != first) {
            return false;
        }
    }
    let digits: Vec<u32> = m.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    if digits.iter().all(|d| Some(d) == digits.first()) {
        return false;
    }
    // The issuer prefixes of the major networks.
    let prefix = |n: usize| {
        digits
            .iter()
            .take(n)
            .fold(0u32, |acc, d| acc.saturating_mul(10).saturating_add(*d))
    };
    let network = match digits.first() {
        Some(4) => true,                                                  // Visa
        Some(5) => (51..=55).contains(&prefix(2)),                        // Mastercard
        Some(2) => (2221..=2720).contains(&prefix(4)),                    // Mastercard
        Some(3) => matches!(prefix(2), 34 | 37 | 35 | 36 | 38 | 39 | 30), // Amex, JCB, Diners
        Some(6) => {
            prefix(4) == 6011
                || prefix(2) == 65
                || (644..=649).contains(&prefix(3))
                || prefix(2) == 62
        } // Discover, UnionPay
        _ => false,
    };
    network && luhn(&digits)
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn ssn(m: &str) -> bool {
    let mut parts = m.split('-');
    let (Some(a), Some(g), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    // Never issued: area 000, 666, 900-999; group 00; serial 0000; and the
    // well-known sample numbers.
    !(a == "000"
        || a == "666"
        || a.starts_with('9')
        || g == "00"
        || s == "0000"
        || m == "123-45-6789"
        || m == "078-05-1120"
        || [a, g, s]
            .iter()
            .all(|p| p.bytes().all(|b| Some(b) == p.bytes().next())))
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// The byte length of the valid IBAN at the start of `m` (which may have
/// taken a following word along): country length and mod-97.
fn iban(m: &str) -> Option<usize> {
    let country = m.get(..2)?;
    let want = IBAN_LENGTHS
        .iter()
        .find(|(c, _)| *c == country)
        .map(|(_, n)| *n)?;
    // Take exactly `want` alphanumerics (spaces allowed between groups).
    let mut taken = 0;
    let mut end = 0;
    for (i, c) in m.char_indices() {
        if c.is_ascii_alphanumeric() {
            taken += 1;
            end = i + 1;
            if taken == want {
                break;
            }
        }
    }
    if taken != want {
        return None;
    }
    // The next character must not continue the code.
    if m.get(end..)
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let compact: String = m.get(..end)?.chars().filter(|c| *c != ' ').collect();
    let rearranged = format!("{}{}", compact.get(4..)?, compact.get(..4)?);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = c.to_digit(36)?;
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    (rem == 1).then_some(end)
}

fn phone(m: &str) -> bool {
    let digits = m.bytes().filter(u8::is_ascii_digit).count();
    if m.starts_with('+') {
        (8..=15).contains(&digits)
    } else {
        digits == 10
    }
}
