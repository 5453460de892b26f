//! Runs the Rego tests that ship beside the policies in policies/ (every
//! `test_` rule in every module), and checks that each non-test policy
//! compiles as a filter configuration.

use mcp_policy::config::Config;
use std::path::Path;

fn modules(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("policies/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rego"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("readable"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn policy_tests_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let all = modules(&dir);
    let results = mcp_policy::regotest::run(&all, None).expect("policies compile");
    assert!(results.len() >= 5, "expected the shipped Rego tests, found {}", results.len());
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {}", r.name, r.detail.clone().unwrap_or_default()))
        .collect();
    for r in &results {
        println!("{} {}", if r.passed { "PASS" } else { "FAIL" }, r.name);
    }
    assert!(failed.is_empty(), "failing Rego tests:\n{}", failed.join("\n"));
}

#[test]
fn shipped_policy_loads_as_configuration() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let policy: serde_json::Map<String, serde_json::Value> = modules(&dir)
        .into_iter()
        .filter(|(n, _)| !n.ends_with("_test.rego"))
        .map(|(n, s)| (n, serde_json::Value::String(s)))
        .collect();
    let cfg = serde_json::json!({"policy": {"modules": policy}});
    let c = Config::from_json(cfg.to_string().as_bytes()).expect("default policy loads");
    assert_eq!(c.policy.engine_kind(), mcp_policy::engine::EngineKind::Rvm);
}
