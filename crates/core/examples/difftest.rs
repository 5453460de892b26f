//! Differential-testing runner (docs/hardening.md, "Differential testing"):
//! reads cases as JSON Lines on stdin and writes, per case, what regorus'
//! RVM and its interpreter decide, as the filter runs them. Not part of the
//! module; driven by tools/difftest.py, which compares with OPA.
//!
//! A case: `{"id": .., "modules": {"a.rego": ".."}, "data": {..} | null,
//! "inputs": [{..}, ..], "strict": true}`. The policy is compiled once and
//! decided for every input. The answer, one line per case:
//!
//! ```text
//! {"id": .., "compile_error": null | "..", "engine": "rvm" | "interpreter",
//!  "results": [{"rvm": OUT, "interpreter": OUT}, ..]}
//! OUT = {"decision": {"allow": bool, "deny": [..]} | {"error": ".."},
//!        "allow": RAW, "deny": RAW}
//! RAW = {"value": <json>} | {"undefined": true} | {"error": ".."} | null
//! ```
//!
//! `decision` is `mcp_policy_core::policy::engine::Policy::evaluate`, exactly what the
//! filter runs (on the RVM, or on the interpreter after `use_interpreter`).
//! `allow` and `deny` are the raw values of `data.mcp.allow` and
//! `data.mcp.deny`, each evaluated on its own through regorus' API with the
//! same settings (Rego v1, data, strictness, instruction budget), since the
//! decision reading hides some differences (`allow := "yes"` and an
//! undefined `allow` both deny). RAW is `null` where that evaluator cannot
//! take the policy (the RVM compiler refused it).
// Benchmarks and examples may unwrap and index: the data-path lints ([workspace.lints]) are
// for the library code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_policy_core::policy::engine::{json_to_value, Policy, DEFAULT_MAX_INSTRUCTIONS};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Value};
use serde_json::{json, Value as Json};
use std::io::{BufRead, Write};

const RULES: [&str; 2] = ["data.mcp.allow", "data.mcp.deny"];

fn main() {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Json>(&line) {
            Ok(case) => run_case(&case),
            Err(e) => json!({"id": null, "bad_case": e.to_string()}),
        };
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}

fn run_case(case: &Json) -> Json {
    let id = case.get("id").cloned().unwrap_or(Json::Null);
    let modules: Vec<(String, String)> = case
        .get("modules")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let data = case.get("data").filter(|d| !d.is_null());
    let strict = case.get("strict").and_then(Json::as_bool).unwrap_or(true);
    let max_instructions = case
        .get("max_instructions")
        .and_then(Json::as_u64)
        .map(|n| n as usize)
        .unwrap_or(DEFAULT_MAX_INSTRUCTIONS);
    let inputs: Vec<Json> = case
        .get("inputs")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();

    let compile = || -> Result<Policy, String> {
        let mut p = Policy::compile(&modules, data, max_instructions).map_err(|e| e.to_string())?;
        p.set_builtin_errors(if strict {
            mcp_policy_core::policy::engine::BuiltinErrors::Deny
        } else {
            mcp_policy_core::policy::engine::BuiltinErrors::Undefined
        });
        Ok(p)
    };
    let (mut on_rvm, mut on_interp) = match (compile(), compile()) {
        (Ok(a), Ok(mut b)) => {
            b.use_interpreter();
            (a, b)
        }
        (Err(e), _) | (_, Err(e)) => return json!({"id": id, "compile_error": e}),
    };
    let engine_kind = on_rvm.engine_kind().as_str();
    // The raw values are read from the sources as the filter compiles them
    // (`not` over an undefined operand, policy/negation/).
    let negated = mcp_policy_core::policy::negation::transform(&modules);
    let mut raw = Raw::new(
        negated.as_deref().unwrap_or(&modules),
        data,
        strict,
        max_instructions,
    );

    let mut results = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let value = match json_to_value(input) {
            Ok(v) => v,
            Err(e) => {
                results.push(json!({"bad_input": e.to_string()}));
                continue;
            }
        };
        let rvm_raw = raw.rvm(&value);
        let interp_raw = raw.interpreter(&value);
        results.push(json!({
            "rvm": {
                "decision": decision(&mut on_rvm, value.clone()),
                "allow": rvm_raw[0], "deny": rvm_raw[1],
            },
            "interpreter": {
                "decision": decision(&mut on_interp, value),
                "allow": interp_raw[0], "deny": interp_raw[1],
            },
        }));
    }
    json!({"id": id, "compile_error": null, "engine": engine_kind, "results": results})
}

