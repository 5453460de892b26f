//! Integration tests of the `mcp-policy` binary: on the shipped policies/,
//! on recorded messages in tests/fixtures/messages/ (both protocol eras, a
//! batch, malformed and refused requests), and on small policies written
//! here. Every `eval` reply is also compared with the one the library's
//! request path gives for the same request, byte for byte.

// Tests may unwrap and index: the data-path lints ([workspace.lints]) are
// for the library code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_policy_cli::message::{self, ReadOptions};
use mcp_policy_core::config::settings::Config;
use mcp_policy_core::pipeline::request::{BodyAction, HeadersAction, Plugin};
use mcp_policy_core::policy::input::HttpRequest;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-policy");

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures/messages")
        .join(name)
        .display()
        .to_string()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

fn run(args: &[&str]) -> Run {
    run_stdin(args, None)
}

fn run_stdin(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("the binary runs");
    if let Some(data) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let r = Run {
        code: status
            .code()
            .expect("exited, not killed by a signal (no panic abort)"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked"),
        "the CLI panicked:\n{}",
        r.stderr
    );
    r
}

/// The check most tests make: run `args`, then the exit code must be `code`
/// and each of `stdout_has` must be in stdout (each of `stderr_has` in
/// stderr). Returns the run for further checks.
fn expect(args: &[&str], code: i32, stdout_has: &[&str], stderr_has: &[&str]) -> Run {
    let r = run(args);
    assert_eq!(r.code, code, "{args:?}: {}{}", r.stdout, r.stderr);
    for needle in stdout_has {
        assert!(
            r.stdout.contains(needle),
            "{args:?}: no {needle:?} in\n{}",
            r.stdout
        );
    }
    for needle in stderr_has {
        assert!(
            r.stderr.contains(needle),
            "{args:?}: no {needle:?} in\n{}",
            r.stderr
        );
    }
    r
}

/// (file name, contents) pairs.
type Files<'a> = &'a [(&'a str, &'a str)];

/// A fresh directory with these files.
fn dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mcp-policy-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    for (f, text) in files {
        let p = d.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// --- help, usage ----------------------------------------------------------

#[test]
fn help_for_every_command() {
    for args in [
        &["--help"][..],
        &["check", "--help"],
        &["eval", "--help"],
        &["test", "--help"],
    ] {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.contains("Usage: mcp-policy"),
            "{args:?}: {}",
            r.stdout
        );
        assert!(r.stdout.contains("Exit codes"), "{args:?}: {}", r.stdout);
    }
    assert!(run(&["eval", "--help"]).stdout.contains("--print-input"));
}

#[test]
fn usage_errors_exit_2() {
    let msg = fixture("legacy_cancelled.json");
    // (arguments, what stderr names)
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &[]),
        (&["frobnicate"], &[]),
        (&["check"], &[]),
        (&["check", "--format", "yaml", "policies"], &[]),
        (&["check", "no/such/dir"], &["no/such/dir"]),
        (&["eval", "policies"], &["MESSAGE"]),
        (&["eval", "policies", "no-such-message.json"], &[]),
        (&["eval", "policies", &msg, "--header", "nonsense"], &[]),
        (
            &["eval", "policies", &msg, "--set", "max_body_bytes=0"],
            &["max_body_bytes"],
        ),
    ];
    for (args, stderr_has) in cases {
        expect(args, 2, &[], stderr_has);
    }
}

// --- check -----------------------------------------------------------------

