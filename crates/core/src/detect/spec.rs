//! The detector table: every built-in detector as a pattern (the regex
//! crate's syntax, with `%s`/`%b` shorthands), the capture group that is
//! the finding, the check a match must pass ([`Check`], carried out in
//! `checks.rs`) and whether it runs on lower-cased text. [`pattern_of`]
//! turns an entry into the pattern compiled (once per VM, `scan.rs`).
//! docs/detectors.md lists every detector.

/// Ends each string when several are scanned as one text; every pattern
/// stops at it (negated classes exclude it).
pub(super) const SEPARATOR: char = '\0';

/// Post-match checks, where a pattern alone matches too much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    None,
    /// Not directly after or before more base64 characters.
    Standalone,
    /// Mixed characters and high entropy (40-char AWS secret).
    AwsSecret,
    /// Contains a digit.
    HasDigit,
    /// High-entropy generic key value; not a placeholder.
    Entropy,
    /// `sk-` keys without a vendor marker: mixed case and digits.
    SkKey,
    /// The header decodes to a JSON object with `alg` or `typ`.
    Jwt,
    Email,
    Luhn,
    Ssn,
    Iban,
    Phone,
    /// Tag characters not part of an emoji flag sequence.
    UnicodeTags,
    /// Not followed by a possessive (`the user's password`).
    NotPossessive,
    /// The word before "tool"/"function" names one (not "the", "a", …).
    ToolName,
    /// A `<system>` tag alone on its line, or next to another role tag
    /// (not `<system>GitHub</system>` inside XML).
    RoleTag,
}

/// One detector pattern and how its matches are read.
pub(super) struct Spec {
    pub(super) kind: &'static str,
    pub(super) name: &'static str,
    /// `%s`: one or more ASCII whitespace; `%b`: ASCII word boundary.
    pub(super) pattern: &'static str,
    /// The capture group whose span is the finding (0: the whole match).
    pub(super) group: usize,
    pub(super) check: Check,
    /// Matched against the text with ASCII letters lower-cased (same byte
    /// offsets), the pattern lower-cased too: case-insensitive without
    /// `(?i)`, so the regex keeps its fast literal prefilters.
    pub(super) lower: bool,
}

pub(super) const SECRET: &str = "secret";
const PII: &str = "pii";
const INJECTION: &str = "injection";

