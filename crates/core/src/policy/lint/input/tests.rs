use super::*;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn findings(src: &str) -> Vec<String> {
    let mut e = regorus::Engine::new();
    e.set_rego_v0(false);
    e.add_policy("p.rego".into(), src.into()).unwrap();
    check_modules(e.get_modules())
        .into_iter()
        .map(|f| match f.suggestion {
            Some(s) => format!("{}:{}: {}; {s}", f.line, f.col, f.message),
            None => format!("{}:{}: {}", f.line, f.col, f.message),
        })
        .collect()
}

#[test]
fn documented_paths_pass() {
    let f = findings(
        r#"package mcp
import rego.v1
allow if input.mcp.tool.name == "x"
allow if input.mcp.tool.arguments.path.deep.down
allow if input.mcp.params._meta["io.modelcontextprotocol/clientInfo"]
allow if input.http.headers["mcp-session-id"]
allow if input.identity.claims.groups[_] == "admin"
allow if { some k, v in input.mcp.tool.arguments; k == v }
allow if input.mcp[k].name == "x"
allow if input.session.calls[_].tool == "x"
allow if count(input.session.calls[0].labels) > input.rate.session.tools.x
allow if not input.mcp
deny contains input.mcp.method if input.mcp.kind == "request"
"#,
    );
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn typos_and_impossible_paths_are_found() {
    let f = findings(
        r#"package mcp
import rego.v1
allow if input.mcp.tool.nme == "x"
allow if input.mcp.method.name == "x"
deny contains sprintf("%v", [input.mpc.method]) if true
allow if count([x | x := input.http.headers.Authorization]) > 0
allow if input.mcp.headers.params["Region"]
allow if input.sessions.id
allow if input.session.calls[_].tol == "x"
"#,
    );
    assert_eq!(f.len(), 7, "{f:?}");
    assert!(
        f[0].starts_with("3:25: input.mcp.tool.nme is not in the documented input"),
        "{f:?}"
    );
    assert!(f[0].ends_with("did you mean input.mcp.tool.name?"), "{f:?}");
    assert!(f[1].contains("input.mcp.method is a single value"), "{f:?}");
    assert!(
        f[2].contains("input.mpc") && f[2].contains("did you mean input.mcp?"),
        "{f:?}"
    );
    assert!(f[3].contains("lower case; use \"authorization\""), "{f:?}");
    assert!(f[4].contains("use \"region\""), "{f:?}");
    assert!(
        f[5].contains("input.sessions is not in the documented input"),
        "{f:?}"
    );
    assert!(
        f[6].contains("input.session.calls[_].tol is not in the documented input"),
        "{f:?}"
    );
}

#[test]
fn imports_of_input_are_followed() {
    let f = findings(
        "package mcp\nimport rego.v1\nimport input.mcp.tool\nimport input.http as h\nallow if tool.nam == \"x\"\nallow if h.header\n",
    );
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f[0].contains("input.mcp.tool.nam"), "{f:?}");
    assert!(
        f[1].contains("input.http.header ") && f[1].contains("input.http.headers?"),
        "{f:?}"
    );
}

#[test]
fn with_targets_are_checked() {
    let f = findings(
        "package t\nimport rego.v1\ntest_x if data.mcp.allow with input.mcp.methd as \"ping\"\n",
    );
    assert_eq!(f.len(), 1, "{f:?}");
}

/// The tree above is docs/input.md: every field the document's tables
/// list is in the tree, and every field of the tree's `mcp` and `http`
/// parts (and of any other part the document has a section for) is in
/// the document.
#[test]
fn tree_matches_docs_input_md() {
    let doc = include_str!("../../../../../../docs/input.md");
    let known: Vec<String> = documented_paths().into_iter().map(|(p, _)| p).collect();
    let mut listed: Vec<String> = Vec::new();
    let mut section = String::new();
    for line in doc.lines() {
        if let Some(h) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        {
            if let Some(p) = h.trim().strip_prefix("`").and_then(|h| h.strip_suffix("`")) {
                if p.starts_with("input.") {
                    section = p.to_string();
                }
            } else if !h.starts_with("Fields") {
                section.clear();
            }
            continue;
        }
        if section.is_empty() || !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        let first = cells
            .first()
            .map(|c| c.trim_start_matches("| "))
            .unwrap_or_default();
        // "Fields filled per method": the field is the second column and
        // its keys are in the third.
        let per_method = cells.len() >= 3
            && cells
                .get(1)
                .is_some_and(|c| c.starts_with('`') && c.ends_with('`') && !c.contains(' '));
        let field_cell = if per_method {
            cells.get(1).copied().unwrap_or_default()
        } else {
            first
        };
        let field = field_cell.trim_matches('`');
        if field.contains(' ') || field.is_empty() {
            continue;
        }
        let path = format!("{section}.{field}");
        listed.push(path.clone());
        if per_method {
            let contents = cells.get(2).copied().unwrap_or_default();
            for part in contents.split('"').skip(1).step_by(2) {
                listed.push(format!("{path}.{part}"));
            }
        }
    }
    assert!(
        listed.len() > 30,
        "the document's tables were not found: {listed:?}"
    );
    for p in &listed {
        assert!(
            known.contains(p),
            "docs/input.md lists {p}, which the CLI does not know (src/lint/input.rs INPUT)"
        );
    }
    let sections: Vec<&str> = doc
        .lines()
        .filter_map(|l| {
            l.strip_prefix("## `input.")
                .and_then(|l| l.strip_suffix('`'))
        })
        .collect();
    for p in &known {
        let top = p.split('.').nth(1).unwrap_or_default();
        let nested_in_listed = listed.iter().any(|l| p.starts_with(&format!("{l}.")));
        if sections.contains(&top) && !nested_in_listed && p.matches('.').count() >= 2 {
            assert!(
                listed.contains(p),
                "{p} is in src/lint/input.rs but not in docs/input.md"
            );
        }
    }
}