/// The policy modules of policies/ as the CLI names them (paths relative to
/// the folder), without tests.
fn shipped_modules() -> Vec<(String, String)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|x| x == "rego")
                && !p.to_str().unwrap().ends_with("_test.rego")
            {
                let name = p.strip_prefix(base).unwrap().to_str().unwrap().to_string();
                out.push((name, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("policies"), &root().join("policies"), &mut out);
    out
}

fn shipped_config() -> Config {
    let modules: serde_json::Map<String, Value> = shipped_modules()
        .into_iter()
        .map(|(n, s)| (n, Value::String(s)))
        .collect();
    let cfg = serde_json::json!({"policy": {"modules": modules}});
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
}

#[test]
fn check_the_shipped_policies() {
    let r = run(&["check", "policies"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("ok: ")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("; engine rvm; revision sha256:"),
        "{}",
        r.stdout
    );
    // The library has a few findings the analyses cannot prove harmless
    // (a `%q` on the tool name, values taken from a function or an index in
    // a rule with `else`); none is an error, none an input path.
    let j = run(&["check", "--format", "json", "policies"]).json();
    assert_eq!(j["ok"], true);
    for w in j["warnings"].as_array().unwrap() {
        assert!(w["code"] == "sprintf-verb", "{w}");
        assert!(w["file"].as_str().unwrap().contains("library/"), "{w}");
    }
    assert_eq!(j["engine"], "rvm");
    assert!(
        j["modules"]
            .as_array()
            .unwrap()
            .contains(&Value::from("policies/default.rego")),
        "{j}"
    );
    assert!(
        j["tests"]
            .as_array()
            .unwrap()
            .contains(&Value::from("policies/default_test.rego")),
        "{j}"
    );
    assert_eq!(
        j["modules"].as_array().unwrap().len(),
        shipped_modules().len()
    );
    // The revision is the one the filter logs for the same modules.
    assert_eq!(j["revision"], shipped_config().policy.revision());
    // One file: named by its file name, as tools/envoy_config.py does.
    let source = std::fs::read_to_string(root().join("policies/default.rego")).unwrap();
    let cfg = serde_json::json!({"policy": {"modules": {"default.rego": source}}});
    let c = Config::from_json(cfg.to_string().as_bytes()).unwrap();
    let j = run(&["check", "--format", "json", "policies/default.rego"]).json();
    assert_eq!(j["revision"], c.policy.revision());
}

#[test]
fn check_reports_errors_with_file_line_column() {
    let d = dir(
        "check-errors",
        &[
            ("a.rego", "package mcp\n\nimport rego.v1\n\nallow if {\n"),
            ("b_test.rego", "package mcp_test\n"),
        ],
    );
    let r = run(&["check", s(&d)]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let first = r.stdout.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("{}:6:1: ", d.join("a.rego").display())),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("failed:"), "{}", r.stdout);
    let j = run(&["check", "--format", "json", s(&d)]).json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["errors"][0]["line"], 6);
    assert_eq!(j["errors"][0]["column"], 1);

    // (directory, its files, what the report says)
    let allow = ("a.rego", "package mcp\nallow := true\n");
    let cases: &[(&str, Files, &str)] = &[
        (
            "check-unknown-fn",
            &[("a.rego", "package mcp\n\nallow if yaml.is_valid(input.x)\n")],
            "a.rego:3:10: Unknown function: 'yaml.is_valid'",
        ),
        (
            "check-no-mcp",
            &[("a.rego", "package other\nallow := true\n")],
            "package mcp",
        ),
        (
            "check-bad-test",
            &[allow, ("a_test.rego", "package t\ntest_x if {\n")],
            "a_test.rego:3:1: ",
        ),
        (
            "check-bad-data",
            &[allow, ("data.json", "{\"a\": }")],
            "data.json:1:7: data is not valid JSON",
        ),
    ];
    for (name, files, says) in cases {
        let d = dir(name, files);
        expect(&["check", s(&d)], 1, &[says], &[]);
    }
}

