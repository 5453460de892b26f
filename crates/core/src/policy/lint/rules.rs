//! `rule-conflict` and `definition-order`: checks across the definitions
//! of a package's rules.

use super::finding::{Finding, Severity};
use super::syntax::{
    call_name, may_be_undefined, module_name, text, var_name, walk_expr, walk_query,
};
use crate::policy::ast::{head_ref, root_var};
use regorus::unstable::{BoolOp, Expr, Literal, Module, Query, Ref, Rule, RuleHead};
use std::collections::{BTreeMap, BTreeSet};

/// Every rule name (first segment of the head) of `modules`.
pub(super) fn rule_names(modules: &[Ref<Module>], functions: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for m in modules {
        for rule in &m.policy {
            let (refr, is_fn) = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Func { refr, .. } => (refr, true),
                    RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => (refr, false),
                },
                Rule::Default { refr, args, .. } => (refr, !args.is_empty()),
            };
            if is_fn && !functions {
                continue;
            }
            if let Some(n) = root_var(refr) {
                out.insert(n.to_string());
            }
        }
    }
    out
}

/// `rule-conflict`: complete rules defined more than once with values that
/// differ, whose bodies are not visibly exclusive.
pub(super) fn conflicts(modules: &[Ref<Module>], out: &mut Vec<Finding>) {
    // (package, rule name) -> definitions (module, value text, head expr, facts)
    struct Def<'a> {
        module: String,
        value: String,
        constant: bool,
        at: &'a Expr,
        facts: Vec<Facts>,
    }
    let mut defs: BTreeMap<(String, String), Vec<Def<'_>>> = BTreeMap::new();
    for m in modules {
        let package = m.package.refr.span().text().to_string();
        for rule in &m.policy {
            let Rule::Spec { head, bodies, .. } = rule.as_ref() else {
                continue;
            };
            let RuleHead::Compr { refr, assign, .. } = head else {
                continue;
            };
            let Some(name) = var_name(refr) else {
                continue; // `r[k] := v`: a partial object
            };
            let (value, constant) = match assign {
                Some(a) => (
                    text(&a.value),
                    !may_be_undefined(&a.value) && !has_var(&a.value),
                ),
                None => ("true".to_string(), true),
            };
            defs.entry((package.clone(), name.to_string()))
                .or_default()
                .push(Def {
                    module: module_name(m).to_string(),
                    value,
                    constant,
                    at: refr,
                    facts: bodies.iter().map(|b| Facts::of(&b.query)).collect(),
                });
        }
    }
    for ((_, name), ds) in &defs {
        for (j, d) in ds.iter().enumerate() {
            let clash = ds.iter().take(j).find(|e| {
                (e.value != d.value || !e.constant || !d.constant)
                    && !e
                        .facts
                        .iter()
                        .all(|fe| d.facts.iter().all(|fd| fe.excludes(fd)))
            });
            let Some(first) = clash else { continue };
            let sp = d.at.span();
            let first_sp = first.at.span();
            out.push(Finding {
                module: d.module.clone(),
                line: sp.line,
                column: sp.col,
                severity: Severity::Warning,
                code: "rule-conflict",
                message: format!(
                    "`{name}` is also defined at {}:{} with {}: when both hold for one message, evaluation stops with a conflict error (OPA too), and the message is denied",
                    first.module,
                    first_sp.line,
                    if first.value == d.value { "a value that may differ".to_string() } else { format!("another value ({})", first.value) },
                ),
                suggestion: Some(
                    "make the conditions exclusive (`x == \"a\"` / `x == \"b\"`, `c` / `not c`), or write one definition with `else`".into(),
                ),
            });
        }
    }
}

pub(super) fn has_var(e: &Expr) -> bool {
    let mut found = false;
    walk_expr(e, true, &mut |x| {
        if matches!(x, Expr::Var { .. }) {
            found = true;
        }
    });
    found
}

/// What a body requires, to tell two bodies exclusive: `ref == constant`
/// facts and plain / negated conditions (by source text).
pub(super) struct Facts {
    equal: BTreeMap<String, String>,
    /// `is_string(x)`…: x's text -> the predicate.
    types: BTreeMap<String, String>,
    holds: BTreeSet<String>,
    negated: BTreeSet<String>,
}

