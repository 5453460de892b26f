use super::*;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn one(src: &str) -> String {
    let m = vec![(
        "a.rego".to_string(),
        format!("package mcp\nimport rego.v1\n{src}\n"),
    )];
    match transform(&m) {
        Some(v) => v[0].1.lines().skip(2).collect::<Vec<_>>().join("\n"),
        None => "unchanged".into(),
    }
}

#[test]
fn call_operands_move_out() {
    assert_eq!(
        one(r#"allow if { not startswith(input.x, "a") }"#),
        r#"allow if { __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, "a") }"#
    );
    assert_eq!(
        one(r#"allow if not startswith(input.x, "a")"#),
        r#"allow if { __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, "a") }"#
    );
    assert_eq!(
        one(r#"allow if { not "a" in input.xs }"#),
        r#"allow if { __mcp_not0_0 := input.xs; not "a" in __mcp_not0_0 }"#
    );
    assert_eq!(
        one("m := {}\nallow if { not m[input.k] }"),
        "m := {}\nallow if { __mcp_not0_0 := input.k; not m[__mcp_not0_0] }"
    );
    assert_eq!(
        one("r := input.x\nallow if { not startswith(r, \"a\") }"),
        "r := input.x\nallow if { __mcp_not0_0 := r; not startswith(__mcp_not0_0, \"a\") }"
    );
}

#[test]
fn alone_or_unified_references_stay() {
    assert_eq!(one("allow if { not input.admin }"), "unchanged");
    assert_eq!(one(r#"allow if { not input.role == "x" }"#), "unchanged");
    assert_eq!(
        one(r#"allow if { not split(input.q, "/")[0] == "a" }"#),
        r#"allow if { __mcp_not0_0 := split(input.q, "/"); not __mcp_not0_0[0] == "a" }"#
    );
    assert_eq!(
        one(r#"allow if { y := "a"; not startswith(y, "a") }"#),
        "unchanged"
    );
    // `with` applies to the moved operand too, as in OPA.
    assert_eq!(
        one(r#"allow if { not startswith(input.x, "a") with input as {} }"#),
        r#"allow if { __mcp_not0_0 := input.x with input as {}; not startswith(__mcp_not0_0, "a") with input as {} }"#
    );
    // Unbound variables in the negation (OPA refuses these): as written.
    assert_eq!(
        one(r#"allow if { not startswith(input.roles[_], "a") }"#),
        "unchanged"
    );
    assert_eq!(
        one(r#"allow if { some i; not startswith(input.roles[i], "a") }"#),
        "unchanged"
    );
    // Bound ones move.
    assert_eq!(
        one(r#"allow if { some i in [0]; not startswith(input.roles[i], "a") }"#),
        r#"allow if { some i in [0]; __mcp_not0_0 := input.roles[i]; not startswith(__mcp_not0_0, "a") }"#
    );
    assert_eq!(
        one("f(x) if { not startswith(x.name, \"a\") }"),
        "f(x) if { __mcp_not0_0 := x.name; not startswith(__mcp_not0_0, \"a\") }"
    );
    assert_eq!(
        one(r#"allow if { not lower(input.x) == "a" }"#),
        r#"allow if { __mcp_not0_0 := lower(input.x); not __mcp_not0_0 == "a" }"#
    );
}

#[test]
fn scopes_imports_braces_and_names() {
    // `every` binds its key and value for its body.
    assert_eq!(
        one(r#"allow if { every v in input.xs { not startswith(v.name, "a") } }"#),
        r#"allow if { every v in input.xs { __mcp_not0_0 := v.name; not startswith(__mcp_not0_0, "a") } }"#
    );
    // A function's head value sees its arguments.
    assert_eq!(
        one(r#"f(x) := count([1 | not startswith(x.n, "a")])"#),
        r#"f(x) := count([1 | __mcp_not0_0 := x.n; not startswith(__mcp_not0_0, "a")])"#
    );
    // An imported name is a reference.
    let m = vec![(
        "a.rego".to_string(),
        "package mcp\nimport rego.v1\nimport data.lib.r\nallow if not startswith(r, \"a\")\n"
            .to_string(),
    )];
    let out = transform(&m).unwrap();
    assert!(
        out[0]
            .1
            .contains("allow if { __mcp_not0_0 := r; not startswith(__mcp_not0_0, \"a\") }"),
        "{out:?}"
    );
    // Braces are read from the syntax tree, not guessed from the text.
    assert_eq!(
        one("allow if { # only if\n not startswith(input.x, \"a\") }"),
        "allow if { # only if\n __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, \"a\") }"
    );
    assert_eq!(
        one("allow if # why\n  not startswith(input.x, \"a\")"),
        "allow if # why\n  { __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, \"a\") }"
    );
    // A name the policy already uses is not reused.
    assert_eq!(
        one("allow if { __mcp_not0_0 := 5; not startswith(input.x, \"a\") }"),
        "allow if { __mcp_not0_0 := 5; __mcp_not_0_0 := input.x; not startswith(__mcp_not_0_0, \"a\") }"
    );
    // A membership inside an operand moves its operands, not itself.
    assert_eq!(
        one(r#"allow if not ("a" in input.xs) == true"#),
        r#"allow if { __mcp_not0_0 := input.xs; not ("a" in __mcp_not0_0) == true }"#
    );
}

#[test]
fn negations_in_comprehensions_and_nested() {
    assert_eq!(
        one(r#"allow if { c := [1 | not startswith(input.x, "a")]; count(c) == 1 }"#),
        r#"allow if { c := [1 | __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, "a")]; count(c) == 1 }"#
    );
    // An operand holding a negation of its own: the inner one next pass.
    let out = one(r#"allow if { not f(count([1 | not startswith(input.x, "a")])) }"#);
    assert!(
        out.contains("__mcp_not0_1 := count([") && out.contains("not f(__mcp_not0_1)"),
        "{out}"
    );
    assert!(out.contains("__mcp_not1_0 := input.x"), "{out}");
}
