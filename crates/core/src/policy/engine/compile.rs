//! Compiling a policy: the authors' modules checked for bracket nesting,
//! rewritten for negation (policy/negation/) and listing
//! (policy/listing/), compiled with the entry module for the RVM, and the
//! interpreter kept as the fallback.

use super::errors::PolicyError;
use super::revision::revision_of;
use crate::policy::ast::Parsed;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Value};
use std::sync::Arc;

/// The Rego package a policy must declare.
pub const POLICY_PACKAGE: &str = "mcp";
/// The rule the entry module exposes to the engine.
pub(super) const ENTRY_POINT: &str = "data.mcp_policy_entry.decision";
pub(super) const ENTRY_MODULE_NAME: &str = "<mcp-policy entry>";

/// The entry module: one rule gathering the whole decision.
fn entry_module(modules: &[(String, String)]) -> String {
    let mut m = String::from(
        "package mcp_policy_entry\n\ndefault allow := false\n\nallow if data.mcp.allow == true\n\n\
         default deny := []\n\ndeny := data.mcp.deny\n\n",
    );
    let mut fields = vec!["\"allow\": allow".to_string(), "\"deny\": deny".to_string()];
    for out in crate::policy::outputs::OPTIONAL_OUTPUTS {
        if modules.iter().any(|(_, src)| src.contains(out)) {
            m.push_str(&format!(
                "default {out} := null\n\n{out} := data.mcp.{out}\n\n"
            ));
            fields.push(format!("\"{out}\": {out}"));
        }
    }
    m.push_str(&format!("decision := {{{}}}\n", fields.join(", ")));
    m
}

/// What a compiled policy is made of ([`super::Policy`] holds it).
pub(super) struct Compiled {
    /// The interpreter, used when the RVM compiler cannot take the policy.
    pub engine: Engine,
    pub vm: Option<RegoVM>,
    /// Why the RVM compiler refused the policy (interpreter fallback).
    pub rvm_fallback_reason: Option<String>,
    pub revision: String,
    pub module_names: Vec<String>,
    /// Rule definitions that do not decide lists (policy/listing/).
    pub listing: Vec<crate::policy::listing::CallDependent>,
    /// Why the sources rewritten for listing were not used.
    pub listing_fallback: Option<String>,
}

/// Compile `modules` (name, Rego source) with `data`: see
/// [`super::Policy::compile`].
pub(super) fn compile(
    modules: &[(String, String)],
    data: Option<&serde_json::Value>,
    max_instructions: usize,
) -> Result<Compiled, PolicyError> {
    // Before any parsing: the parser is exponential in bracket nesting.
    for (name, source) in modules {
        check_nesting(name, source)?;
    }
    // `not` reads an undefined operand as OPA does (policy/negation/).
    // Its last pass parsed the sources it hands on: the listing transform
    // reads that parse, and the engine compiles it unless the listing
    // rewrote the text.
    let (negated, parsed) = crate::policy::negation::rewrite(modules);
    let modules_in = modules;
    let modules: &[(String, String)] = negated.as_deref().unwrap_or(modules);
    let listing = match &parsed {
        Some(p) => crate::policy::listing::transform_parsed(modules, p.modules()),
        None => crate::policy::listing::transform(modules),
    };
    let mut policy = match &listing {
        Some(t) => match compile_sources(&t.modules, None, data, max_instructions) {
            Ok(p) => p,
            Err(e) => {
                let mut p = compile_sources(modules, parsed, data, max_instructions)?;
                p.listing_fallback = Some(e.to_string());
                p
            }
        },
        None => compile_sources(modules, parsed, data, max_instructions)?,
    };
    if policy.listing_fallback.is_none() {
        policy.listing = listing.map(|t| t.rules).unwrap_or_default();
    }
    policy.revision = revision_of(modules_in, data);
    Ok(policy)
}

