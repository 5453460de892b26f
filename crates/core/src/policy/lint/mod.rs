//! Static analyses of Rego policy modules: what can be caught before
//! traffic does. No CLI or proxy types here; `mcp-policy check` prints the
//! findings, and the engine may call [`lint`] at configuration time and
//! refuse a policy with an [`Severity::Error`] finding.
//!
//! | code | severity | what |
//! |---|---|---|
//! | `input-path` | warning | a reference to an `input` path docs/input.md does not document ([`input`]) |
//! | `sprintf-args` | warning | a literal format whose verbs do not match the literal argument array |
//! | `sprintf-verb` | warning | `%d` / `%q` (…) on an argument not provably of the type the verb needs |
//! | `rule-conflict` | warning | a complete rule with several definitions of different values |
//! | `definition-order` | warning | a rule used above its definition, in a module that is not the first of its package |
//!
//! The two `rvm-` findings are regorus 0.14.1 RVM behaviours confirmed by
//! crates/core/tests/lint_gaps.rs (docs/policy.md, "Differences from OPA"):
//! - `x := e` where `e` is undefined does not fail the body on the RVM; `x`
//!   is left undefined and the body fails only where a later statement uses
//!   `x` positively. So when `x` is not used after the assignment (or only
//!   under `not`, in a comprehension or an object literal) the body holds
//!   where OPA's fails; when it is used only in the rule's head and an
//!   `else` follows, the rule is undefined instead of taking the `else`.
//!   `x = e` (unification) is not affected.
//! - A body that iterates (`some … in`, `some k; r[k]`, `r[_]`, also under
//!   `not`) and then fails makes the whole rule undefined on the RVM instead
//!   of taking the `else` after it.

mod finding;
pub mod input;
mod rules;
mod sprintf;
mod syntax;

pub use finding::{Finding, Severity};

use regorus::unstable::{Module, Ref};
use rules::{conflicts, definition_order};
use sprintf::Cx;
use std::collections::BTreeMap;
use syntax::module_name;

/// Whether a module is a Rego test module (`*_test.rego`), which the filter
/// never loads.
pub fn is_test_module(name: &str) -> bool {
    name.ends_with("_test.rego")
}

/// Deepest bracket nesting parsed (regorus' parser is exponential in it; the
/// engine refuses deeper modules, see `engine::MAX_BRACKET_NESTING`).
const MAX_NESTING: usize = crate::policy::engine::MAX_BRACKET_NESTING;

/// Analyse `modules` (name, Rego source). Modules that do not parse are
/// skipped (compiling them reports why). Findings come sorted by module
/// order, line and column.
pub fn lint(modules: &[(String, String)]) -> Vec<Finding> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(false);
    for (name, source) in modules {
        if nesting(source) > MAX_NESTING {
            continue;
        }
        // A module that does not parse is reported by the compiler.
        let _ = engine.add_policy(name.clone(), source.clone());
    }
    lint_parsed(engine.get_modules())
}

/// [`lint`] on modules already parsed (by an engine that holds them).
pub fn lint_parsed(parsed: &[Ref<Module>]) -> Vec<Finding> {
    let mut out = Vec::new();
    let policy: Vec<Ref<Module>> = parsed
        .iter()
        .filter(|m| !is_test_module(module_name(m)))
        .cloned()
        .collect();
    for f in input::check_modules(&policy) {
        out.push(Finding {
            module: f.module,
            line: f.line,
            column: f.col,
            severity: Severity::Warning,
            code: "input-path",
            message: f.message,
            suggestion: f.suggestion,
        });
    }
    for m in parsed {
        let name = module_name(m).to_string();
        let mut cx = Cx {
            module: name,
            out: &mut out,
        };
        for rule in &m.policy {
            cx.rule(rule);
        }
    }
    conflicts(&policy, &mut out);
    definition_order(&policy, &mut out);
    let rank: BTreeMap<&str, usize> = parsed
        .iter()
        .enumerate()
        .map(|(i, m)| (module_name(m), i))
        .collect();
    out.sort_by(|a, b| {
        (rank.get(a.module.as_str()), a.line, a.column, a.code).cmp(&(
            rank.get(b.module.as_str()),
            b.line,
            b.column,
            b.code,
        ))
    });
    out.dedup();
    out
}

/// Bracket nesting depth outside strings and comments (rough).
fn nesting(source: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut in_str = false;
    let mut in_comment = false;
    let mut escaped = false;
    for c in source.chars() {
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '#' => in_comment = true,
            '"' => in_str = true,
            '[' | '{' | '(' => {
                depth += 1;
                max = max.max(depth);
            }
            ']' | '}' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests;
