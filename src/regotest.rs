//! Running a policy's own Rego tests: every rule named `test_*`, in the
//! `opa test` convention. A test passes when its rule evaluates to `true`.
//! The same runner serves `cargo test` (policies/) and, later, the CLI.

use regorus::{Engine, Value};

/// The outcome of one test rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// `data.<package>.<rule>`
    pub name: String,
    pub passed: bool,
    /// What went wrong, for a failure.
    pub detail: Option<String>,
}

/// Compile `modules` (name, source) with `data` and run every `test_` rule.
pub fn run(modules: &[(String, String)], data: Option<Value>) -> Result<Vec<TestOutcome>, String> {
    let mut engine = Engine::new();
    let mut tests = Vec::new();
    for (name, source) in modules {
        let package = engine
            .add_policy(name.clone(), source.clone())
            .map_err(|e| crate::engine::PolicyError::from_regorus(&e, Some(name)).to_string())?;
        for rule in test_rules(source) {
            let full = format!("{package}.{rule}");
            if !tests.contains(&full) {
                tests.push(full);
            }
        }
    }
    if let Some(d) = data {
        engine.add_data(d).map_err(|e| e.to_string())?;
    }
    let mut out = Vec::with_capacity(tests.len());
    for name in tests {
        let result = engine.eval_rule(name.clone());
        let (passed, detail) = match result {
            Ok(Value::Bool(true)) => (true, None),
            Ok(Value::Undefined) => (false, Some("undefined (a condition did not hold)".to_string())),
            Ok(v) => (false, Some(format!("evaluated to {v}, not true"))),
            Err(e) => (false, Some(crate::engine::PolicyError::from_regorus(&e, None).to_string())),
        };
        out.push(TestOutcome { name, passed, detail });
    }
    Ok(out)
}

/// Names of the rules whose head starts a line with `test_`.
fn test_rules(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("test_") {
            let tail: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let name = format!("test_{tail}");
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
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
        assert!(!r[1].passed && r[1].detail.is_some());
    }
}