/// Compile `modules`; `parsed`, when given, is their parse (not repeated).
fn compile_sources(
    modules: &[(String, String)],
    parsed: Option<Parsed>,
    data: Option<&serde_json::Value>,
    max_instructions: usize,
) -> Result<Compiled, PolicyError> {
    if modules.is_empty() {
        return Err(PolicyError::new("no Rego modules given"));
    }
    // Nesting was checked on the author's sources (`compile`): the
    // rewrites add a level of braces at most.
    let parsed = match parsed {
        Some(p) => p,
        None => Parsed::parse(modules)
            .map_err(|e| PolicyError::from_regorus(&e.message.as_str(), Some(&e.module)))?,
    };
    let mcp = format!("data.{POLICY_PACKAGE}");
    let declares_mcp = parsed.packages().contains(&mcp);
    let mut engine = parsed.into_engine();
    if !declares_mcp {
        return Err(PolicyError::new(format!(
            "no module declares `package {POLICY_PACKAGE}` (the package whose `allow` and `deny` rules decide)"
        )));
    }
    engine
        .add_policy(ENTRY_MODULE_NAME.into(), entry_module(modules))
        .map_err(|e| PolicyError::new(format!("internal entry module: {e}")))?;
    let data_value = match data {
        None => None,
        Some(d @ serde_json::Value::Object(_)) => Some(json_to_value(d)?),
        Some(_) => return Err(PolicyError::new("`data` must be a JSON object")),
    };
    if let Some(d) = &data_value {
        engine
            .add_data(d.clone())
            .map_err(|e| PolicyError::new(format!("data: {e}")))?;
    }
    let entry: regorus::Rc<str> = ENTRY_POINT.into();
    let compiled = engine
        .compile_with_entrypoint(&entry)
        .map_err(|e| PolicyError::from_regorus(&e, None))?;

    // The RVM compiler also resolves every function call, so unknown
    // functions are reported here, at configuration time. Constructs it
    // does not implement yet (`with`, partial objects with constant keys,
    // `print`…) fall back to the interpreter.
    let (vm, rvm_fallback_reason) = match Compiler::compile_from_policy(&compiled, &[ENTRY_POINT]) {
        Ok(program) => (Some(new_vm(program, data_value, max_instructions)?), None),
        Err(e) => {
            if e.to_string().contains("Unknown function") {
                return Err(PolicyError::from_regorus(&e, None));
            }
            (None, Some(PolicyError::from_regorus(&e, None).to_string()))
        }
    };

    // The interpreter counts evaluation steps against the same budget
    // as the RVM's instructions: bounded by work done, whatever the
    // clock says (max_eval_ms bounds its wall time as well).
    engine.set_work_budget(Some(max_instructions as u64));

    let revision = revision_of(modules, data);
    Ok(Compiled {
        engine,
        vm,
        rvm_fallback_reason,
        revision,
        module_names: modules.iter().map(|(n, _)| n.clone()).collect(),
        listing: Vec::new(),
        listing_fallback: None,
    })
}

fn new_vm(
    program: Arc<Program>,
    data: Option<Value>,
    max_instructions: usize,
) -> Result<RegoVM, PolicyError> {
    let mut vm = RegoVM::new();
    vm.load_program(program);
    if let Some(d) = data {
        vm.set_data(d)
            .map_err(|e| PolicyError::new(format!("data: {e}")))?;
    }
    vm.set_max_instructions(max_instructions);
    vm.set_strict_builtin_errors(true);
    Ok(vm)
}

/// The deepest nesting of `[` and `{` a module may have. regorus 0.14.1's
/// parser takes time exponential in this depth (it tries each bracket two
/// ways): 16 levels take about 0.3 s natively, 20 about 4 s, 30 hours.
/// Found by fuzzing the configuration; a configuration must not be able to
/// stall the proxy when it loads.
pub const MAX_BRACKET_NESTING: usize = 16;

/// Refuse a module whose brackets nest deeper than
/// [`MAX_BRACKET_NESTING`], outside strings and comments.
fn check_nesting(name: &str, source: &str) -> Result<(), PolicyError> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => {
                            if c == '\n' {
                                line += 1;
                            }
                            break;
                        }
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if c == '`' {
                        break;
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_BRACKET_NESTING {
                    return Err(PolicyError::new(format!(
                        "{name}:{line}: brackets nested deeper than {MAX_BRACKET_NESTING} levels (the Rego parser's time grows exponentially with nesting)"
                    )));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Convert a `serde_json::Value` into a regorus value. The text goes
/// through the same structural pre-scan as every body
/// ([`crate::mcp::jsonrpc::check_structure`]): numbers keep their literal
/// (`arbitrary_precision`), and regorus would build `0e20000000` in `data`
/// (configuration or bundle) as an exact 10^20000000.
pub fn json_to_value(v: &serde_json::Value) -> Result<Value, PolicyError> {
    let text = serde_json::to_string(v).map_err(|e| PolicyError::new(e.to_string()))?;
    crate::mcp::jsonrpc::check_structure(text.as_bytes())
        .map_err(|e| PolicyError::new(e.to_string()))?;
    Value::from_json_str(&text).map_err(|e| PolicyError::new(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::engine::Policy;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn deeply_nested_brackets_are_refused_before_parsing() {
        let module = |open: &str, close: &str, n: usize| {
            format!(
                "package mcp\nimport rego.v1\ndefault allow := true\nx := {}1{}\n",
                open.repeat(n),
                close.repeat(n)
            )
        };
        let compile = |src: String| Policy::compile(&[("p.rego".into(), src)], None, 1000);
        let e = compile(module("[", "]", 40)).unwrap_err().to_string();
        assert!(
            e.contains("p.rego:4: brackets nested deeper than 16"),
            "{e}"
        );
        assert!(compile(module("[{\"a\":", "}]", 9)).is_err());
        assert!(compile(module("[", "]", MAX_BRACKET_NESTING)).is_ok());
        // Brackets in strings, raw strings and comments do not count.
        let quoted = format!(
            "package mcp\nimport rego.v1\n# {}\nx := \"{}\\\"\"\ny := `{}`\ndefault allow := true\n",
            "[".repeat(40),
            "{".repeat(40),
            "[".repeat(40)
        );
        assert!(compile(quoted).is_ok());
    }
}
