use super::*;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn run(src: &str) -> Vec<String> {
    lint(&[(
        "p.rego".into(),
        format!("package mcp\nimport rego.v1\n{src}"),
    )])
    .into_iter()
    // `input.x` and the like are not documented: only the object.get
    // test looks at input paths.
    .filter(|f| f.code != "input-path" || src.contains("nmae"))
    .map(|f| format!("{}:{} {} {}", f.line, f.column, f.severity.as_str(), f.code))
    .collect()
}

#[test]
fn sprintf_argument_count_and_verbs() {
    let f = run(r#"deny contains sprintf("%v and %v", ["a"]) if true
deny contains sprintf("100%% %v", ["a"]) if true
deny contains sprintf("%d", ["seven"]) if true
deny contains sprintf("%d", [count(input.mcp.params)]) if true
deny contains sprintf("%q", [input.mcp.tool.name]) if true
deny contains sprintf("%q", [input.mcp.tool.name]) if is_string(input.mcp.tool.name)
deny contains sprintf("%v", [input.mcp.tool.name]) if true
deny contains msg if { n := input.mcp.tool.arguments.n; msg := sprintf("%d", [n]) }
f(x) := sprintf("%q", [x])
"#);
    assert_eq!(
        f,
        [
            "3:22 warning sprintf-args",
            "5:31 warning sprintf-verb",
            "7:44 warning sprintf-verb",
            "10:79 warning sprintf-verb",
        ],
        "{f:?}"
    );
}

#[test]
fn conflicting_definitions() {
    let f = run(r#"a := 1 if input.x
a := 2 if input.y
b := 1 if input.m == "x"
b := 2 if input.m == "y"
c := 1 if input.x
c := 1 if input.y
d := 1 if input.x
d := 2 if not input.x
e := input.a if input.x
e := input.b if input.y
default g := false
g := true if input.x
"#);
    assert_eq!(
        f,
        ["4:1 warning rule-conflict", "12:1 warning rule-conflict"],
        "{f:?}"
    );
}

#[test]
fn definition_order_in_a_later_module() {
    let a = "package mcp\nimport rego.v1\nallow if true\n".to_string();
    let b = "package mcp\nimport rego.v1\nr if c\nr if f(1)\nc := input.x\nf(x) if x == 1\n"
        .to_string();
    let got = |mods: &[(String, String)]| -> Vec<String> {
        lint(mods)
            .into_iter()
            .filter(|f| f.code != "input-path")
            .map(|f| format!("{} {}:{} {}", f.module, f.line, f.column, f.code))
            .collect()
    };
    assert_eq!(
        got(&[("a.rego".into(), a.clone()), ("b.rego".into(), b.clone())]),
        ["b.rego 3:6 definition-order"]
    );
    // The first module of the package is not affected.
    assert!(got(&[("b.rego".into(), b), ("a.rego".into(), a)]).is_empty());
}

#[test]
fn input_paths_are_not_checked_in_tests() {
    let f = lint(&[
        (
            "p.rego".into(),
            "package mcp\nimport rego.v1\nallow if input.mcp.tool.nmae == \"x\"\n".into(),
        ),
        (
            "p_test.rego".into(),
            "package t\nimport rego.v1\ntest_x if data.mcp.allow with input.mcp.tool.nmae as \"x\"\n"
                .into(),
        ),
    ]);
    assert_eq!(f.len(), 1, "{f:?}");
    let f = &f[0];
    assert_eq!((f.module.as_str(), f.line, f.column), ("p.rego", 3, 25));
    assert_eq!(f.code, "input-path");
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(
        f.suggestion.as_deref(),
        Some("did you mean input.mcp.tool.name?")
    );
}

#[test]
fn object_get_keys_are_checked() {
    let f = run("allow if object.get(input.mcp.tool, \"nmae\", \"\") == \"x\"\nallow if object.get(input.mcp, [\"tool\", \"name\"], \"\") == \"x\"\n");
    assert_eq!(f, ["3:38 warning input-path"], "{f:?}");
}
