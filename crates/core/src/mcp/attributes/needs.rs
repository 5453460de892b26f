//! Which request attributes a policy can use, read from its text, so the
//! adapter only asks the host for those.

/// Which attributes the policy can use, so the adapter only asks the host
/// for those (each is a host call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub identity: bool,
    pub source: bool,
    pub connection: bool,
    pub xds: bool,
    /// The policy reads `input.session` / `input.rate` or kills.
    pub state: bool,
    /// The policy reads `input.mcp.tool.definition` (tool facts learnt from
    /// the upstream's tools/list answers, keyed by cluster).
    pub definition: bool,
    /// The policy rules on what the server sends (responses, server
    /// requests, notifications): it mentions `direction`,
    /// `server_to_client`, `findings`, `redact`, `input.mcp.result` /
    /// `error`, or a server-to-client method. Otherwise responses are not
    /// evaluated (list filtering aside).
    pub responses: bool,
    /// The policy reads the detectors' findings in results
    /// (`input.mcp.findings`) or redacts them: results are scanned.
    pub findings: bool,
    /// The policy reads `input.http` (built from every request header).
    pub http: bool,
    /// The policy's answer can change with no change of its input or data:
    /// it reads the clock or randomness (`time.now_ns`, `rand.intn`,
    /// `uuid.rfc4122`), or session state. Listing verdicts are then never
    /// reused.
    pub volatile: bool,
}

impl Needs {
    pub fn all() -> Needs {
        Needs {
            identity: true,
            source: true,
            connection: true,
            xds: true,
            state: true,
            definition: true,
            responses: true,
            findings: true,
            http: true,
            volatile: true,
        }
    }

