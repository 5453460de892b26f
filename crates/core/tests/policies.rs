//! Runs the Rego tests that ship beside the policies in policies/ and in the
//! policy library, policies/library/ (every `test_` rule in every module,
//! all loaded together, as an operator would load them), and checks that
//! each non-test policy compiles as a filter configuration. The library is
//! also run on the RVM, the filter's own engine (the Rego tests run on the
//! interpreter): tests/library_cases.json holds inputs, data and the
//! reasons the library must give.
// Tests may unwrap and index: the data-path lints ([workspace.lints]) are
// for the library code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// Not in the browser build's test run (`make web-test`): the library is read
// from disk (read_dir), which wasm32-unknown-unknown has not.
#![cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]

use mcp_policy_core::config::settings::Config;
use mcp_policy_core::policy::engine::EngineKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The library policies; each has `<name>.rego` and `<name>_test.rego`.
const LIBRARY: [&str; 14] = [
    "rbac",
    "tenant",
    "arguments",
    "schema",
    "readonly",
    "ratelimit",
    "flows",
    "timewindow",
    "stepup",
    "killswitch",
    "pins",
    "poisoning",
    "results",
    "confirm",
];

fn policies_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("policies")
}

/// The `.rego` files directly in `dir`, named `prefix` + file name.
fn modules_in(dir: &Path, prefix: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rego"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                format!("{prefix}{name}"),
                std::fs::read_to_string(&p).expect("readable"),
            )
        })
        .collect();
    out.sort();
    out
}

fn modules(dir: &Path) -> Vec<(String, String)> {
    modules_in(dir, "")
}

/// policies/*.rego and policies/library/*.rego, tests included.
fn all_modules() -> Vec<(String, String)> {
    let dir = policies_dir();
    let mut all = modules(&dir);
    all.extend(modules_in(&dir.join("library"), "library/"));
    all
}

fn not_tests(mods: Vec<(String, String)>) -> Vec<(String, String)> {
    mods.into_iter()
        .filter(|(n, _)| !n.ends_with("_test.rego"))
        .collect()
}

fn config(mods: &[(String, String)], data: Option<&serde_json::Value>) -> Config {
    let policy: serde_json::Map<String, serde_json::Value> = mods
        .iter()
        .map(|(n, s)| (n.clone(), serde_json::Value::String(s.clone())))
        .collect();
    let mut p = serde_json::json!({"modules": policy});
    if let Some(d) = data {
        p["data"] = d.clone();
    }
    let cfg = serde_json::json!({"policy": p});
    Config::from_json(cfg.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("configuration refused: {e}"))
}

#[test]
fn policy_tests_pass() {
    let all = all_modules();
    let results = mcp_policy_core::policy::regotest::run(&all, None).expect("policies compile");
    assert!(
        results.len() >= 5,
        "expected the shipped Rego tests, found {}",
        results.len()
    );
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {}", r.name, r.detail.clone().unwrap_or_default()))
        .collect();
    for r in &results {
        println!("{} {}", if r.passed { "PASS" } else { "FAIL" }, r.name);
    }
    assert!(
        failed.is_empty(),
        "failing Rego tests:\n{}",
        failed.join("\n")
    );
    for lib in LIBRARY {
        let prefix = format!("data.{lib}_test.");
        let n = results
            .iter()
            .filter(|r| r.name.starts_with(&prefix))
            .count();
        assert!(
            n >= 5,
            "policies/library/{lib}_test.rego: expected its tests, found {n}"
        );
    }
}

#[test]
fn shipped_policy_loads_as_configuration() {
    let c = config(&not_tests(modules(&policies_dir())), None);
    assert_eq!(c.policy.engine_kind(), EngineKind::Rvm);
}

/// The library loads beside the default policy, with or without its data,
/// and stays on the RVM (no rule conflicts, nothing the RVM cannot compile).
#[test]
fn library_loads_with_the_default_policy_on_the_rvm() {
    let mods = not_tests(all_modules());
    for lib in LIBRARY {
        assert!(
            mods.iter()
                .any(|(n, _)| n == &format!("library/{lib}.rego")),
            "policies/library/{lib}.rego is missing"
        );
    }
    let c = config(&mods, None);
    assert_eq!(
        c.policy.engine_kind(),
        EngineKind::Rvm,
        "{:?}",
        c.policy.rvm_fallback_reason()
    );
    let data = serde_json::json!({"library": {
        "rbac": {"roles": {"admin": {"tools": ["*"]}}},
        "tenant": {"tools": {"ledger_*": "finance"}},
        "arguments": {"urls": [{"tool": "fetch_url", "argument": "url"}]},
        "schema": {},
        "readonly": {"enabled": true},
        "ratelimit": {"limits": [{"tool": "add", "max": 5}]},
        "flows": {"labels": {"read_file": "sensitive_read"}},
        "timewindow": {"tools": {"deploy": {"from": "09:00", "to": "17:00"}}},
        "stepup": {"tools": ["delete_record"]},
        "pins": {"require_pin": false},
        "poisoning": {},
        "results": {},
        "confirm": {"destructive": true, "tools": ["deploy"]},
    }});
    let c = config(&mods, Some(&data));
    assert_eq!(c.policy.engine_kind(), EngineKind::Rvm);
}

