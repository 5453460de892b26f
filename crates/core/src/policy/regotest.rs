//! Running a policy's own Rego tests: every rule named `test_*`, in the
//! `opa test` convention. A test passes when its rule evaluates to `true`.
//! The same runner serves `cargo test` (crates/core/tests/policies.rs) and
//! `mcp-policy test`.
//!
//! Tests are found in the syntax tree: every rule of any package whose name
//! starts with `test_` and that takes no arguments (a function named
//! `test_…` is a helper, as in OPA). They run on regorus' interpreter, so
//! `with input as …` and `with data.x as …` work. The policy is compiled
//! as the filter compiles it, so a test of a listing
//! (`input.mcp.listing: true`) sees what the filter decides for lists.

use crate::policy::engine::PolicyError;
use regorus::unstable::{Expr, Rule, RuleHead};
use regorus::{Engine, Value};
use std::fmt;
use std::time::{Duration, Instant};

/// Why the tests could not run at all (a failing test is a [`TestOutcome`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegoTestError {
    /// A module does not parse: `file:line:col: message`.
    Module(PolicyError),
    /// The data was refused, as regorus said it.
    Data(String),
}

impl fmt::Display for RegoTestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegoTestError::Module(e) => e.fmt(f),
            RegoTestError::Data(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for RegoTestError {}

/// The outcome of one test rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// `data.<package>.<rule>`
    pub name: String,
    pub passed: bool,
    /// What went wrong, for a failure.
    pub detail: Option<String>,
    /// The module (name as given) that defines the test first.
    pub module: String,
    /// Line of that definition.
    pub line: u32,
    /// How long the evaluation took.
    pub duration: Duration,
}

/// A test rule found in the modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRule {
    /// `data.<package>.<rule>`
    pub name: String,
    pub module: String,
    pub line: u32,
}

/// Compile `modules` (name, source) with `data` and run every `test_` rule.
pub fn run(
    modules: &[(String, String)],
    data: Option<Value>,
) -> Result<Vec<TestOutcome>, RegoTestError> {
    run_matching(modules, data, |_| true)
}