/// Earlier entries win when two findings of the same span compete.
pub(super) const SPECS: &[Spec] = &[
    // ---- secrets ----
    Spec {
        kind: SECRET,
        name: "private_key",
        pattern: r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=:,. \t\r\n-]|\\[rn])*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----",
        group: 0,
        check: Check::None,
        lower: false,
    },
    Spec {
        // A block cut short (no END line): the header and the base64 after it.
        kind: SECRET,
        name: "private_key",
        pattern: r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[\r\n]|\\[rn])+[A-Za-z0-9+/=]{16}(?:[A-Za-z0-9+/=\r\n]|\\[rn])*",
        group: 0,
        check: Check::None,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "aws_access_key",
        pattern: r"%b(?:AKIA|ASIA)[A-Z0-9]{16}%b",
        group: 0,
        check: Check::None,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "aws_secret_key",
        pattern: r#"(?i-u:aws_?secret_?(?:access_?)?key|secret_?access_?key)["']?[ \t]*(?::=|=>|=|:)[ \t]*["']?([A-Za-z0-9/+]{40})"#,
        group: 1,
        check: Check::Standalone,
        lower: true,
    },
    Spec {
        kind: SECRET,
        name: "github_token",
        pattern: r"%b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{60,255})%b",
        group: 0,
        check: Check::None,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "slack_token",
        pattern: r"%b(?:xox[abposr]-[A-Za-z0-9-]{10,250}|xapp-[0-9]-[A-Za-z0-9-]{10,250})",
        group: 0,
        check: Check::HasDigit,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "slack_webhook",
        pattern: r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,200}",
        group: 0,
        check: Check::None,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "google_api_key",
        pattern: r"%bAIza[0-9A-Za-z_-]{35}",
        group: 0,
        check: Check::Standalone,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "stripe_key",
        pattern: r"%b(?:sk|rk)_live_[0-9A-Za-z]{20,247}%b",
        group: 0,
        check: Check::None,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "anthropic_key",
        pattern: r"%bsk-ant-[A-Za-z0-9]{2,12}-[A-Za-z0-9_-]{32,200}",
        group: 0,
        check: Check::Standalone,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "openai_key",
        pattern: r"%bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{8,200}T3BlbkFJ[A-Za-z0-9_-]{8,200}",
        group: 0,
        check: Check::Standalone,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "openai_key",
        pattern: r"%bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,200}",
        group: 0,
        check: Check::SkKey,
        lower: false,
    },
    Spec {
        kind: SECRET,
        name: "jwt",
        pattern: r"%beyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*",
        group: 0,
        check: Check::Jwt,
        lower: false,
    },
    // ---- PII ----
    Spec {
        kind: PII,
        name: "email",
        pattern: r"%b[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}%b",
        group: 0,
        check: Check::Email,
        lower: false,
    },
    Spec {
        kind: PII,
        name: "credit_card",
        pattern: r"%b[0-9](?:[ -]?[0-9]){12,18}%b",
        group: 0,
        check: Check::Luhn,
        lower: false,
    },
    Spec {
        kind: PII,
        name: "us_ssn",
        pattern: r"%b[0-9]{3}-[0-9]{2}-[0-9]{4}%b",
        group: 0,
        check: Check::Ssn,
        lower: false,
    },
    Spec {
        kind: PII,
        name: "iban",
        pattern: r"%b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?%b",
        group: 0,
        check: Check::Iban,
        lower: false,
    },
    Spec {
        kind: PII,
        name: "phone",
        pattern: r"\+[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-][0-9]{1,4}){1,4}%b|(?:\([2-9][0-9]{2}\) ?|%b[2-9][0-9]{2}[.-])[2-9][0-9]{2}[.-][0-9]{4}%b",
        group: 0,
        check: Check::Phone,
        lower: false,
    },
    // ---- prompt injection ----
    Spec {
        kind: INJECTION,
        name: "ignore_instructions",
        pattern: r"(?i-u:%b(?:ignore|disregard|forget|override|bypass)(?:%s(?:all|any|every|of|the|your|my|these|those)){0,3}%s(?:previous|prior|above|earlier|preceding|former|original|initial|system|safety|developer)(?:%s(?:system|safety))?%s(?:instructions?|prompts?|directions?|directives?|rules|guidelines|guidance|messages|context|commands|constraints|policies)%b)",
        group: 0,
        check: Check::None,
        lower: true,
    },
    Spec {
        kind: INJECTION,
        name: "ignore_instructions",
        pattern: r"(?i-u:%b(?:ignore|disregard|forget)(?:%s(?:all|everything|anything|of|the|that|is|was|written|said|stated|mentioned|text)){0,3}%sabove(?:[ \t]*(?:[.,;:!]|$)|%s(?:and|instructions?|text|prompt|content|messages?)%b))",
        group: 0,
        check: Check::None,
        lower: true,
    },
    Spec {
        kind: INJECTION,
        name: "directive_tag",
        pattern: r"</?(?i-u:important|instructions?|hidden[_-]?instructions?|secret[_-]?instructions?|system[_-]?instructions?|admin[_-]?instructions?)>",
        group: 0,
        check: Check::None,
        lower: true,
    },
    Spec {
        kind: INJECTION,
        name: "role_tag",
        pattern: r"</?(?i-u:system|assistant)>(?:[ \t]*</?(?i-u:user|system|assistant|human|instructions?)>)?",
        group: 0,
        check: Check::RoleTag,
        lower: true,
    },
    Spec {
        // Chat-template tokens, case-sensitive (`[inst]` is ordinary code).
        kind: INJECTION,
        name: "role_tag",
        pattern: r"<\|(?:im_start|im_end|system|assistant|user|endoftext|eot_id|start_header_id|end_header_id)\|>|\[/?INST\]|<</?SYS>>",
        group: 0,
        check: Check::None,
        lower: false,
    },
    Spec {
        kind: INJECTION,
        name: "system_prompt",
        pattern: r"(?i-u:%b(?:reveal|print|show|output|repeat|leak|disclose|display|dump|share|send|ignore|override|forget|replace|new|updated|real|actual|hidden)(?:%s(?:me|us|your|the|my|entire|full|whole|original|hidden|initial|complete|following)){0,3}%ssystem[ _-]?prompt%b)",
        group: 0,
        check: Check::None,
        lower: true,
    },
    Spec {
        kind: INJECTION,
        name: "new_instructions",
        pattern: r"(?i-u:%byou%s(?:must|should|will|shall|need%sto)%snow%s(?:ignore|disregard|forget|obey|follow|act|pretend|behave|reveal|send|forward|email|call|invoke|execute|output|respond|only)%b|%bfrom%snow%son,?%syou%sare%s(?:a|an|no%slonger|free|now|dan)%b|%byour%snew%s(?:instructions|task|role|goal|objective|purpose|directive)s?%s(?:is|are)%b|%byou%sare%snow%s(?:dan|jailbroken|unrestricted|unfiltered|free%sfrom|no%slonger%sbound|in%sdeveloper%smode|an?%s(?:unrestricted|unfiltered|evil))%b|%b(?:act|pretend|behave)%s(?:as%sif|like)%syou%s(?:are|have)%s(?:no|not)%s(?:restrictions|rules|filters|guidelines|limits)%b)",
        group: 0,
        check: Check::None,
        lower: true,
    },
    Spec {
        kind: INJECTION,
        name: "tool_call_instruction",
        pattern: r#"(?i-u:%b(?:you|assistant|the%smodel|the%sagent|ai)%s(?:must|should|need%sto|have%sto|are%srequired%sto)(?:%s(?:now|immediately|also|first|then|always|secretly|silently))?%s(?:call|invoke|use|run|execute|trigger)(?:%s(?:the|a))?%s[`'"]?[A-Za-z0-9_.:/-]{1,64}[`'"]?%s(?:tool|function)%b|%b(?:secretly|silently|quietly)%s(?:call|invoke|execute|trigger|use)(?:%sthe)?%s[`'"]?[A-Za-z0-9_.:/-]{1,64}[`'"]?%s(?:tool|function)%b|%bimmediately%s(?:call|invoke|execute|trigger|use)(?:%sthe)?%s[`'"]?[A-Za-z0-9_.:/-]{1,64}[`'"]?%stool%b)"#,
        group: 0,
        check: Check::ToolName,
        lower: true,
    },
    Spec {
        kind: INJECTION,
        name: "exfiltration",
        pattern: r"(?i-u:%b(?:send|post|upload|forward|transmit|exfiltrate|leak|submit|email|mail|report|copy)(?:%s(?:all|the|your|any|every|this|these|of|current|entire|full|whole|their|its|user'?s?|my)){0,3}%s(?:conversation|chat|history|previous%smessages|secrets?|credentials?|api[ _-]?keys?|tokens?|passwords?|system[ _-]?prompt|environment%svariables|env[ _-]?vars?|ssh[ _-]?keys?|private[ _-]?keys?|cookies|session%stokens?|(?:contents?%sof%s)?[~$a-z_./]{0,20}(?:\.ssh/[a-z0-9_]*|id_rsa|id_ed25519|id_ecdsa|\.aws/credentials|/etc/passwd|/etc/shadow|\.env|\.netrc|\.git-credentials))%b)[^\n\x00]{0,80}?(?i-u:%bto%b)[^\n\x00]{0,40}?(?:(?i-u:https?|ftp)://|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,24})",
        group: 0,
        check: Check::None,
        lower: true,
    },
    Spec {
        kind: INJECTION,
        name: "markdown_image_exfil",
        pattern: r"!\[[^\]\n\x00]{0,200}\]\((?i-u:https?)://[^) \t\r\n\x00]{1,500}[?&][A-Za-z0-9_]{1,40}=(?:\{|%7[Bb]|\$|<|\[)",
        group: 0,
        check: Check::None,
        lower: false,
    },
    Spec {
        kind: INJECTION,
        name: "conceal_from_user",
        pattern: r"(?i-u:%b(?:do%snot|don't|dont|never)%s(?:tell|inform|mention|reveal|notify|alert)(?:%s(?:this|it|that|anything|any%sof%sthis))?(?:%sto)?%sthe%s(?:user|human)%b|%bwithout%s(?:telling|informing|notifying|alerting|letting)%sthe%s(?:user|human)%b|%bwithout%sthe%s(?:user|human)%s(?:knowing|noticing)%b|%bthe%s(?:user|human)%s(?:must|should)%s(?:not|never)%s(?:know|see|notice|be%stold)%b|%b(?:hide|conceal|keep)%s(?:this|it)(?:%sa%ssecret)?%sfrom%sthe%s(?:user|human)%b)",
        group: 0,
        check: Check::NotPossessive,
        lower: true,
    },
    Spec {
        kind: INJECTION,
        name: "unicode_tags",
        pattern: r"[\x{E0000}-\x{E007F}]+",
        group: 0,
        check: Check::UnicodeTags,
        lower: false,
    },
    // Last: the most specific detector of a span wins over this one.
    Spec {
        kind: SECRET,
        name: "generic_secret",
        pattern: r#"(?i-u:password|passwd|passphrase|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|bearer[_-]?token|private[_-]?key|credentials?)["']?[ \t]*(?::=|=>|=|:)[ \t]*["']?([^ \t\r\n\x00"'`<>,;(){}\[\]\\]{8,200})"#,
        group: 1,
        check: Check::Entropy,
        lower: true,
    },
];

/// The pattern as compiled: a `lower` one is lower-cased, its `(?i-u:…)`
/// groups made plain (the text it runs on is lower-cased).
pub(super) fn pattern_of(spec: &Spec) -> String {
    let p = expand(spec.pattern);
    if spec.lower {
        p.replace("(?i-u:", "(?:").to_ascii_lowercase()
    } else {
        p
    }
}

fn expand(pattern: &str) -> String {
    pattern
        .replace("%s", r"[ \t\r\n]+")
        .replace("%b", r"(?-u:\b)")
}