#[test]
fn check_warns_about_undocumented_input_paths() {
    let d = dir(
        "check-paths",
        &[(
            "p.rego",
            "package mcp\n\nimport rego.v1\n\ndefault allow := true\n\ndeny contains \"x\" if input.mcp.tool.nme == \"rm\"\n\ndeny contains \"y\" if input.http.headers[\"X-Api-Key\"] == \"\"\n",
        )],
    );
    // A reference to an undocumented input path fails the check by default.
    let r = run(&["check", s(&d)]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("p.rego:7:37: warning: input.mcp.tool.nme is not in the documented input (docs/input.md); did you mean input.mcp.tool.name?"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("use \"x-api-key\""), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("failed: 1 module, 0 test modules, 0 data files; 0 errors, 2 warnings"),
        "{}",
        r.stdout
    );
    // --allow-unknown-input relaxes that; --strict does not.
    let r = run(&["check", "--allow-unknown-input", s(&d)]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("2 warnings"), "{}", r.stdout);
    assert_eq!(
        run(&["check", "--strict", "--allow-unknown-input", s(&d)]).code,
        1
    );
    let j = run(&["check", "--format", "json", s(&d)]).json();
    assert_eq!(j["ok"], false);
    let w = j["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(w[0]["code"], "input-path");
    assert_eq!(w[0]["suggestion"], "did you mean input.mcp.tool.name?");
}

#[test]
fn check_reports_sprintf_and_engine_differences() {
    let d = dir(
        "check-lint",
        &[
            (
                "a.rego",
                "package mcp\nimport rego.v1\ndefault allow := true\n",
            ),
            (
                "p.rego",
                concat!(
                    "package mcp\n",
                    "import rego.v1\n",
                    "deny contains sprintf(\"tool %q\", [input.mcp.tool.name]) if input.mcp.method == \"tools/call\"\n",
                    "deny contains sprintf(\"%v and %v\", [input.mcp.method]) if input.mcp.method == \"ping\"\n",
                    "deny contains \"anonymous\" if { sub := input.identity.subject }\n",
                    "kind := \"a\" if { some t in input.mcp.params.tags; t == \"x\" } else := \"b\"\n",
                    "level := 1 if input.mcp.method == \"ping\"\n",
                    "level := 2 if input.mcp.kind == \"request\"\n",
                    "deny contains \"blocked\" if blocked\n",
                    "blocked if input.mcp.method == \"x\"\n",
                ),
            ),
        ],
    );
    let r = run(&["check", s(&d)]);
    assert_eq!(r.code, 0, "warnings only: {}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let has = |prefix: &str, text: &str| {
        assert!(
            lines.iter().any(|l| l.contains(prefix) && l.contains(text)),
            "no line with {prefix:?} and {text:?} in\n{}",
            r.stdout
        )
    };
    has(
        "p.rego:3:49: warning: `%q` with `input.mcp.tool.name`, which may not be a string",
        "use `%v`, or guard with `is_string(…)`",
    );
    has(
        "p.rego:4:22: warning: sprintf format \"%v and %v\" has 2 verbs but 1 argument given",
        "give one argument per verb",
    );
    has(
        "p.rego:8:1: warning: `level` is also defined at",
        "make the conditions exclusive",
    );
    has(
        "p.rego:9:28: warning: `blocked` is used above its definition",
        "define `blocked` above its first use",
    );
    assert!(r.stdout.contains("; 4 warnings"), "{}", r.stdout);
}

#[test]
fn check_names_the_interpreter_fallback() {
    let d = dir(
        "check-interp",
        &[(
            "p.rego",
            "package mcp\nimport rego.v1\nlimits[\"a\"] := 1\nallow if limits.a == 1\n",
        )],
    );
    expect(
        &["check", s(&d)],
        0,
        &["engine interpreter", "the RVM compiler refused it"],
        &[],
    );
}

// --- test ------------------------------------------------------------------

#[test]
fn test_runs_the_shipped_tests_by_default() {
    let r = run(&["test"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("PASS data.mcp_test.test_blocked_tool_denied"),
        "{}",
        r.stdout
    );
    let passed = r.stdout.lines().filter(|l| l.starts_with("PASS ")).count();
    assert!(passed >= 10, "{}", r.stdout);
    assert!(
        r.stdout
            .trim_end()
            .ends_with(&format!("{passed} passed, 0 failed")),
        "{}",
        r.stdout
    );
    let j = run(&[
        "test",
        "--format",
        "json",
        "policies/default.rego",
        "policies/default_test.rego",
    ])
    .json();
    let passed = j["passed"].as_u64().unwrap();
    assert!(passed >= 10, "{j}");
    assert_eq!(j["failed"], 0);
    assert_eq!(j["tests"].as_array().unwrap().len() as u64, passed);
    assert!(j["tests"][0]["location"]
        .as_str()
        .unwrap()
        .starts_with("policies/default_test.rego:"));
    let r = run(&["test", "--run", "send_email"]);
    assert!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("PASS "))
            .all(|l| l.contains("send_email")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.trim_end().ends_with(" passed, 0 failed"),
        "{}",
        r.stdout
    );
}

#[test]
fn failing_tests_fail_and_explain_with_v() {
    let d = dir(
        "test-fail",
        &[
            ("p.rego", "package mcp\nimport rego.v1\ndefault allow := false\nallow if input.x == 1\n"),
            ("p_test.rego", "package mcp_test\nimport rego.v1\nimport data.mcp\ntest_one if mcp.allow with input as {\"x\": 1}\ntest_two if mcp.allow with input as {\"x\": 2}\n"),
        ],
    );
    let r = expect(
        &["test", s(&d)],
        1,
        &["PASS data.mcp_test.test_one", "FAIL data.mcp_test.test_two"],
        &[],
    );
    assert!(!r.stdout.contains("p_test.rego:5"), "{}", r.stdout);
    assert!(
        r.stdout
            .trim_end()
            .ends_with("1 passed, 1 failed\n(run again with -v for where each failing test is and what it compared)"),
        "{}",
        r.stdout
    );
    let v = expect(
        &["test", "-v", s(&d)],
        1,
        &["p_test.rego:5", "undefined (a condition did not hold)"],
        &[],
    );
    assert!(!v.stdout.contains("run again with -v"), "{}", v.stdout);
    let d = dir("test-none", &[("p.rego", "package mcp\nallow := true\n")]);
    expect(&["test", s(&d)], 1, &["no tests found"], &[]);
}

// --- eval on recorded messages -----------------------------------------------

/// The reply the library's request path gives for the same request, driven
/// the way the adapter (crates/filter/src/proxy/http/) drives it: (status, body), or None if forwarded.
fn library_reply(plugin: &mut Plugin, file: &str) -> Option<(u32, String)> {
    let req = message::read(
        &std::fs::read(fixture(file)).unwrap(),
        ReadOptions::default(),
    )
    .unwrap();
    let http = HttpRequest::from_headers(req.headers.clone());
    let reply = match plugin.on_request_headers(&http, req.body.is_none()) {
        HeadersAction::Forward(_) => return None,
        HeadersAction::Reply(r) => r,
        HeadersAction::Inspect => match plugin
            .on_request_body(&http, req.body.as_deref().unwrap_or_default())
            .0
        {
            BodyAction::Forward(_) => return None,
            BodyAction::Reply(r) => r,
        },
    };
    Some((reply.status, String::from_utf8(reply.body).unwrap()))
}

/// (file, decision, HTTP status of the reply, JSON-RPC error code of the reply)
const FIXTURES: &[(&str, &str, Option<u64>, Option<i64>)] = &[
    ("legacy_initialize.json", "allow", None, None),
    ("legacy_notification_initialized.json", "allow", None, None),
    ("legacy_tools_call_echo.json", "allow", None, None),
    (
        "legacy_read_file_outside_workspace.json",
        "deny",
        Some(200),
        Some(-31403),
    ),
    ("legacy_cancelled.json", "allow", None, None),
    ("legacy_elicitation_response.json", "allow", None, None),
    ("legacy_delete_session.json", "allow", None, None),
    ("modern_server_discover.json", "allow", None, None),
    ("modern_tools_call_echo.json", "allow", None, None),
    (
        "modern_tools_call_delete_record.json",
        "deny",
        Some(200),
        Some(-31403),
    ),
    ("modern_resources_read_unicode.json", "allow", None, None),
    (
        "modern_header_mismatch.json",
        "deny",
        Some(400),
        Some(-32020),
    ),
    ("batch_2025_03_26.json", "deny", Some(200), None),
    ("malformed_truncated.json", "deny", Some(400), Some(-32700)),
    ("gzip_encoded.json", "deny", Some(415), Some(-32600)),
];

#[test]
fn eval_recorded_messages_like_the_filter() {
    let mut plugin = Plugin::from(shipped_config());
    for (file, decision, status, code) in FIXTURES {
        let r = run(&["eval", "--format", "json", "policies", &fixture(file)]);
        let j = r.json();
        assert_eq!(j["decision"], *decision, "{file}: {}", r.stdout);
        assert_eq!(r.code, if *decision == "allow" { 0 } else { 1 }, "{file}");
        assert_eq!(
            j["reply"]["status"].as_u64(),
            *status,
            "{file}: {}",
            r.stdout
        );
        if let Some(c) = code {
            assert_eq!(
                j["reply"]["body"]["error"]["code"].as_i64(),
                Some(*c),
                "{file}: {}",
                r.stdout
            );
        }
        // Byte for byte what the library's request path answers.
        let lib = library_reply(&mut plugin, file);
        let cli = j["reply"]["body_text"]
            .as_str()
            .map(|b| (j["reply"]["status"].as_u64().unwrap() as u32, b.to_string()));
        assert_eq!(cli, lib, "{file}");
        // The human-readable form agrees.
        let t = run(&["eval", "policies", &fixture(file)]);
        assert_eq!(t.code, r.code, "{file}");
        assert!(
            t.stdout.contains(&format!("result: {decision}")),
            "{file}: {}",
            t.stdout
        );
    }
}

#[test]
fn eval_shows_reasons_and_rules() {
    let r = run(&[
        "eval",
        "policies",
        &fixture("modern_tools_call_delete_record.json"),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("request tools/call \"delete_record\" (id 4)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("decision: deny: tool \"delete_record\" is blocked by policy"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("deny   policies/default.rego:20:1  \"tool \\\"delete_record\\\" is blocked by policy\""), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("allow  policies/default.rego:15:1  default allow := true"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("HTTP 200"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(r#"{"jsonrpc":"2.0","id":4,"error":{"code":-31403"#),
        "{}",
        r.stdout
    );

    let j = run(&[
        "eval",
        "--format",
        "json",
        "policies",
        &fixture("batch_2025_03_26.json"),
    ])
    .json();
    let m = j["messages"].as_array().unwrap();
    assert_eq!(m.len(), 5);
    assert_eq!(m[1]["decision"], "deny");
    assert_eq!(m[1]["rules"][0]["location"], "policies/default.rego:20:1");
    assert_eq!(m[2]["kind"], "notification");
    assert_eq!(m[4]["kind"], "invalid");
    assert_eq!(j["reply"]["body"].as_array().unwrap().len(), 4);
}

#[test]
fn print_input_shows_what_the_policy_sees() {
    let j = run(&[
        "eval",
        "--format",
        "json",
        "--print-input",
        "policies",
        &fixture("modern_tools_call_echo.json"),
    ])
    .json();
    let input = &j["messages"][0]["input"];
    assert_eq!(input["mcp"]["tool"]["name"], "echo");
    assert_eq!(input["mcp"]["protocol_version"], "2026-07-28");
    assert_eq!(input["mcp"]["headers"]["name"], "echo");
    assert_eq!(input["http"]["host"], "127.0.0.1:10000");
    assert_eq!(input["http"]["headers"]["mcp-method"], "tools/call");
    assert!(input["http"]["headers"].get("host").is_none());
    assert_eq!(
        j["messages"][0]["result"],
        serde_json::json!({"allow": true, "deny": [], "labels": []})
    );
    assert_eq!(j["messages"][0]["values"]["allow"], true);

    // A bare 2026-07-28 body gets the routing headers a client sends.
    let j = run(&[
        "eval",
        "--format",
        "json",
        "--print-input",
        "policies",
        &fixture("modern_resources_read_unicode.json"),
    ])
    .json();
    let input = &j["messages"][0]["input"];
    assert_eq!(
        input["http"]["headers"]["mcp-name"],
        "=?base64?ZGVtbzovL3JlY29yZHMvw7w=?="
    );
    assert_eq!(input["mcp"]["headers"]["name"], "demo://records/ü");
    let r = run(&[
        "eval",
        "--no-routing-headers",
        "policies",
        &fixture("modern_resources_read_unicode.json"),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("missing required MCP-Protocol-Version header"),
        "{}",
        r.stdout
    );

    // Transport requests: no input.mcp.
    let j = run(&[
        "eval",
        "--format",
        "json",
        "--print-input",
        "policies",
        &fixture("legacy_delete_session.json"),
    ])
    .json();
    assert_eq!(j["messages"][0]["kind"], "transport");
    assert!(j["messages"][0]["input"].get("mcp").is_none());
    assert_eq!(j["messages"][0]["input"]["http"]["method"], "DELETE");
}

#[test]
fn headers_flags_and_settings() {
    // A header that contradicts the body: the filter's mismatch answer.
    let r = run(&[
        "eval",
        "--format",
        "json",
        "policies",
        &fixture("legacy_tools_call_echo.json"),
        "-H",
        "Mcp-Method: tools/list",
    ]);
    let j = r.json();
    assert_eq!(j["reply"]["status"], 400);
    assert_eq!(j["reply"]["body"]["error"]["code"], -32020);
    let r = run(&[
        "eval",
        "--format",
        "json",
        "policies",
        "-m",
        &fixture("legacy_read_file_outside_workspace.json"),
        "--set",
        "deny_code=4031",
    ]);
    assert_eq!(r.json()["reply"]["body"]["error"]["code"], 4031);
    let r = run(&[
        "eval",
        "--format",
        "json",
        "policies",
        &fixture("legacy_tools_call_echo.json"),
        "--set",
        "max_body_bytes=10",
    ]);
    assert_eq!(r.json()["reply"]["status"], 413);
    let body = std::fs::read(fixture("legacy_cancelled.json")).unwrap();
    let r = run_stdin(&["eval", "policies", "-"], Some(&body));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn eval_an_input_document() {
    let d = dir(
        "eval-input",
        &[(
            "in.json",
            r#"{"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": "delete_record", "arguments": {}}}}"#,
        )],
    );
    let r = run(&["eval", "policies", "--input", s(&d.join("in.json"))]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("decision: deny: tool \"delete_record\" is blocked by policy"),
        "{}",
        r.stdout
    );
    let j = run(&[
        "eval",
        "--format",
        "json",
        "policies",
        "--input",
        s(&d.join("in.json")),
    ])
    .json();
    assert_eq!(
        j["messages"][0]["result"]["deny"],
        serde_json::json!(["tool \"delete_record\" is blocked by policy"])
    );
    assert_eq!(j["reply"], Value::Null);
}

#[test]
fn identity_flags_reach_only_policies_that_read_them() {
    let d = dir(
        "eval-identity",
        &[
            (
                "p/p.rego",
                "package mcp\nimport rego.v1\ndefault allow := false\nallow if \"admins\" in input.identity.claims.groups\nallow if input.source.principal == \"spiffe://a\"\n",
            ),
            ("q/q.rego", "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains input.source.principal if input.source.principal\n"),
            ("admin.json", r#"{"sub": "alice", "groups": ["admins"]}"#),
            ("dev.json", r#"{"sub": "bob", "groups": ["devs"]}"#),
        ],
    );
    let msg = fixture("legacy_tools_call_echo.json");
    let p_dir = d.join("p");
    let p = s(&p_dir);
    for (flag, value, code) in [
        ("--claims", d.join("admin.json"), 0),
        ("--claims", d.join("dev.json"), 1),
        ("--principal", "spiffe://a".into(), 0),
    ] {
        expect(&["eval", p, &msg, flag, s(&value)], code, &[], &[]);
    }
    let j = run(&[
        "eval",
        "--format",
        "json",
        "--print-input",
        p,
        &msg,
        "--claims",
        s(&d.join("admin.json")),
    ])
    .json();
    assert_eq!(j["messages"][0]["input"]["identity"]["subject"], "alice");
    // The caller's identity is read whatever the policy names (every audit
    // event records it and session binding needs it), so it is in the input
    // even of a policy that only reads `source`.
    let q_dir = d.join("q");
    let q = s(&q_dir);
    let no_session = fixture("modern_tools_call_echo.json");
    let j = run(&[
        "eval",
        "--format",
        "json",
        "--print-input",
        q,
        &no_session,
        "--claims",
        s(&d.join("admin.json")),
        "--principal",
        "spiffe://b",
    ])
    .json();
    let input = &j["messages"][0]["input"];
    assert_eq!(input["identity"]["subject"], "alice", "{input}");
    assert_eq!(input["source"]["principal"], "spiffe://b");
    assert_eq!(
        j["messages"][0]["reasons"],
        serde_json::json!(["spiffe://b"])
    );
}

#[test]
fn bad_input_never_panics() {
    let d = dir(
        "eval-garbage",
        &[
            ("p.rego", "package mcp\nallow := true\n"),
            ("garbage.bin", "\u{0}\u{1}\u{2}\u{fffd}"),
            (
                "capture.json",
                r#"{"headers": {"content-type": 7.5}, "body": {"a": [1, 2, {"b": null}]}}"#,
            ),
            (
                "deep.json",
                &format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
            ),
        ],
    );
    let p_file = d.join("p.rego");
    let p = s(&p_file);
    for m in ["garbage.bin", "capture.json", "deep.json"] {
        let r = run(&["eval", p, s(&d.join(m))]);
        assert!(
            r.code == 1 || r.code == 2,
            "{m}: {} {}{}",
            r.code,
            r.stdout,
            r.stderr
        );
    }
    std::fs::write(d.join("bin.rego"), [0xff, 0xfe, 0x00]).unwrap();
    let r = run(&["check", s(&d.join("bin.rego"))]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
}

#[test]
fn session_history_comes_from_earlier_messages() {
    let cap = |id: u32, name: &str| {
        serde_json::json!({
            "headers": {"content-type": "application/json", "mcp-session-id": "s1", "mcp-protocol-version": "2025-11-25"},
            "body": {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}}
        })
    };
    let d = dir(
        "eval-session",
        &[
            (
                "p/p.rego",
                "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains \"send after read\" if {\n\tinput.mcp.tool.name == \"send_email\"\n\tsome c in input.session.calls\n\tc.tool == \"read_file\"\n}\ndeny contains \"rate\" if input.rate.session.window > 3\n",
            ),
            ("session.json", &serde_json::json!([cap(1, "echo"), cap(2, "read_file")]).to_string()),
            ("long.json", &serde_json::json!([cap(1, "echo"), cap(2, "echo"), cap(3, "echo")]).to_string()),
            ("send.json", &cap(3, "send_email").to_string()),
        ],
    );
    let (p_dir, send) = (d.join("p"), d.join("send.json"));
    let (p, send) = (s(&p_dir), s(&send));
    expect(&["eval", p, send], 0, &[], &[]);
    expect(
        &["eval", p, send, "--session", s(&d.join("session.json"))],
        1,
        &[
            "[1] tools/call \"read_file\": allow",
            "decision: deny: send after read",
        ],
        &[],
    );
    let j = run(&[
        "eval",
        "--format",
        "json",
        "--print-input",
        p,
        send,
        "--session",
        s(&d.join("long.json")),
    ])
    .json();
    assert_eq!(j["messages"][0]["reasons"], serde_json::json!(["rate"]));
    assert_eq!(j["messages"][0]["input"]["rate"]["session"]["window"], 4);
    assert_eq!(j["session"].as_array().unwrap().len(), 3);
    assert!(run(&["check", p]).stdout.contains("reads state"));
}

/// A `deny` whose reason fails to format (regorus' `%q` takes only
/// strings): the error denies the message, naming the rule's line (it used
/// to make the rule silently not fire on the RVM).
#[test]
fn a_failing_deny_rule_denies_with_its_line() {
    let d = dir(
        "eval-swallowed",
        &[
            (
                "p.rego",
                "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains sprintf(\"bad path %q\", [p]) if {\n\tp := input.mcp.tool.arguments.path\n\tnot is_string(p)\n}\n",
            ),
            ("m.json", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":["/etc/passwd"]}}}"#),
        ],
    );
    let r = run(&["eval", s(&d.join("p.rego")), s(&d.join("m.json"))]);
    assert_ne!(r.code, 0, "denied: {}", r.stdout);
    assert!(
        r.stdout
            .contains("policy evaluation failed: builtin error at p.rego:4:"),
        "{}",
        r.stdout
    );
}

/// Conflicting values of a complete rule are an error, as in OPA and on
/// the interpreter (the RVM used to leave the rule undefined).
#[test]
fn conflicting_values_are_an_error_on_the_rvm() {
    let d = dir(
        "eval-conflict",
        &[
            (
                "p.rego",
                "package mcp\nimport rego.v1\ndefault allow := true\nlevel := 1 if input.mcp.method == \"ping\"\nlevel := 2 if input.mcp.method == \"ping\"\ndeny contains \"no level\" if not level\n",
            ),
            ("in.json", r#"{"mcp": {"kind": "request", "method": "ping"}}"#),
        ],
    );
    let j = run(&[
        "eval",
        "--format",
        "json",
        s(&d.join("p.rego")),
        "--input",
        s(&d.join("in.json")),
    ])
    .json();
    assert_eq!(j["policy"]["engine"], "rvm");
    let error = j["messages"][0]["result"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.starts_with("conflict error at p.rego:"), "{j}");
}

#[test]
fn tool_definitions_from_a_tools_list_answer() {
    let d = dir(
        "eval-tools",
        &[
            (
                "p.rego",
                "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains \"unknown tool\" if {\n\tinput.mcp.method == \"tools/call\"\n\tnot input.mcp.tool.definition\n}\ndeny contains \"destructive\" if input.mcp.tool.definition.annotations.destructiveHint\n",
            ),
            (
                "tools.json",
                r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"delete_record","annotations":{"destructiveHint":true},"inputSchema":{"type":"object"}}]}}"#,
            ),
        ],
    );
    let (p, tools) = (d.join("p.rego"), d.join("tools.json"));
    let echo = fixture("legacy_tools_call_echo.json");
    let delete = fixture("modern_tools_call_delete_record.json");
    let j = run(&["eval", "--format", "json", s(&p), &echo]).json();
    assert_eq!(
        j["messages"][0]["reasons"],
        serde_json::json!(["unknown tool"])
    );
    assert_eq!(run(&["eval", s(&p), &echo, "--tools", s(&tools)]).code, 0);
    let j = run(&[
        "eval",
        "--format",
        "json",
        "--print-input",
        s(&p),
        &delete,
        "--tools",
        s(&tools),
    ])
    .json();
    assert_eq!(
        j["messages"][0]["reasons"],
        serde_json::json!(["destructive"])
    );
    assert_eq!(
        j["messages"][0]["input"]["mcp"]["tool"]["definition"]["annotations"]["destructiveHint"],
        true
    );
    assert!(run(&["check", s(&p)]).stdout.contains("definition"));
}

// --- bundles --------------------------------------------------------------

/// A policy bundle (OPA's layout) of these files.
fn bundle(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
    let d = dir(&format!("bundle-{name}"), &[]);
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("bundle.tar.gz");
    std::fs::write(&p, gz.finish().unwrap()).unwrap();
    p
}

#[test]
fn check_eval_and_test_read_a_bundle() {
    let main = "package mcp\n\nimport rego.v1\n\ndefault allow := true\n\ndeny contains \"blocked\" if input.mcp.tool.name in data.acl.blocked\n";
    let test = "package mcp_test\n\nimport rego.v1\n\nimport data.mcp\n\ntest_blocked if {\n\tmcp.deny == {\"blocked\"} with input as {\"mcp\": {\"tool\": {\"name\": \"rm\"}}}\n}\n";
    let b = bundle(
        "ok",
        &[
            (".manifest", r#"{"revision": "v1"}"#),
            ("policy/main.rego", main),
            ("policy/main_test.rego", test),
            ("acl/data.json", r#"{"blocked": ["rm"]}"#),
        ],
    );
    expect(&["check", s(&b)], 0, &[], &[]);
    expect(
        &["test", s(&b)],
        0,
        &["PASS data.mcp_test.test_blocked"],
        &[],
    );
    let msg = dir(
        "bundle-msg",
        &[(
            "m.json",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","arguments":{}}}"#,
        )],
    );
    expect(
        &["eval", s(&b), s(&msg.join("m.json"))],
        1,
        &["blocked"],
        &[],
    );

    let bad = bundle(
        "bad",
        &[("policy/main.rego", "package mcp\n\nallow if {\n")],
    );
    expect(
        &["check", s(&bad)],
        1,
        &["bundle.tar.gz:policy/main.rego:4:1: "],
        &[],
    );
    let garbage = dir("bundle-garbage", &[("x.tar.gz", "not gzip")]);
    let r = run(&["check", s(&garbage.join("x.tar.gz"))]);
    assert_ne!(r.code, 0);
    assert!(
        (r.stdout.clone() + &r.stderr).contains("not a gzipped tar"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}
