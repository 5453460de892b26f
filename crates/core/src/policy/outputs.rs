//! The decision's vocabulary: the outputs a policy may define. The engine
//! evaluates them and the listing transform keeps them apart from the rules
//! it rewrites, so both read the list from here.

/// The optional decision outputs a policy may define besides `allow` and
/// `deny` (docs/decision.md). Only those a module mentions are evaluated.
pub const OPTIONAL_OUTPUTS: [&str; 13] = [
    "denial",
    "rewrite",
    "request_headers",
    "response_headers",
    "labels",
    "kill",
    "clear_kill",
    "reveal",
    "dry_run",
    "rate_limit",
    "visible",
    "redact",
    "confirm",
];