    /// Conservative: an attribute is needed when any module mentions its
    /// name as a word (`input.identity`, `input["identity"]`, a string that
    /// builds the path…), comments included. A policy that never names
    /// `identity` cannot read it, short of assembling the word from pieces.
    /// A module that uses `input` other than through a path or a literal
    /// key (`walk(input, …)`, `input[k]`, `json.marshal(input)`) gets
    /// everything.
    pub fn from_sources<'a>(sources: impl IntoIterator<Item = &'a str>) -> Needs {
        let mut n = Needs::default();
        for s in sources {
            if uses_input_whole(s) {
                return Needs::all();
            }
            let word = |w: &str| mentions_word(s, w);
            n.identity |= word("identity");
            n.source |= word("source");
            n.connection |= word("connection");
            n.xds |= word("xds");
            n.state |= word("session") || word("rate") || word("kill") || word("clear_kill");
            n.definition |= word("definition");
            n.http |= word("http");
            n.responses |= [
                "direction",
                "server_to_client",
                "findings",
                "redact",
                "mcp.result",
                "mcp.error",
                "sampling/createMessage",
                "elicitation/create",
                "roots/list",
            ]
            .iter()
            .any(|w| s.contains(w));
            n.findings |= word("findings") || word("redact");
            n.volatile |= ["time.now_ns", "rand.", "uuid.", "http.send", "opa.runtime"]
                .iter()
                .any(|w| s.contains(w));
        }
        n.volatile |= n.state;
        // Definitions are kept per upstream cluster.
        if n.definition {
            n.xds = true;
        }
        n
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `word` occurs in `s` with no identifier character on either side.
fn mentions_word(s: &str, word: &str) -> bool {
    let b = s.as_bytes();
    s.match_indices(word).any(|(i, _)| {
        let before = i.checked_sub(1).and_then(|j| b.get(j)).copied();
        let after = b.get(i + word.len()).copied();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// `input` used other than as `input.path` or `input["literal"]`.
fn uses_input_whole(s: &str) -> bool {
    let b = s.as_bytes();
    s.match_indices("input").any(|(i, _)| {
        let before = i.checked_sub(1).and_then(|j| b.get(j)).copied();
        if before.is_some_and(|c| is_ident(c) || c == b'.') {
            return false;
        }
        let after = s.get(i + 5..).unwrap_or("");
        if after.as_bytes().first().copied().is_some_and(is_ident) {
            // A longer word (`inputs`, `input_schema`).
            return false;
        }
        let rest = after.trim_start_matches([' ', '\t']);
        match rest.as_bytes().first() {
            Some(b'.') => false,
            Some(b'[') => !rest[1..].trim_start().starts_with('"'),
            // Anything else uses `input` whole, unless it is prose in a
            // comment or a string ("its input schema").
            _ => !in_prose(s, i),
        }
    })
}

/// Whether byte `i` of `s` sits in a `#` comment (a `#` earlier on its
/// line, outside a string) or in a string on its line.
fn in_prose(s: &str, i: usize) -> bool {
    let start = s[..i].rfind('\n').map_or(0, |j| j + 1);
    let mut in_string = false;
    let mut escaped = false;
    for c in s[start..i].bytes() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'#' if !in_string => return true,
            _ => {}
        }
    }
    in_string
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    #[cfg_attr(
        all(target_arch = "wasm32", target_os = "unknown"),
        ignore = "reads policies/ from disk"
    )]
    fn shipped_policies_do_not_use_input_whole() {
        // Using `input` whole makes the filter fetch and build everything;
        // the shipped policies name what they read.
        let root =
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("policies");
        for dir in [root.clone(), root.join("library")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.to_string_lossy().to_string();
                if !name.ends_with(".rego") || name.ends_with("_test.rego") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(!uses_input_whole(&text), "{name}");
            }
        }
    }

    #[test]
    fn needs_follow_the_policy_text() {
        let n = Needs::from_sources(["allow if input.identity.claims.role == \"x\""]);
        assert!(n.identity && !n.source && !n.connection && !n.xds && !n.state && !n.definition);
        let n =
            Needs::from_sources(["deny if input.mcp.tool.definition.annotations.destructiveHint"]);
        assert!(n.definition && n.xds);
        assert!(!n.http && !n.state);
        // Words, not parts of words: `resources/read` is not `source`,
        // `generate` and `rate_limit` are not `rate`, `session_id` is an
        // `input.mcp` field, not session state.
        let n = Needs::from_sources([
            "deny if input.mcp.method == \"resources/read\"\nrate_limit := {\"entries\": [input.mcp.session_id]}\n# generate\n",
        ]);
        assert_eq!(n, Needs::default());
        for (text, check) in [
            (
                "deny if input.rate.session.count > 5",
                (|n: Needs| n.state) as fn(Needs) -> bool,
            ),
            ("deny if input[\"session\"].calls", |n| n.state),
            ("clear_kill if input.mcp.tool.name == \"unlock\"", |n| {
                n.state
            }),
            ("deny if input.http.headers[\"x\"]", |n| n.http),
            ("deny if input.source.address", |n| n.source),
        ] {
            assert!(check(Needs::from_sources([text])), "{text}");
        }
        // `input` as a whole: everything.
        for text in [
            "deny if walk(input, [p, v])",
            "deny if input[k] == 1",
            "x := json.marshal(input)",
            "deny if count(input) > 3",
            "deny if input in data.known",
            "x := input with input as {}",
        ] {
            assert_eq!(Needs::from_sources([text]), Needs::all(), "{text}");
        }
        // Prose in comments or strings, and paths, are not.
        for text in [
            "# the input is checked\ndeny if input.mcp.method == \"x\"",
            "import input.mcp.tool as t\ndeny if t.name == \"x\"",
            "deny if input . mcp.method == \"x\"",
            "deny if input.mcp.tool.definition.inputSchema.type == \"object\"",
            "msg := sprintf(\"%q does not match its input schema\", [input.mcp.tool.name])",
        ] {
            assert_ne!(Needs::from_sources([text]), Needs::all(), "{text}");
        }
    }
}