/// Every case of tests/library_cases.json, decided on the RVM by the
/// default policy and the whole library: `deny` is exactly the expected
/// reasons (or has `deny_count` members, for time-dependent cases), or the
/// evaluation fails with an error that starts with `error`.
#[test]
fn library_decides_on_the_rvm() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests")
        .join("library_cases.json");
    let text = std::fs::read_to_string(&path).expect("tests/library_cases.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).expect("valid JSON");
    assert!(
        cases.len() >= 50,
        "expected the library cases, found {}",
        cases.len()
    );
    let mods = not_tests(all_modules());
    // One compiled configuration per distinct data document.
    let mut configs: BTreeMap<String, Config> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let key = case["data"].to_string();
        let cfg = configs
            .entry(key)
            .or_insert_with(|| config(&mods, Some(&case["data"])));
        assert_eq!(cfg.policy.engine_kind(), EngineKind::Rvm);
        let input = mcp_policy_core::policy::engine::json_to_value(&case["input"]).expect("input");
        let result = match (cfg.policy.evaluate(input), case["error"].as_str()) {
            (Err(e), Some(want)) if e.to_string().starts_with(want) => continue,
            (Ok(r), None) => r,
            (Ok(r), Some(want)) => {
                failures.push(format!(
                    "{name}: expected the error {want:?}, got {:?}",
                    r.deny
                ));
                continue;
            }
            (Err(e), _) => {
                failures.push(format!("{name}: evaluation failed: {e}"));
                continue;
            }
        };
        let mut got = result.deny.clone();
        got.sort();
        if let Some(n) = case["deny_count"].as_u64() {
            if got.len() as u64 != n {
                failures.push(format!("{name}: expected {n} reason(s), got {got:?}"));
            }
        } else {
            let mut want: Vec<String> = case["deny"]
                .as_array()
                .expect("deny")
                .iter()
                .map(|v| v.as_str().expect("reason").to_string())
                .collect();
            want.sort();
            if got != want {
                failures.push(format!("{name}:\n   got  {got:?}\n   want {want:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "library cases that differ on the RVM:\n{}",
        failures.join("\n")
    );
}

/// The ratelimit library's descriptor, handed to the `rate_limit` output,
/// decided on the RVM (its Rego tests run on the interpreter).
#[test]
fn ratelimit_descriptor_on_the_rvm() {
    let lib = std::fs::read_to_string(policies_dir().join("library").join("ratelimit.rego"))
        .expect("ratelimit.rego");
    let main = "package mcp\nimport rego.v1\ndefault allow := true\n\
                rate_limit := ratelimit_descriptor if ratelimit_descriptor\n";
    let mods = vec![
        ("main.rego".to_string(), main.to_string()),
        ("library/ratelimit.rego".to_string(), lib),
    ];
    let data =
        serde_json::json!({"library": {"ratelimit": {"descriptor": {"costs": {"run_*": 5}}}}});
    let mut cfg = config(&mods, Some(&data));
    assert_eq!(cfg.policy.engine_kind(), EngineKind::Rvm);
    let decide = |cfg: &mut Config, input: serde_json::Value| {
        let v = mcp_policy_core::policy::engine::json_to_value(&input).expect("input");
        cfg.policy.evaluate(v).expect("evaluates").rate_limit
    };
    let call = |name: &str, identity: serde_json::Value| {
        let mut i = serde_json::json!({"mcp": {"kind": "request", "method": "tools/call",
            "tool": {"name": name, "arguments": {}}}});
        if !identity.is_null() {
            i["identity"] = identity;
        }
        i
    };
    let rl = decide(
        &mut cfg,
        call("run_query", serde_json::json!({"subject": "alice"})),
    )
    .expect("descriptor");
    assert_eq!(rl.cost, 5);
    assert_eq!(
        rl.entries,
        vec![
            ("principal".to_string(), "sub:alice".to_string()),
            ("tool".to_string(), "run_query".to_string())
        ]
    );
    let rl = decide(&mut cfg, call("echo", serde_json::Value::Null)).expect("descriptor");
    assert_eq!(rl.cost, 1);
    assert_eq!(
        rl.entries[0],
        ("principal".to_string(), "anonymous".to_string())
    );
    let list = serde_json::json!({"mcp": {"kind": "request", "method": "tools/list"}});
    assert!(decide(&mut cfg, list).is_none());
}

/// Lists mean "some call of this tool by this caller could be allowed"
/// (docs/input.md, "One policy for calls and lists"): with the default
/// policy and the whole library loaded, rules about the caller, the tool and
/// its definition (rbac, tenant ownership, readonly, step-up, pins,
/// poisoning) still hide tools, and rules about the call's arguments,
/// session or rate (default.rego's argument rules, arguments, schema,
/// flows, ratelimit, tenant arguments) do not.
#[test]
fn library_lists_by_caller_and_tool_not_by_call() {
    let mods = not_tests(all_modules());
    let data = serde_json::json!({"library": {
        "rbac": {"public": {"tools": ["echo", "read_file", "send_email", "query", "add", "ledger_*", "patient_*", "rug", "poisoned", "deploy"]},
                 "roles": {"admin": {"tools": ["*"]}}},
        "tenant": {"tools": {"ledger_*": "finance", "patient_*": "healthcare"}, "arguments": ["tenant_id"]},
        "arguments": {"paths": [{"tool": "read_file", "argument": "path", "prefixes": ["/workspace"], "required": true}],
                      "sql": [{"tool": "query", "argument": "sql", "required": true}]},
        "schema": {},
        "readonly": {"deny_destructive": true},
        "ratelimit": {"limits": [{"tool": "add", "max": 0}]},
        "flows": {"labels": {"read_file": "sensitive_read", "send_email": "external_send"},
                  "forbidden": [{"after": "sensitive_read", "deny": "external_send"}],
                  "max_per_session": {"sensitive_read": 0}},
        "stepup": {"tools": ["deploy"]},
        "pins": {},
        "poisoning": {},
    }});
    let mut cfg = config(&mods, Some(&data));
    assert_eq!(cfg.policy.engine_kind(), EngineKind::Rvm);
    assert_eq!(cfg.policy.listing_fallback(), None);
    let pinned =
        serde_json::json!({"status": "pinned", "hash": "a", "pinned_hash": "a", "pinned_at_ms": 1});
    let changed = serde_json::json!({"status": "changed", "hash": "b", "pinned_hash": "a", "pinned_at_ms": 1});
    let mut listed = |tool: &str,
                      claims: serde_json::Value,
                      definition: serde_json::Value|
     -> Vec<String> {
        let mut def = serde_json::json!({"name": tool, "inputSchema": {"type": "object",
            "properties": {"path": {"type": "string"}, "sql": {"type": "string"}}, "required": ["path"]},
            "poisoning": [], "pin": pinned});
        if let (Some(d), Some(extra)) = (def.as_object_mut(), definition.as_object()) {
            for (k, v) in extra {
                d.insert(k.clone(), v.clone());
            }
        }
        let input = serde_json::json!({
            "identity": {"subject": "u", "claims": claims},
            "mcp": {"listing": true, "kind": "request", "direction": "client_to_server",
                    "method": "tools/call", "list_method": "tools/list",
                    "tool": {"name": tool, "definition": def}, "params": {"name": tool}}
        });
        let input = mcp_policy_core::policy::engine::json_to_value(&input).expect("input");
        let r = cfg.policy.evaluate(input).expect("evaluates");
        assert!(r.allow);
        r.deny
    };
    let none = serde_json::json!({});
    let finance = serde_json::json!({"tenant": "finance"});
    // Argument, session and rate rules do not hide anything.
    for tool in ["read_file", "send_email", "query", "add", "echo"] {
        assert_eq!(
            listed(tool, finance.clone(), none.clone()),
            Vec::<String>::new(),
            "{tool}"
        );
    }
    // The caller and the tool do.
    assert_eq!(
        listed("ledger_balance", finance.clone(), none.clone()),
        Vec::<String>::new()
    );
    assert_eq!(
        listed("patient_lookup", finance.clone(), none.clone()).len(),
        1
    );
    assert_eq!(listed("drop_table", finance.clone(), none.clone()).len(), 1);
    assert!(listed(
        "drop_table",
        serde_json::json!({"roles": ["admin"]}),
        none.clone()
    )
    .is_empty());
    assert_eq!(
        listed("rug", finance.clone(), serde_json::json!({"pin": changed})).len(),
        1
    );
    let poisoned = serde_json::json!({"poisoning": [{"kind": "hidden_directive", "detector": "important_tag", "where": "description"}]});
    assert_eq!(listed("poisoned", finance.clone(), poisoned).len(), 1);
    let destructive = serde_json::json!({"annotations": {"destructiveHint": true}});
    assert_eq!(listed("echo", finance.clone(), destructive).len(), 1);
    assert_eq!(listed("deploy", finance, none).len(), 1);

    // What does not decide lists, by file.
    let files: std::collections::BTreeSet<String> = cfg
        .policy
        .call_dependent_rules()
        .iter()
        .map(|r| r.module.clone())
        .collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "default.rego",
            "library/arguments.rego",
            "library/flows.rego",
            "library/ratelimit.rego",
            "library/schema.rego",
            "library/tenant.rego"
        ]
    );
}
