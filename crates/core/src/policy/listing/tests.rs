use super::*;
use crate::policy::engine::Policy;
use regorus::Value;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn one(src: &str) -> Vec<(String, String)> {
    vec![("p.rego".to_string(), src.to_string())]
}

/// (rule, line, relaxed) of every changed definition.
fn changed(modules: &[(String, String)]) -> Vec<(String, u32, bool)> {
    transform(modules)
        .map(|t| {
            t.rules
                .into_iter()
                .map(|r| {
                    (
                        r.rule.trim_start_matches("data.").to_string(),
                        r.line,
                        r.relaxed,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn lines(src: &str) -> Vec<u32> {
    changed(&one(src)).into_iter().map(|(_, l, _)| l).collect()
}

const HEAD: &str = "package mcp\nimport rego.v1\n";

#[test]
fn direct_argument_references_and_negation() {
    let src = format!(
        "{HEAD}deny contains \"a\" if {{\n\tinput.mcp.tool.name == \"read_file\"\n\tnot startswith(input.mcp.tool.arguments.path, \"/w/\")\n}}\n\
         deny contains \"b\" if input.mcp.tool.name == \"x\"\n\
         deny contains \"c\" if input.mcp.params.arguments.x == 1\n\
         deny contains \"d\" if input.mcp.params.name == \"x\"\n\
         deny contains \"e\" if input.mcp.prompt.arguments.x\n\
         deny contains \"f\" if input.session.calls[_].allowed == false\n\
         deny contains \"g\" if input.rate.identity.window > 3\n\
         deny contains \"h\" if input.mcp.tool.definition.annotations.destructiveHint\n\
         deny contains \"i\" if input.identity.claims.role == \"x\"\n"
    );
    assert_eq!(lines(&src), [3, 8, 10, 11, 12]);
    let t = transform(&one(&src)).unwrap();
    let out = &t.modules[0].1;
    assert_eq!(out.lines().count(), src.lines().count());
    assert!(out.contains("deny contains \"a\" if {\n\tnot input.mcp.listing; input.mcp.tool.name"));
    assert!(out.contains("deny contains \"b\" if input.mcp.tool.name == \"x\"\n"));
    assert!(out.contains(
        "deny contains \"c\" if {not input.mcp.listing; input.mcp.params.arguments.x == 1 }\n"
    ));
    assert!(out.contains("deny contains \"b\" if input.mcp.tool.name == \"x\"\n"));
    assert_eq!(t.rules[0].because, "input.mcp.tool.arguments.path");
}

#[test]
fn input_read_whole_is_call_dependent() {
    let src = format!(
        "{HEAD}deny contains \"a\" if object.get(input, \"x\", 1) == 2\n\
         deny contains \"b\" if object.get(input.mcp, \"tool\", {{}}).arguments.x\n\
         deny contains \"c\" if input.mcp.tool[k] == 1\n\
         deny contains \"d\" if {{ some k; input[k] == 1 }}\n\
         deny contains \"e\" if input.mcp.tool.name == \"x\"\n\
         deny contains \"f\" if input.mcp.resource == {{}}\n\
         deny contains \"g\" if {{ not input.mcp; input.http.method == \"GET\" }}\n\
         deny contains \"h\" if {{ input.mcp.tool; not input.mcp.params }}\n\
         deny contains \"i\" if not input.mcp.tool.arguments\n\
         deny contains \"j\" if input.mcp == {{}}\n"
    );
    // An existence test of the objects that hold call-dependent parts
    // is not call-dependent (they exist for the listing and the call).
    assert_eq!(lines(&src), [3, 4, 5, 6, 11, 12]);
}

#[test]
fn helper_rules_functions_and_imports() {
    let src = format!(
        "{HEAD}import input.mcp.tool.arguments as args\nimport data.lib\n\
         bad_path if not startswith(input.mcp.tool.arguments.path, \"/w/\")\n\
         bad_via_alias if args.x == 1\n\
         ok_path(p) if startswith(p, \"/w/\")\n\
         reads_args(k) := input.mcp.tool.arguments[k]\n\
         named(n) if input.mcp.tool.name == n\n\
         deny contains \"a\" if bad_path\n\
         deny contains \"b\" if bad_via_alias\n\
         deny contains \"c\" if reads_args(\"x\") == 1\n\
         deny contains \"d\" if named(\"x\")\n\
         deny contains \"e\" if not ok_path(\"/etc\")\n\
         deny contains \"f\" if lib.far\n\
         deny contains \"g\" if data.lib.near\n\
         deny contains \"h\" if data.mcp.bad_path\n"
    );
    let lib = "package lib\nimport rego.v1\nfar if helper\nhelper if input.mcp.tool.arguments.x\nnear if input.identity.subject == \"a\"\n";
    let modules = vec![
        ("p.rego".to_string(), src),
        ("lib.rego".to_string(), lib.to_string()),
    ];
    let got: Vec<u32> = changed(&modules).into_iter().map(|(_, l, _)| l).collect();
    assert_eq!(got, [10, 11, 12, 15, 17]);
}

#[test]
fn variables_every_some_in_and_else_chains() {
    let src = format!(
        "{HEAD}deny contains msg if {{\n\tp := input.mcp.tool.arguments.path\n\tmsg := p\n}}\n\
         deny contains \"e\" if every v in input.mcp.tool.arguments {{ is_string(v) }}\n\
         deny contains k if some k, _ in input.mcp.tool.arguments\n\
         kind := \"a\" if {{ input.mcp.tool.arguments.x }} else := \"b\"\n\
         deny contains \"k\" if kind == \"b\"\n\
         plain := \"a\" if {{ input.mcp.tool.name == \"x\" }} else := \"b\"\n\
         deny contains \"p\" if plain == \"b\"\n\
         deny contains \"q\" if every v in [1] {{ v == input.mcp.params.x }}\n"
    );
    assert_eq!(lines(&src), [3, 7, 8, 10, 13]);
}

#[test]
fn rules_mentioning_listing_are_left_alone() {
    let src = format!(
        "{HEAD}deny contains \"a\" if {{ not input.mcp.listing; not input.mcp.tool.arguments.ok }}\n\
         deny contains \"b\" if {{ input.mcp.listing; not input.mcp.tool.arguments.ok }}\n\
         deny contains \"c\" if not input.mcp.tool.arguments.ok\n"
    );
    assert_eq!(lines(&src), [5]);
}

#[test]
fn sets_used_monotonically_are_split_by_definition() {
    let src = format!(
        "{HEAD}t_deny contains \"owner\" if input.identity.claims.tenant != \"a\"\n\
         t_deny contains \"arg\" if input.mcp.tool.arguments.tenant != \"a\"\n\
         t_more contains m if some m in t_deny\n\
         deny contains m if some m in t_more\n\
         u contains \"x\" if input.mcp.tool.arguments.y\n\
         u contains \"z\" if input.identity.subject == \"s\"\n\
         deny contains \"u\" if count(u) > 1\n\
         v contains \"x\" if input.mcp.tool.arguments.y\n\
         deny contains m if v[m]\n\
         allow if \"w\" in w\n\
         w contains \"w\" if input.mcp.tool.arguments.y\n"
    );
    // t_deny and v are split (their argument definition is guarded);
    // u is used by count, so `deny` using it is guarded whole; w is
    // used by `allow`, which gets a copy instead.
    let got = changed(&one(&src));
    let names: Vec<(&str, u32)> = got.iter().map(|(r, l, _)| (r.as_str(), *l)).collect();
    assert_eq!(
        names,
        [
            ("mcp.t_deny", 4),
            ("mcp.deny", 9),
            ("mcp.v", 10),
            ("mcp.allow", 12)
        ]
    );
    let t = transform(&one(&src)).unwrap();
    assert!(t.modules[0]
        .1
        .contains("t_deny contains \"arg\" if {not input.mcp.listing; "));
}

#[test]
fn a_kept_literal_starting_with_minus_stays_its_own_literal() {
    // `-2 in roles` after a newline would continue `true` before it
    // (`true - 2 in roles`) were the copy's literals not ended by `;`.
    let src = format!(
        "{HEAD}allow if {{\n\t-2 in input.identity.claims.roles\n\tinput.mcp.tool.arguments.x == 1\n}}\n"
    );
    let mut p = crate::policy::engine::Policy::compile(
        &one(&src),
        None,
        crate::policy::engine::DEFAULT_MAX_INSTRUCTIONS,
    )
    .unwrap();
    assert!(p.listing_fallback().is_none());
    let input =
        serde_json::json!({"mcp": {"listing": true}, "identity": {"claims": {"roles": [-2]}}});
    let r = p
        .evaluate(crate::policy::engine::json_to_value(&input).unwrap())
        .unwrap();
    assert!(r.allow);
}

#[test]
fn allow_gets_a_listing_copy_without_call_conditions() {
    let src = format!(
        "{HEAD}default allow := false\n\
         allow if {{\n\tinput.identity.claims.role == \"reader\"\n\tp := input.mcp.tool.arguments.path\n\tstartswith(p, \"/w/\")\n\tinput.mcp.tool.name == \"read_file\"\n}}\n\
         allow := true if input.identity.claims.role == \"admin\"\n\
         allow := false if input.mcp.tool.arguments.force\n"
    );
    let got = changed(&one(&src));
    assert_eq!(
        got,
        [
            ("mcp.allow".to_string(), 4, true),
            ("mcp.allow".to_string(), 11, false)
        ]
    );
    let t = transform(&one(&src)).unwrap();
    let out = &t.modules[0].1;
    assert!(out.ends_with(
        "\nallow if {\n\tinput.mcp.listing == true;\n\tinput.identity.claims.role == \"reader\";\n\tinput.mcp.tool.name == \"read_file\"\n}\n"
    ), "{out}");
    assert!(
        out.contains("allow := false if {not input.mcp.listing; input.mcp.tool.arguments.force }")
    );
}

#[test]
fn allow_copies_compile_next_to_their_originals() {
    let src = "package mcp\nimport rego.v1\ndefault allow := false\n\
        allow := true if { input.identity.subject == \"a\"; input.mcp.tool.arguments.x }\n\
        allow := true if input.identity.subject == \"b\"\n";
    let mut p = Policy::compile(&one(src), None, 100_000).unwrap();
    assert_eq!(p.listing_fallback(), None);
    let mut l = listing("r");
    l["identity"]["subject"] = "a".into();
    assert!(permits(&mut p, l));
}

#[test]
fn allow_else_chains() {
    let src = "package mcp\nimport rego.v1\n\
        allow := false if { input.mcp.tool.arguments.x == 1 } else := true if { input.identity.subject == \"s\" }\n";
    let mut p = Policy::compile(&one(src), None, 100_000).unwrap();
    assert_eq!(p.listing_fallback(), None);
    let mut l = listing("r");
    assert!(!permits(&mut p, l.clone()));
    l["identity"]["subject"] = "s".into();
    assert!(permits(&mut p, l));
    let mut c = call("r", "/a");
    c["identity"]["subject"] = "s".into();
    assert!(permits(&mut p, c.clone()));
    c["mcp"]["tool"]["arguments"]["x"] = 1.into();
    assert!(!permits(&mut p, c));
}

/// The issue's policy, evaluated as the filter does.
const ISSUE: &str = "package mcp\nimport rego.v1\n\
    default allow := false\n\
    allow if input.identity.claims.role in {\"reader\", \"admin\"}\n\
    deny contains \"files must be under /workspace\" if {\n\
    \tinput.mcp.tool.name == \"read_file\"\n\
    \tnot startswith(input.mcp.tool.arguments.path, \"/workspace/\")\n\
    }\n";

fn permits(p: &mut Policy, input: serde_json::Value) -> bool {
    let v = Value::from_json_str(&input.to_string()).unwrap();
    p.evaluate(v).unwrap().permits()
}

fn listing(role: &str) -> serde_json::Value {
    serde_json::json!({
        "identity": {"claims": {"role": role}},
        "mcp": {"listing": true, "kind": "request", "direction": "client_to_server",
                "method": "tools/call", "list_method": "tools/list",
                "tool": {"name": "read_file", "definition": {"name": "read_file"}},
                "params": {"name": "read_file"}}
    })
}

fn call(role: &str, path: &str) -> serde_json::Value {
    serde_json::json!({
        "identity": {"claims": {"role": role}},
        "mcp": {"kind": "request", "direction": "client_to_server", "method": "tools/call",
                "tool": {"name": "read_file", "arguments": {"path": path}},
                "params": {"name": "read_file", "arguments": {"path": path}}}
    })
}

#[test]
fn the_issue_policy_lists_what_the_caller_may_call() {
    let mut p = Policy::compile(&one(ISSUE), None, 100_000).unwrap();
    assert!(p.listing_fallback().is_none());
    assert!(permits(&mut p, listing("reader")));
    assert!(!permits(&mut p, listing("guest")));
    assert!(permits(&mut p, call("reader", "/workspace/a")));
    assert!(!permits(&mut p, call("reader", "/etc/passwd")));
    assert!(!permits(&mut p, call("guest", "/workspace/a")));
    let rules = p.call_dependent_rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (rules[0].rule.as_str(), rules[0].line),
        ("data.mcp.deny", 5)
    );
    // The revision is that of the sources as written.
    let untouched = Policy::compile(&one("package mcp\nallow := true\n"), None, 1000).unwrap();
    assert_ne!(p.revision(), untouched.revision());
    assert_eq!(
        p.revision(),
        Policy::compile(&one(ISSUE), None, 1000).unwrap().revision()
    );
}

#[test]
fn an_allow_that_reads_arguments_still_lists_for_its_role() {
    let src = "package mcp\nimport rego.v1\ndefault allow := false\n\
        allow if {\n\tinput.identity.claims.role == \"reader\"\n\tstartswith(input.mcp.tool.arguments.path, \"/workspace/\")\n}\n";
    let mut p = Policy::compile(&one(src), None, 100_000).unwrap();
    assert!(permits(&mut p, listing("reader")));
    assert!(!permits(&mut p, listing("guest")));
    assert!(permits(&mut p, call("reader", "/workspace/a")));
    assert!(!permits(&mut p, call("reader", "/etc/passwd")));
}

#[test]
fn errors_keep_their_lines() {
    // A runtime error in a guarded rule is reported at its own line.
    let src = "package mcp\nimport rego.v1\ndefault allow := true\n\
        deny contains \"x\" if {\n\tinput.mcp.tool.arguments.n / 0 == 1\n}\n";
    let p = Policy::compile(&one(src), None, 100_000).unwrap();
    assert_eq!(p.call_dependent_rules().len(), 1);
    let bad = "package mcp\nimport rego.v1\ndeny contains \"x\" if {\n\tinput.mcp.tool.arguments.x\n\tnot_a_function(1)\n}\n";
    let e = Policy::compile(&one(bad), None, 100_000).unwrap_err();
    assert!(
        e.to_string().contains(":5:") || e.to_string().contains("p.rego"),
        "{e}"
    );
}

#[test]
fn bodies_starting_or_ending_with_strings_compile() {
    let src = "package mcp\nimport rego.v1\ndefault allow := true\n\
        deny contains \"q\" if \"x\" == input.mcp.tool.arguments.y\n\
        deny contains \"r\" if input.mcp.tool.arguments.y == `x`\n\
        deny contains input.mcp.tool.arguments.z\n\
        deny contains \"s\" if { \"x\" == input.mcp.tool.arguments.y; input.mcp.params.w == \"v\" }\n";
    let mut p = Policy::compile(&one(src), None, 100_000).unwrap();
    assert_eq!(p.listing_fallback(), None);
    assert_eq!(p.call_dependent_rules().len(), 4);
    assert!(permits(&mut p, listing("reader")));
    let mut c = call("reader", "/a");
    c["mcp"]["tool"]["arguments"]["y"] = "x".into();
    let v = Value::from_json_str(&c.to_string()).unwrap();
    assert_eq!(p.evaluate(v).unwrap().deny, ["q", "r"]);
}

#[test]
fn comments_and_strings_before_a_body() {
    let src = "package mcp\nimport rego.v1\ndefault allow := true\n\
        deny contains \"a{\" if { # why {\n\tinput.mcp.tool.arguments.x\n\tinput.mcp.tool.name == \"n\"\n}\n\
        deny contains \"b\" if # not a brace {\n\tinput.mcp.tool.arguments.y\n";
    let t = transform(&one(src)).unwrap();
    assert!(t.modules[0]
        .1
        .contains("# why {\n\tnot input.mcp.listing; input.mcp.tool.arguments.x"));
    assert!(t.modules[0]
        .1
        .contains("{\n\t{not input.mcp.listing; input.mcp.tool.arguments.y }"));
    let p = Policy::compile(&one(src), None, 100_000).unwrap();
    assert_eq!(p.listing_fallback(), None);
    assert_eq!(p.call_dependent_rules().len(), 2);
}

#[test]
fn nothing_to_change_means_no_rewrite() {
    assert!(transform(&one("package mcp\nallow := true\n")).is_none());
    assert!(transform(&one("package mcp\nallow := \n")).is_none());
}