/// Like [`run`], for the tests whose full name `keep` accepts.
pub fn run_matching(
    modules: &[(String, String)],
    data: Option<Value>,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<TestOutcome>, RegoTestError> {
    let mut engine = compile(modules, data)?;
    let tests = find(&mut engine);
    let mut out = Vec::with_capacity(tests.len());
    for t in tests.into_iter().filter(|t| keep(&t.name)) {
        let start = Instant::now();
        let result = engine.eval_rule(t.name.clone());
        let duration = start.elapsed();
        let (passed, detail) = match result {
            Ok(Value::Bool(true)) => (true, None),
            Ok(Value::Undefined) => (
                false,
                Some("undefined (a condition did not hold)".to_string()),
            ),
            Ok(v) => (false, Some(format!("evaluated to {v}, not true"))),
            Err(e) => (false, Some(PolicyError::from_regorus(&e, None).to_string())),
        };
        out.push(TestOutcome {
            name: t.name,
            passed,
            detail,
            module: t.module,
            line: t.line,
            duration,
        });
    }
    Ok(out)
}

/// The `test_` rules of `modules`, without running them (a module that
/// does not parse is an error).
pub fn list(modules: &[(String, String)]) -> Result<Vec<TestRule>, RegoTestError> {
    let mut engine = compile(modules, None)?;
    Ok(find(&mut engine))
}

/// The policy as the filter compiles it: the modules that are not tests
/// (`*_test.rego`) rewritten so that rules depending on the call do not
/// decide lists (policy/listing/), the tests as written. Should the rewritten
/// modules not compile, the originals are used, as in the filter.
fn compile(modules: &[(String, String)], data: Option<Value>) -> Result<Engine, RegoTestError> {
    let policy: Vec<(String, String)> = modules
        .iter()
        .filter(|(n, _)| !n.ends_with("_test.rego"))
        .cloned()
        .collect();
    if let Some(t) = crate::policy::listing::transform(&policy) {
        let rewritten: Vec<(String, String)> = modules
            .iter()
            .map(|(n, s)| {
                let new = t.modules.iter().find(|(m, _)| m == n).map(|(_, s)| s);
                (n.clone(), new.unwrap_or(s).clone())
            })
            .collect();
        if let Ok(engine) = compile_as_written(&rewritten, data.clone()) {
            return Ok(engine);
        }
    }
    compile_as_written(modules, data)
}

fn compile_as_written(
    modules: &[(String, String)],
    data: Option<Value>,
) -> Result<Engine, RegoTestError> {
    let mut engine = Engine::new();
    engine.set_rego_v0(false);
    for (name, source) in modules {
        engine
            .add_policy(name.clone(), source.clone())
            .map_err(|e| RegoTestError::Module(PolicyError::from_regorus(&e, Some(name))))?;
    }
    if let Some(d) = data {
        engine
            .add_data(d)
            .map_err(|e| RegoTestError::Data(e.to_string()))?;
    }
    Ok(engine)
}

fn find(engine: &mut Engine) -> Vec<TestRule> {
    let mut tests: Vec<TestRule> = Vec::new();
    for m in engine.get_modules().iter() {
        let package = m.package.refr.span().text().trim().to_string();
        let module = m.package.span.source.file().clone();
        for rule in &m.policy {
            let Rule::Spec { span, head, .. } = rule.as_ref() else {
                continue;
            };
            // `test_x if …` / `test_x := v if …`; not `test_f(a) if …`.
            let refr = match head {
                RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => refr,
                RuleHead::Func { .. } => continue,
            };
            let Expr::Var {
                value: Value::String(rule_name),
                ..
            } = refr.as_ref()
            else {
                continue;
            };
            if !rule_name.starts_with("test_") {
                continue;
            }
            let name = format!("data.{package}.{rule_name}");
            if tests.iter().all(|t| t.name != name) {
                tests.push(TestRule {
                    name,
                    module: module.clone(),
                    line: span.line,
                });
            }
        }
    }
    tests
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    #[cfg_attr(
        all(target_arch = "wasm32", target_os = "unknown"),
        ignore = "the Rego test runner times each test with std::time::Instant (no clock there)"
    )]
    fn passing_and_failing_tests_are_reported() {
        let modules = vec![
            ("p.rego".to_string(), "package mcp\nallow if input.x == 1\n".to_string()),
            (
                "p_test.rego".to_string(),
                "package mcp_test\nimport data.mcp\ntest_ok if mcp.allow with input as {\"x\": 1}\ntest_bad if mcp.allow with input as {\"x\": 2}\n"
                    .to_string(),
            ),
        ];
        let r = run(&modules, None).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r[0].passed && r[0].name == "data.mcp_test.test_ok");
        assert_eq!((r[0].module.as_str(), r[0].line), ("p_test.rego", 3));
        assert!(!r[1].passed && r[1].detail.is_some());
    }

    #[test]
    #[cfg_attr(
        all(target_arch = "wasm32", target_os = "unknown"),
        ignore = "the Rego test runner times each test with std::time::Instant (no clock there)"
    )]
    fn tests_see_lists_as_the_filter_decides_them() {
        let modules = vec![
            (
                "p.rego".to_string(),
                "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains \"x\" if not startswith(input.mcp.tool.arguments.path, \"/w/\")\n".to_string(),
            ),
            (
                "p_test.rego".to_string(),
                "package mcp_test\nimport rego.v1\nimport data.mcp\ntest_listed if count(mcp.deny) == 0 with input as {\"mcp\": {\"listing\": true, \"tool\": {\"name\": \"r\"}}}\ntest_call if mcp.deny == {\"x\"} with input as {\"mcp\": {\"tool\": {\"name\": \"r\", \"arguments\": {\"path\": \"/e\"}}}}\n".to_string(),
            ),
        ];
        let r = run(&modules, None).unwrap();
        assert!(r.iter().all(|t| t.passed), "{r:?}");
        assert_eq!(r.len(), 2);
    }

    #[test]
    #[cfg_attr(
        all(target_arch = "wasm32", target_os = "unknown"),
        ignore = "the Rego test runner times each test with std::time::Instant (no clock there)"
    )]
    fn indented_tests_count_and_functions_do_not() {
        let modules = vec![(
            "t_test.rego".to_string(),
            "package a.b\n  test_indented if true\ntest_helper(x) if x\ntest_value := 1\ntest_error if 1 / 0 == 1\n".to_string(),
        )];
        let r = run(&modules, None).unwrap();
        let names: Vec<&str> = r.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "data.a.b.test_indented",
                "data.a.b.test_value",
                "data.a.b.test_error"
            ]
        );
        assert!(r[0].passed);
        assert_eq!(r[1].detail.as_deref(), Some("evaluated to 1, not true"));
        assert!(!r[2].passed);
        let only = run_matching(&modules, None, |n| n.ends_with("value")).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(list(&modules).unwrap().len(), 3);
    }
}
