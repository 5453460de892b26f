//! `not` over an expression with an undefined operand, decided as OPA does.
//!
//! OPA's compiler takes the operands of a call out of a negated expression
//! before evaluating it: `not startswith(input.path, "/w")` is evaluated as
//! `x := input.path; not startswith(x, "/w")`, so when `input.path` is
//! undefined the literal *fails* (the rule does not hold). Comparisons other
//! than `==`, membership (`"a" in xs`), arithmetic, the keys of a reference
//! (`not m[input.k]`) and a call at the base of one (`split(s, "/")[0]`) are
//! calls too. Only a reference or a unification standing alone
//! (`not input.admin`, `not input.role == "x"`) reads an undefined operand
//! inside the negation (the literal holds). regorus evaluates everything
//! inside the negation, so without this step a policy would read `true`
//! where OPA reads undefined — and an `allow` with such a literal would
//! allow where OPA does not (docs/policy.md, "Differences from OPA",
//! tests/tooling/test_differential.py).
//!
//! This module rewrites the policy's sources once, at compile time, the way
//! OPA's compiler does: each such operand becomes a fresh variable assigned
//! just before the literal, on the same line (`__mcp_notP_N := input.path;
//! not startswith(__mcp_notP_N, "/w")`, with the literal's `with` modifiers
//! repeated), so line numbers in errors stay those of the original sources.
//! An assignment of an undefined value fails the body in both of regorus'
//! engines, as in OPA. An operand holding a variable that is not bound
//! outside the negation (`not f(xs[_])`, which OPA refuses as unsafe) is
//! left as written.

mod walker;

use super::ast::{head_ref, root_var, Parsed};
use regorus::unstable::Rule;
use std::collections::BTreeSet;
use walker::{Edit, Walker};

/// How many times the sources are re-parsed at most: a pass leaves a `not`
/// nested inside an operand it moved for the next pass. Bracket nesting is
/// bounded before this runs (16 levels, `policy/engine/compile.rs`), and so is the
/// nesting of negations.
const MAX_PASSES: usize = 17;

/// Rewrite `modules` so that negations read undefined operands as OPA does.
/// `None` when nothing needs rewriting, or when the modules do not parse
/// (compiling the originals reports why).
pub fn transform(modules: &[(String, String)]) -> Option<Vec<(String, String)>> {
    rewrite(modules).0
}

/// [`transform`], and the parse of the sources it returns (the originals
/// when it returns `None`) when it has one: the last pass, which found
/// nothing more to change, parsed exactly them, and the steps after (the
/// listing transform, the engine) read that parse instead of parsing the
/// same text again. `None` for it when they do not parse, or when the
/// passes ran out.
pub(crate) fn rewrite(
    modules: &[(String, String)],
) -> (Option<Vec<(String, String)>>, Option<Parsed>) {
    // The fresh variables' prefix: one no source already uses.
    let mut prefix = String::from("__mcp_not");
    while modules.iter().any(|(_, src)| src.contains(prefix.as_str())) {
        prefix.push('_');
    }
    let mut current: Vec<(String, String)> = modules.to_vec();
    let mut changed = false;
    for pass in 0..MAX_PASSES {
        let Ok(parsed) = Parsed::parse(&current) else {
            return (changed.then_some(current), None);
        };
        let Some(next) = one_pass(&current, &parsed, pass, &prefix) else {
            return (changed.then_some(current), Some(parsed));
        };
        current = next;
        changed = true;
    }
    (changed.then_some(current), None)
}

/// One pass over `modules`, whose parse is `parsed`: the rewritten
/// sources, or `None` when there is nothing to change.
fn one_pass(
    modules: &[(String, String)],
    parsed: &Parsed,
    pass: usize,
    prefix: &str,
) -> Option<Vec<(String, String)>> {
    let parsed = parsed.modules();
    // Rule names per package: a bare variable naming a rule is a reference.
    let mut rules_of: Vec<(String, BTreeSet<String>)> = Vec::new();
    for m in parsed.iter() {
        let package = m.package.refr.span().text().trim().to_string();
        let names: BTreeSet<String> = m.policy.iter().filter_map(|r| rule_name(r)).collect();
        match rules_of.iter_mut().find(|(p, _)| *p == package) {
            Some((_, set)) => set.extend(names),
            None => rules_of.push((package, names)),
        }
    }
    let mut out = Vec::with_capacity(modules.len());
    let mut any = false;
    for ((name, source), m) in modules.iter().zip(parsed.iter()) {
        let package = m.package.refr.span().text().trim().to_string();
        let empty = BTreeSet::new();
        let rules = rules_of
            .iter()
            .find(|(p, _)| *p == package)
            .map(|(_, s)| s)
            .unwrap_or(&empty);
        // Imported names (`import data.lib.r`, `import input.x as u`) are
        // references, like `input` and `data`.
        let mut globals: BTreeSet<String> =
            ["input", "data"].iter().map(|s| s.to_string()).collect();
        for i in &m.imports {
            let name = match &i.r#as {
                Some(a) => a.text().to_string(),
                None => i
                    .refr
                    .span()
                    .text()
                    .rsplit('.')
                    .next()
                    .unwrap_or("")
                    .to_string(),
            };
            globals.insert(name);
        }
        let mut w = Walker {
            text: source,
            rules,
            globals,
            bound: Vec::new(),
            prefix,
            pass,
            next: 0,
            edits: Vec::new(),
        };
        w.module(m);
        if w.edits.is_empty() {
            out.push((name.clone(), source.clone()));
            continue;
        }
        let mut edits = w.edits;
        edits.sort_by_key(|e| e.start);
        // Keep the outermost of overlapping edits; the next pass sees the rest.
        let mut kept: Vec<Edit> = Vec::with_capacity(edits.len());
        for e in edits {
            if kept.last().is_some_and(|k| e.start < k.end) {
                continue;
            }
            kept.push(e);
        }
        let mut text = source.clone();
        for e in kept.iter().rev() {
            if e.end > text.len()
                || !text.is_char_boundary(e.start)
                || !text.is_char_boundary(e.end)
            {
                return None;
            }
            text.replace_range(e.start..e.end, &e.text);
        }
        any = true;
        out.push((name.clone(), text));
    }
    any.then_some(out)
}

fn rule_name(r: &Rule) -> Option<String> {
    root_var(head_ref(r)).map(str::to_string)
}

#[cfg(test)]
mod tests;
