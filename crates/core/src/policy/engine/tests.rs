use super::*;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn compile(src: &str) -> Policy {
    Policy::compile(
        &[("p.rego".into(), src.into())],
        None,
        DEFAULT_MAX_INSTRUCTIONS,
    )
    .expect("compiles")
}

fn input(json: &str) -> Value {
    Value::from_json_str(json).expect("json")
}

#[test]
fn allow_and_deny_are_read() {
    let mut p = compile(
        r#"package mcp
default allow := false
allow if input.mcp.method == "tools/call"
deny contains "no secrets" if input.mcp.tool.name == "secret"
"#,
    );
    assert_eq!(p.engine_kind(), EngineKind::Rvm);
    let r = p
        .evaluate(input(
            r#"{"mcp":{"method":"tools/call","tool":{"name":"x"}}}"#,
        ))
        .unwrap();
    assert!(r.permits());
    let r = p
        .evaluate(input(
            r#"{"mcp":{"method":"tools/call","tool":{"name":"secret"}}}"#,
        ))
        .unwrap();
    assert!(r.allow);
    assert_eq!(r.deny, vec!["no secrets".to_string()]);
    let r = p.evaluate(input(r#"{"mcp":{"method":"ping"}}"#)).unwrap();
    assert!(!r.allow && !r.permits());
}

#[test]
fn allow_must_be_exactly_true() {
    let mut p = compile("package mcp\nallow := \"yes\"\n");
    assert!(!p.evaluate(input("{}")).unwrap().permits());
    let mut p = compile("package mcp\nallow := 1\n");
    assert!(!p.evaluate(input("{}")).unwrap().permits());
}

#[test]
fn missing_allow_denies_and_deny_alone_is_fine() {
    let mut p = compile("package mcp\ndeny contains \"x\" if input.a == 1\n");
    let r = p.evaluate(input(r#"{"a":2}"#)).unwrap();
    assert!(!r.allow && r.deny.is_empty());
}

#[test]
fn optional_outputs_are_read() {
    let mut p = compile(
        r#"package mcp
allow := true
denial := {"as": "tool_result", "code": 4001, "message": "nope", "http_status": 403}
rewrite["limit"] := 10
request_headers := {"X-MCP-Tool": "echo"}
response_headers["x-policy"] := "v1"
labels contains "sensitive_read"
"#,
    );
    let r = p.evaluate(input("{}")).unwrap();
    assert!(r.denial.as_tool_result);
    assert_eq!(r.denial.code, Some(4001));
    assert_eq!(r.denial.message.as_deref(), Some("nope"));
    assert_eq!(r.denial.http_status, Some(403));
    assert_eq!(r.rewrite, vec![("limit".to_string(), Value::from(10u64))]);
    assert_eq!(
        r.request_headers,
        vec![("x-mcp-tool".to_string(), "echo".to_string())]
    );
    assert_eq!(
        r.response_headers,
        vec![("x-policy".to_string(), "v1".to_string())]
    );
    assert_eq!(r.labels, vec!["sensitive_read".to_string()]);
}

#[test]
fn bad_optional_outputs_are_evaluation_errors() {
    for bad in [
        "denial := {\"code\": -32001}",
        "denial := {\"as\": \"html\"}",
        "denial := {\"http_status\": 99}",
        "request_headers := {\"bad name\": \"x\"}",
        "request_headers := {\"x-a\": \"a\\r\\nb\"}",
        "request_headers := {\"content-length\": \"1\"}",
        "rewrite := [1]",
        "labels := \"x\"",
    ] {
        let mut p = compile(&format!("package mcp\nallow := true\n{bad}\n"));
        assert!(p.evaluate(input("{}")).is_err(), "{bad}");
    }
}

#[test]
fn rate_limit_is_read_and_checked() {
    let mut p = compile(
        "package mcp\nallow := true\nrate_limit := {\"entries\": {\"principal\": \"sub:alice\", \"tool\": input.t}, \"cost\": 3}\n",
    );
    let r = p.evaluate(input(r#"{"t":"query"}"#)).unwrap();
    let rl = r.rate_limit.expect("rate_limit");
    assert_eq!(rl.cost, 3);
    assert_eq!(
        rl.headers(),
        vec![
            (
                "x-mcp-ratelimit-principal".to_string(),
                "sub:alice".to_string()
            ),
            ("x-mcp-ratelimit-tool".to_string(), "query".to_string()),
            ("x-mcp-ratelimit-cost".to_string(), "3".to_string()),
        ]
    );
    let mut p =
        compile("package mcp\nallow := true\nrate_limit := {\"entries\": {\"tool\": \"t\"}}\n");
    assert_eq!(p.evaluate(input("{}")).unwrap().rate_limit.unwrap().cost, 1);
    for bad in [
        "rate_limit := {\"entries\": {}}",
        "rate_limit := {\"entries\": {\"Tool\": \"x\"}}",
        "rate_limit := {\"entries\": {\"cost\": \"x\"}}",
        "rate_limit := {\"entries\": {\"t\": \"\"}}",
        "rate_limit := {\"entries\": {\"t\": \"a\\nb\"}}",
        "rate_limit := {\"entries\": {\"t\": [1]}}",
        "rate_limit := {\"entries\": {\"t\": \"x\"}, \"cost\": -1}",
        "rate_limit := {\"entries\": {\"t\": \"x\"}, \"cost\": 1.5}",
        "rate_limit := {\"entries\": {\"t\": \"x\"}, \"cost\": 1000001}",
        "rate_limit := {\"entries\": {\"t\": \"x\"}, \"weight\": 1}",
        "rate_limit := \"x\"",
    ] {
        let mut p = compile(&format!("package mcp\nallow := true\n{bad}\n"));
        assert!(p.evaluate(input("{}")).is_err(), "{bad}");
    }
}

#[test]
fn multiple_reasons_are_kept() {
    let mut p = compile("package mcp\nallow := true\ndeny contains \"b\"\ndeny contains \"a\"\n");
    let r = p.evaluate(input("{}")).unwrap();
    assert_eq!(r.deny, vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn data_numbers_regorus_would_expand_are_refused() {
    // Configuration or bundle `data` reaches regorus too: the same
    // pre-scan as bodies, so `0e20000000` is refused, not built.
    let module = [(
        "p.rego".to_string(),
        "package mcp\nallow := true\n".to_string(),
    )];
    let data: serde_json::Value = serde_json::from_str(r#"{"limits": {"x": 0e20000000}}"#).unwrap();
    // No clock on wasm32-unknown-unknown (std::time::Instant panics there).
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    let t = std::time::Instant::now();
    let e = Policy::compile(&module, Some(&data), DEFAULT_MAX_INSTRUCTIONS).unwrap_err();
    assert!(e.to_string().contains("exponent"), "{e}");
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
    let data: serde_json::Value = serde_json::from_str(r#"{"x": [1e-5, 1.5E+3, -0.0]}"#).unwrap();
    assert!(Policy::compile(&module, Some(&data), DEFAULT_MAX_INSTRUCTIONS).is_ok());
}

#[test]
fn data_is_visible() {
    let data = serde_json::json!({"blocked": ["rm"]});
    let mut p = Policy::compile(
        &[(
            "p.rego".into(),
            "package mcp\nallow := true\ndeny contains \"blocked\" if input.t in data.blocked\n"
                .into(),
        )],
        Some(&data),
        DEFAULT_MAX_INSTRUCTIONS,
    )
    .unwrap();
    assert_eq!(p.evaluate(input(r#"{"t":"rm"}"#)).unwrap().deny.len(), 1);
    assert_eq!(p.evaluate(input(r#"{"t":"ls"}"#)).unwrap().deny.len(), 0);
}

#[test]
fn compile_errors_name_module_and_line() {
    let err = Policy::compile(
        &[("bad.rego".into(), "package mcp\n\nallow if {\n".into())],
        None,
        DEFAULT_MAX_INSTRUCTIONS,
    )
    .unwrap_err();
    assert_eq!(err.location.as_deref(), Some("bad.rego:4:1"));
    assert!(!err.message.contains('\n'), "{}", err.message);
    assert!(err.to_string().starts_with("bad.rego:4:1: "), "{err}");
}

#[test]
fn unknown_functions_are_compile_errors() {
    let err = Policy::compile(
        &[(
            "f.rego".into(),
            "package mcp\n\nallow if nope.fn(1)\n".into(),
        )],
        None,
        DEFAULT_MAX_INSTRUCTIONS,
    )
    .unwrap_err();
    assert_eq!(err.location.as_deref(), Some("f.rego:3:10"));
    assert!(err.message.contains("nope.fn"), "{err}");
}

#[test]
fn nested_compile_errors_keep_the_specific_message() {
    let err = Policy::compile(
        &[(
            "a.rego".into(),
            "package mcp\nallow if { x := nope.fn(\"a\"); x }\n".into(),
        )],
        None,
        DEFAULT_MAX_INSTRUCTIONS,
    )
    .unwrap_err();
    assert!(err.message.contains("nope.fn"), "{err}");
    assert!(
        err.location
            .as_deref()
            .is_some_and(|l| l.starts_with("a.rego:2:")),
        "{err}"
    );
}

#[test]
fn constructs_the_rvm_lacks_fall_back_to_the_interpreter() {
    let mut p = compile("package mcp\nlimits[\"a\"] := 1\nallow if limits.a == 1\n");
    assert_eq!(p.engine_kind(), EngineKind::Interpreter);
    assert!(p.evaluate(input("{}")).unwrap().permits());
    let mut p = compile("package mcp\nallow if { print(\"x\"); true }\n");
    assert_eq!(p.engine_kind(), EngineKind::Interpreter);
    assert!(p.evaluate(input("{}")).unwrap().permits());
}

// Native only: its two-million-element comprehension crashes Node's WASI
// runner (a SIGSEGV in node, not a wasm trap). Inside Envoy the same
// budget is shown by tests/e2e/test_e2e_http.py
// (test_the_interpreter_fallback_is_bounded_by_time).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn the_interpreter_is_bounded_by_time() {
    let mut p = Policy::compile(
        &[("p.rego".into(), RUNAWAY_ON_THE_INTERPRETER.into())],
        None,
        u32::MAX as usize,
    )
    .expect("compiles");
    assert_eq!(p.engine_kind(), EngineKind::Interpreter);
    p.set_interpreter_time_limit(std::time::Duration::from_millis(20));
    let err = p.evaluate(input("{}")).unwrap_err();
    assert!(err.to_string().to_lowercase().contains("time"), "{err}");
    assert_eq!(err.kind, ErrorKind::Limit);
}

const RUNAWAY_ON_THE_INTERPRETER: &str = "package mcp\nallow if { x with input as {\"a\": 1} }\nx if count([y | some y in numbers.range(1, 2000000); y % 7 == 0]) > 0\n";

#[test]
fn the_interpreter_is_bounded_by_work_done() {
    let mut p = Policy::compile(
        &[("p.rego".into(), RUNAWAY_ON_THE_INTERPRETER.into())],
        None,
        10_000,
    )
    .expect("compiles");
    assert_eq!(p.engine_kind(), EngineKind::Interpreter);
    // No time limit at all: the step budget alone stops it.
    let err = p.evaluate(input("{}")).unwrap_err();
    assert!(err.to_string().contains("work budget of 10000"), "{err}");
    assert_eq!(err.kind, ErrorKind::Limit);
    // A small policy fits in the same budget.
    let mut ok = Policy::compile(
        &[(
            "p.rego".into(),
            "package mcp\nallow if x with input as {\"a\": 1}\nx if input.a == 1\n".into(),
        )],
        None,
        10_000,
    )
    .expect("compiles");
    assert!(ok.evaluate(input("{}")).unwrap().allow);
}

#[test]
fn with_falls_back_to_the_interpreter() {
    let mut p = compile("package mcp\nallow if x with input as {\"a\": 1}\nx if input.a == 1\n");
    assert_eq!(p.engine_kind(), EngineKind::Interpreter);
    assert!(p.evaluate(input("{}")).unwrap().permits());
}

#[test]
fn package_mcp_is_required() {
    let err = Policy::compile(
        &[("x.rego".into(), "package other\nallow := true\n".into())],
        None,
        DEFAULT_MAX_INSTRUCTIONS,
    )
    .unwrap_err();
    assert!(err.message.contains("package mcp"), "{err}");
}

#[test]
fn builtins_authors_need_are_available() {
    let mut p = compile(
        r#"package mcp
allow if {
    regex.match(`^read_[a-z]+$`, input.t)
    glob.match("files/*", ["/"], input.p)
    time.now_ns() > 0
    startswith(input.t, "read_")
    json.unmarshal("{\"a\":1}").a == 1
    count({1, 2} | {3}) == 3
    net.cidr_contains("10.0.0.0/8", "10.1.2.3")
    base64.decode("eA==") == "x"
    urlquery.encode("a b&c") == "a+b%26c"
    urlquery.decode("caf%C3%A9+x") == "café x"
    urlquery.encode_object({"q": "ü/ß"}) == "q=%C3%BC%2F%C3%9F"
    urlquery.decode_object("a=1&a=2&b=%E2%9C%93") == {"a": ["1", "2"], "b": ["✓"]}
    time.clock([0, "UTC"]) == [0, 0, 0]
}
"#,
    );
    assert!(p
        .evaluate(input(r#"{"t":"read_file","p":"files/a"}"#))
        .unwrap()
        .permits());
}

/// Named IANA zones (OPA's time.* builtins with a zone such as
/// "Europe/Paris"): standard and summer time, a half-hour zone, a link
/// (US/Pacific), a date past the last listed transition (the zone's
/// rule), and exact names only.
#[test]
fn named_time_zones_are_available() {
    let mut p = compile(
        r#"package mcp
winter := 1700000000000000000
summer := 1690000000000000000
y2100 := 4118083200000000000
allow if {
    time.clock([winter, "UTC"]) == [22, 13, 20]
    time.clock([winter, "Europe/Paris"]) == [23, 13, 20]
    time.clock([summer, "Europe/Paris"]) == [6, 26, 40]
    time.clock([summer, "America/New_York"]) == [0, 26, 40]
    time.clock([summer, "Asia/Kolkata"]) == [9, 56, 40]
    time.date([summer, "US/Pacific"]) == [2023, 7, 21]
    time.clock([y2100, "Europe/Paris"]) == [2, 0, 0]
    time.weekday([winter, "Pacific/Kiritimati"]) == "Wednesday"
}
"#,
    );
    assert!(p.evaluate(input("{}")).unwrap().permits());
    for zone in ["Mars/Olympus", "europe/paris", "Europe/Paris "] {
        let src = format!("package mcp\nallow if time.clock([0, {zone:?}])\n");
        let err = compile(&src).evaluate(input("{}")).unwrap_err();
        assert!(
            err.message.contains("failed to parse timezone"),
            "{zone}: {err}"
        );
    }
}

#[test]
fn runaway_policies_hit_the_instruction_budget() {
    let mut p = Policy::compile(
        &[(
            "loop.rego".into(),
            "package mcp\nallow if { count([x | some x in numbers.range(1, 100000)]) > 0 }\n"
                .into(),
        )],
        None,
        1000,
    )
    .unwrap();
    assert_eq!(p.engine_kind(), EngineKind::Rvm);
    assert!(p.evaluate(input("{}")).is_err());
}

fn decide(src: &str, json: &str) -> Result<PolicyResult, PolicyError> {
    let full = format!("package mcp\n\nimport rego.v1\n\ndefault allow := true\n\n{src}\n");
    let mut p = compile(&full);
    p.evaluate(input(json))
}

#[test]
fn policy_errors_inside_deny_rules_deny_with_kind_and_line() {
    let args = r#"{"mcp": {"tool": {"name": "t", "arguments": {"limit": "abc"}}}}"#;
    let e = decide(
        "deny contains \"too many\" if to_number(input.mcp.tool.arguments.limit) > 5",
        args,
    )
    .expect_err("a failing builtin in a deny rule denies");
    assert_eq!(e.kind, ErrorKind::Builtin);
    assert!(
        e.location
            .as_deref()
            .is_some_and(|l| l.starts_with("p.rego:7:")),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("builtin error at p.rego:7:"),
        "{e}"
    );
    assert!(e.message.contains("to_number"), "{e}");
    // Under `not`, in `every` and in comprehensions too.
    for src in [
        "deny contains \"x\" if not to_number(input.mcp.tool.arguments.limit)",
        "deny contains \"x\" if every y in [1] { to_number(input.mcp.tool.arguments.limit) > y }",
        "deny contains \"x\" if count([1 | to_number(input.mcp.tool.arguments.limit)]) == 0",
        "deny contains \"x\" if input.mcp.tool.arguments.limit + 1 > 0",
    ] {
        let e = decide(src, args).expect_err(src);
        assert_eq!(e.kind, ErrorKind::Builtin, "{src}: {e}");
    }
    // A comparison across types is not an error (OPA orders by type).
    let r = decide(
        "deny contains \"big\" if input.mcp.tool.arguments.limit > 5",
        args,
    )
    .unwrap();
    assert_eq!(r.deny, vec!["big".to_string()]);
}

#[test]
fn conflicting_values_are_errors() {
    let e = decide(
        "x := 1 if true\nx := 2 if true\ndeny contains \"one\" if x == 1",
        "{}",
    )
    .expect_err("conflict");
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.to_string().starts_with("conflict error at p.rego:"),
        "{e}"
    );
    let e = decide(
        "f(a) := 1 if a\nf(a) := 2 if a\ndeny contains \"one\" if f(true) == 1",
        "{}",
    )
    .expect_err("function conflict");
    assert_eq!(e.kind, ErrorKind::Conflict);
    // The same value twice is no conflict.
    assert!(decide(
        "x := 1 if true\nx := 1 if true\ndeny contains \"one\" if x == 1",
        "{}"
    )
    .is_ok());
}

#[test]
fn else_follows_a_body_without_a_value() {
    let r = decide(
        "r := x if { x := input.nope } else := \"fallback\"\ndeny contains r if true",
        "{}",
    )
    .unwrap();
    assert_eq!(r.deny, vec!["fallback".to_string()]);
    let r = decide(
        "r := x if { some x in input.empty } else := \"none\"\ndeny contains r if true",
        r#"{"empty": []}"#,
    )
    .unwrap();
    assert_eq!(r.deny, vec!["none".to_string()]);
}

#[test]
fn builtin_errors_can_be_read_as_undefined() {
    let src = "package mcp\n\nimport rego.v1\n\ndefault allow := true\n\n\
               deny contains \"x\" if to_number(input.v) > 5\n";
    for interpreter in [false, true] {
        let mut p = compile(src);
        if interpreter {
            p.use_interpreter();
        }
        assert!(p.evaluate(input(r#"{"v": "abc"}"#)).is_err());
        p.set_builtin_errors(BuiltinErrors::Undefined);
        let r = p.evaluate(input(r#"{"v": "abc"}"#)).unwrap();
        assert!(r.permits(), "interpreter={interpreter}");
    }
}

#[test]
fn numbers_in_strings_are_never_built_digit_by_digit() {
    // regorus 0.14.1 built 10^N exactly for `0e20000000` (seconds of
    // CPU from 10 bytes); the patched parser reads zero as zero and
    // refuses values past 4300 digits (vendor/regorus/PATCHES.md).
    let d = |src: &str| decide(src, "{}");
    let r = d("deny contains sprintf(\"%v\", [to_number(\"0e20000000\")]) if true").unwrap();
    assert_eq!(r.deny, vec!["0".to_string()]);
    let r = d("deny contains sprintf(\"%v\", [json.unmarshal(\"[0e20000000]\")]) if true").unwrap();
    assert_eq!(r.deny, vec!["[0]".to_string()]);
    let e = d("deny contains \"x\" if to_number(\"1e20000000\") > 0").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Builtin, "{e}");
    let long = format!("1{}", "0".repeat(5000));
    let e = decide(
        "deny contains \"x\" if to_number(input.n) > 0",
        &format!("{{\"n\": \"{long}\"}}"),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Builtin, "{e}");
    // Ordinary values are exact as before.
    let r =
        d("deny contains sprintf(\"%v\", [to_number(\"12345678901234567890\")]) if true").unwrap();
    assert_eq!(r.deny, vec!["12345678901234567890".to_string()]);
    let r = d("deny contains sprintf(\"%v\", [to_number(\"1.5e3\")]) if true").unwrap();
    assert_eq!(r.deny, vec!["1500".to_string()]);
}

#[test]
fn one_object_key_with_two_values_is_a_conflict() {
    // The order of a client's pairs must not choose the value.
    let pairs = r#"{"p": [{"k": "role", "v": "admin"}, {"k": "role", "v": "user"}]}"#;
    for interpreter in [false, true] {
        let mut p = compile(
            "package mcp\n\nimport rego.v1\n\ndefault allow := true\n\n\
             deny contains \"admin\" if {\n\tm := {x.k: x.v | some x in input.p}\n\tm.role == \"admin\"\n}\n",
        );
        if interpreter {
            p.use_interpreter();
        }
        let e = p.evaluate(input(pairs)).expect_err("conflict");
        assert_eq!(
            e.kind,
            ErrorKind::Conflict,
            "interpreter={interpreter}: {e}"
        );
    }
    let e = decide(
        "limit[t] := 1 if some t in input.a\nlimit[t] := 2 if some t in input.b\ndeny contains \"x\" if limit.x > 1",
        r#"{"a": ["x"], "b": ["x"]}"#,
    )
    .expect_err("partial object conflict");
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    // The same value twice is fine.
    assert!(decide(
        "deny contains \"x\" if { m := {x.k: 1 | some x in input.p}; m.role == 2 }",
        pairs
    )
    .is_ok());
}