impl Facts {
    pub(super) fn of(q: &Query) -> Facts {
        let mut f = Facts {
            equal: BTreeMap::new(),
            types: BTreeMap::new(),
            holds: BTreeSet::new(),
            negated: BTreeSet::new(),
        };
        for s in &q.stmts {
            match &s.literal {
                Literal::Expr { expr, .. } => {
                    f.holds.insert(text(expr));
                    if let Expr::Call { fcn, params, .. } = expr.as_ref() {
                        if let (Some(n), Some(p)) = (call_name(fcn), params.first()) {
                            if n.starts_with("is_") {
                                f.types.insert(text(p), n);
                            }
                        }
                    }
                    if let Expr::BoolExpr {
                        op: BoolOp::Eq,
                        lhs,
                        rhs,
                        ..
                    } = expr.as_ref()
                    {
                        for (a, b) in [(lhs, rhs), (rhs, lhs)] {
                            if !may_be_undefined(b) && !has_var(b) {
                                f.equal.insert(text(a), text(b));
                            }
                        }
                    }
                }
                Literal::NotExpr { expr, .. } => {
                    f.negated.insert(text(expr));
                }
                _ => {}
            }
        }
        f
    }

    /// Whether no message can satisfy both.
    pub(super) fn excludes(&self, other: &Facts) -> bool {
        self.equal
            .iter()
            .any(|(k, v)| other.equal.get(k).is_some_and(|w| w != v))
            || self
                .types
                .iter()
                .any(|(k, v)| other.types.get(k).is_some_and(|w| w != v))
            || self.holds.iter().any(|h| other.negated.contains(h))
            || self.negated.iter().any(|n| other.holds.contains(n))
    }
}

/// `definition-order`: in a module that is not the first of its package, a
/// rule of the package used above its definition (further down, or in a
/// later module).
pub(super) fn definition_order(modules: &[Ref<Module>], out: &mut Vec<Finding>) {
    // package -> rule name -> (module index, line) of its first definition
    let mut first_def: BTreeMap<String, BTreeMap<String, (usize, u32)>> = BTreeMap::new();
    let mut first_module: BTreeMap<String, usize> = BTreeMap::new();
    let non_functions = rule_names(modules, false);
    for (i, m) in modules.iter().enumerate() {
        let package = m.package.refr.span().text().to_string();
        first_module.entry(package.clone()).or_insert(i);
        let rules = first_def.entry(package).or_default();
        for rule in &m.policy {
            if let Some(n) = root_var(head_ref(rule)).filter(|n| non_functions.contains(*n)) {
                rules.entry(n.to_string()).or_insert((i, rule.span().line));
            }
        }
    }
    for (i, m) in modules.iter().enumerate() {
        let package = m.package.refr.span().text().to_string();
        if first_module.get(&package) == Some(&i) {
            continue;
        }
        let Some(rules) = first_def.get(&package) else {
            continue;
        };
        let file = module_name(m).to_string();
        let mut reported: BTreeSet<String> = BTreeSet::new();
        for rule in &m.policy {
            let Rule::Spec { bodies, .. } = rule.as_ref() else {
                continue;
            };
            for b in bodies {
                let mut uses: Vec<&Expr> = Vec::new();
                walk_query(&b.query, &mut |e| {
                    if let Some(n) = var_name(e) {
                        if rules.contains_key(n) {
                            uses.push(e);
                        }
                    }
                });
                for e in uses {
                    let Some(n) = var_name(e) else { continue };
                    let Some(&(dm, dl)) = rules.get(n) else {
                        continue;
                    };
                    let sp = e.span();
                    let later = dm > i || (dm == i && dl > sp.line);
                    if later && reported.insert(n.to_string()) {
                        let defined = modules
                            .get(dm)
                            .map(|d| module_name(d).to_string())
                            .unwrap_or_default();
                        out.push(Finding {
                            module: file.clone(),
                            line: sp.line,
                            column: sp.col,
                            severity: Severity::Warning,
                            code: "definition-order",
                            message: format!(
                                "`{n}` is used above its definition ({defined}:{dl}) in a module that is not the first of its package: regorus' interpreter (Rego tests, `with`, and policies that run on it) can read it undefined"
                            ),
                            suggestion: Some(format!(
                                "define `{n}` above its first use, in this module or an earlier one"
                            )),
                        });
                    }
                }
            }
        }
    }
}