fn decision(p: &mut Policy, input: Value) -> Json {
    match p.evaluate(input) {
        Ok(r) => json!({"allow": r.allow, "deny": r.deny}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

fn raw_of(r: Result<Value, String>) -> Json {
    match r {
        Ok(Value::Undefined) => json!({"undefined": true}),
        Ok(v) => match v.to_json_str() {
            Ok(text) => match serde_json::from_str::<Json>(&text) {
                Ok(j) => json!({ "value": j }),
                Err(e) => json!({"error": format!("runner: {e}")}),
            },
            Err(e) => json!({"error": format!("runner: {e}")}),
        },
        Err(e) => json!({ "error": one_line(&e) }),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `data.mcp.allow` and `data.mcp.deny` evaluated directly, each alone.
struct Raw {
    engine: Option<Engine>,
    /// Per rule: the RVM compiled for that rule alone, or why not.
    vms: Vec<Result<RegoVM, String>>,
    setup_error: Option<String>,
}

impl Raw {
    fn new(
        modules: &[(String, String)],
        data: Option<&Json>,
        strict: bool,
        max_instructions: usize,
    ) -> Raw {
        let mut engine = Engine::new();
        engine.set_rego_v0(false);
        let setup = (|| -> Result<Option<Value>, String> {
            for (name, src) in modules {
                engine
                    .add_policy(name.clone(), src.clone())
                    .map_err(|e| e.to_string())?;
            }
            let data = data
                .map(json_to_value)
                .transpose()
                .map_err(|e| e.to_string())?;
            if let Some(d) = &data {
                engine.add_data(d.clone()).map_err(|e| e.to_string())?;
            }
            Ok(data)
        })();
        let data = match setup {
            Ok(d) => d,
            Err(e) => {
                return Raw {
                    engine: None,
                    vms: Vec::new(),
                    setup_error: Some(e),
                }
            }
        };
        let mut vms = Vec::new();
        for rule in RULES {
            let vm = (|| -> Result<RegoVM, String> {
                let entry: regorus::Rc<str> = rule.into();
                let compiled = engine
                    .compile_with_entrypoint(&entry)
                    .map_err(|e| one_line(&e.to_string()))?;
                let program = Compiler::compile_from_policy(&compiled, &[rule])
                    .map_err(|e| one_line(&e.to_string()))?;
                let mut vm = RegoVM::new();
                vm.load_program(program);
                if let Some(d) = &data {
                    vm.set_data(d.clone()).map_err(|e| e.to_string())?;
                }
                vm.set_max_instructions(max_instructions);
                vm.set_strict_builtin_errors(strict);
                Ok(vm)
            })();
            vms.push(vm);
        }
        engine.set_strict_builtin_errors(strict);
        Raw {
            engine: Some(engine),
            vms,
            setup_error: None,
        }
    }

    fn rvm(&mut self, input: &Value) -> [Json; 2] {
        let mut out = [Json::Null, Json::Null];
        if let Some(e) = &self.setup_error {
            return [json!({"error": e}), json!({"error": e})];
        }
        for (i, (vm, rule)) in self.vms.iter_mut().zip(RULES).enumerate() {
            out[i] = match vm {
                Ok(vm) => {
                    vm.set_input(input.clone());
                    raw_of(
                        vm.execute_entry_point_by_name(rule)
                            .map_err(|e| e.to_string()),
                    )
                }
                // A rule the policy does not define is undefined; any other
                // refusal means the filter would not run this on the RVM.
                Err(e) if is_missing_rule(e) => json!({"undefined": true}),
                Err(e) => json!({ "unavailable": e }),
            };
        }
        out
    }

    fn interpreter(&mut self, input: &Value) -> [Json; 2] {
        let Some(engine) = self.engine.as_mut() else {
            let e = self.setup_error.clone().unwrap_or_default();
            return [json!({"error": e}), json!({"error": e})];
        };
        let mut out = [Json::Null, Json::Null];
        for (i, rule) in RULES.iter().enumerate() {
            engine.set_input(input.clone());
            out[i] = match engine.eval_rule(rule.to_string()) {
                Err(e) if is_missing_rule(&e.to_string()) => json!({"undefined": true}),
                r => raw_of(r.map_err(|e| e.to_string())),
            };
        }
        out
    }
}

fn is_missing_rule(e: &str) -> bool {
    let e = e.to_lowercase();
    e.contains("not found") || e.contains("no rule") || e.contains("not a valid rule path")
}
