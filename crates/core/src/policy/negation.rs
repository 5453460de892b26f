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

use super::ast::{for_each_child, for_each_literal_child, head_exprs, head_ref, root_var, Child};
use super::listing::widen;
use regorus::unstable::{BoolOp, Expr, Literal, LiteralStmt, Module, Query, Rule, RuleHead};
use regorus::{Engine, Value};
use std::collections::BTreeSet;

/// How many times the sources are re-parsed at most: a pass leaves a `not`
/// nested inside an operand it moved for the next pass. Bracket nesting is
/// bounded before this runs (16 levels, `policy/engine.rs`), and so is the
/// nesting of negations.
const MAX_PASSES: usize = 17;

/// Rewrite `modules` so that negations read undefined operands as OPA does.
/// `None` when nothing needs rewriting, or when the modules do not parse
/// (compiling the originals reports why).
pub fn transform(modules: &[(String, String)]) -> Option<Vec<(String, String)>> {
    // The fresh variables' prefix: one no source already uses.
    let mut prefix = String::from("__mcp_not");
    while modules.iter().any(|(_, src)| src.contains(prefix.as_str())) {
        prefix.push('_');
    }
    let mut current: Vec<(String, String)> = modules.to_vec();
    let mut changed = false;
    for pass in 0..MAX_PASSES {
        let Some(next) = one_pass(&current, pass, &prefix) else {
            break;
        };
        current = next;
        changed = true;
    }
    changed.then_some(current)
}

/// One edit of a module's text: replace `start..end` with `text`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

fn one_pass(
    modules: &[(String, String)],
    pass: usize,
    prefix: &str,
) -> Option<Vec<(String, String)>> {
    let mut engine = Engine::new();
    engine.set_rego_v0(false);
    for (name, source) in modules {
        engine.add_policy(name.clone(), source.clone()).ok()?;
    }
    let parsed = engine.get_modules();
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

struct Walker<'a> {
    text: &'a str,
    /// The package's rules: a bare variable naming one is a reference.
    rules: &'a BTreeSet<String>,
    /// `input`, `data` and the module's imports: references too.
    globals: BTreeSet<String>,
    /// Variables bound in the enclosing scopes (innermost last): those of
    /// the queries' literals outside negations, a function's arguments,
    /// `every`'s key and value.
    bound: Vec<BTreeSet<String>>,
    /// The fresh variables' prefix.
    prefix: &'a str,
    pass: usize,
    next: usize,
    edits: Vec<Edit>,
}

impl Walker<'_> {
    fn module(&mut self, m: &Module) {
        for r in &m.policy {
            match r.as_ref() {
                Rule::Spec { head, bodies, .. } => {
                    let mut args = BTreeSet::new();
                    if let RuleHead::Func { args: a, .. } = head {
                        a.iter().for_each(|a| vars_in(a, &mut args));
                    }
                    // The head and the values are evaluated after a body:
                    // the body's variables are bound there.
                    let mut after = args.clone();
                    for b in bodies {
                        bound_by(&b.query, &mut after);
                    }
                    self.bound.push(after);
                    for e in head_exprs(head) {
                        self.expr(e);
                    }
                    for b in bodies {
                        if let Some(a) = &b.assign {
                            self.expr(&a.value);
                        }
                    }
                    self.bound.pop();
                    self.bound.push(args);
                    for b in bodies {
                        // `allow if not f(x)`: a body without braces.
                        let braceless = !b.query.span.text().trim_start().starts_with('{');
                        self.query(&b.query, braceless);
                    }
                    self.bound.pop();
                }
                Rule::Default { value, .. } => self.expr(value),
            }
        }
    }

    /// A query; `braceless` for a rule body written without braces.
    fn query(&mut self, q: &Query, braceless: bool) {
        let mut here = BTreeSet::new();
        bound_by(q, &mut here);
        self.bound.push(here);
        for s in &q.stmts {
            self.stmt(s, braceless);
        }
        self.bound.pop();
    }

    /// Whether every variable of `e` is bound outside the negation (OPA
    /// refuses a policy whose negation holds an unbound variable; such a
    /// literal, `not f(xs[_])`, keeps regorus' reading).
    fn closed(&self, e: &Expr) -> bool {
        let mut vs = BTreeSet::new();
        vars_in(e, &mut vs);
        vs.iter().all(|v| {
            v != "_"
                && (self.rules.contains(v)
                    || self.globals.contains(v)
                    || self.bound.iter().any(|b| b.contains(v)))
        })
    }

    fn stmt(&mut self, s: &LiteralStmt, braceless: bool) {
        for w in &s.with_mods {
            self.expr(&w.refr);
            self.expr(&w.r#as);
        }
        match &s.literal {
            Literal::Every {
                key,
                value,
                domain,
                query,
                ..
            } => {
                self.expr(domain);
                let mut vars: BTreeSet<String> = key.iter().map(|k| k.text().to_string()).collect();
                vars.insert(value.text().to_string());
                self.bound.push(vars);
                self.query(query, false);
                self.bound.pop();
            }
            Literal::NotExpr { expr, .. } => {
                self.expr(expr);
                self.negation(s, expr, braceless);
            }
            // `some x`, `some … in`, an expression.
            l => for_each_literal_child(l, |c| match c {
                Child::Value(x) | Child::Callee(x) | Child::Term(x) => self.expr(x),
                Child::Body(q) => self.query(q, false),
            }),
        }
    }

    /// Comprehensions anywhere in an expression: their bodies may negate.
    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                // The term is evaluated after the body: its variables.
                let mut here = BTreeSet::new();
                bound_by(query, &mut here);
                self.bound.push(here);
                self.expr(term);
                self.bound.pop();
                self.query(query, false);
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                let mut here = BTreeSet::new();
                bound_by(query, &mut here);
                self.bound.push(here);
                self.expr(key);
                self.expr(value);
                self.bound.pop();
                self.query(query, false);
            }
            _ => for_each_child(e, |c| match c {
                Child::Value(x) | Child::Callee(x) | Child::Term(x) => self.expr(x),
                Child::Body(q) => self.query(q, false),
            }),
        }
    }

    /// The operands OPA evaluates before the negated expression `e`.
    fn negation(&mut self, s: &LiteralStmt, e: &Expr, braceless: bool) {
        let mut moved: Vec<&Expr> = Vec::new();
        match e {
            // A call: every operand.
            Expr::Call { params, .. } => params.iter().for_each(|p| self.operand(p, &mut moved)),
            Expr::BoolExpr {
                op: BoolOp::Eq,
                lhs,
                rhs,
                ..
            }
            | Expr::AssignExpr { lhs, rhs, .. } => {
                // Unification: a reference stays inside (its keys do not).
                for side in [lhs, rhs] {
                    if is_ref(side) {
                        self.keys(side, &mut moved);
                    } else {
                        self.operand(side, &mut moved);
                    }
                }
            }
            Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. }
            | Expr::BinExpr { lhs, rhs, .. } => {
                self.operand(lhs, &mut moved);
                self.operand(rhs, &mut moved);
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.operand(k, &mut moved);
                }
                self.operand(value, &mut moved);
                self.operand(collection, &mut moved);
            }
            Expr::UnaryExpr { expr, .. } => self.operand(expr, &mut moved),
            Expr::RefDot { .. } | Expr::RefBrack { .. } => self.keys(e, &mut moved),
            _ => {}
        }
        if moved.is_empty() || !moved.iter().all(|m| self.closed(m)) {
            return;
        }
        let (start, end) = widen(self.text, s.span.start as usize, s.span.end as usize);
        if self.text.get(start..end).is_none() {
            return;
        }
        let mut spans: Vec<(usize, usize)> = moved
            .iter()
            .map(|m| {
                let sp = m.span();
                widen(self.text, sp.start as usize, sp.end as usize)
            })
            .collect();
        spans.sort();
        if spans.iter().any(|&(a, b)| a < start || b > end || a >= b)
            || spans.windows(2).any(|w| matches!(w, [x, y] if y.0 < x.1))
        {
            return;
        }
        // OPA applies the literal's `with` modifiers to the operands too.
        let with = match (s.with_mods.first(), s.with_mods.last()) {
            (Some(first), Some(last)) => {
                let (a, _) = widen(
                    self.text,
                    first.span.start as usize,
                    first.span.end as usize,
                );
                let (_, b) = widen(self.text, last.span.start as usize, last.span.end as usize);
                match self.text.get(a..b) {
                    Some(t) => format!(" {t}"),
                    None => return,
                }
            }
            _ => String::new(),
        };
        let mut assigns = String::new();
        let mut rewritten = String::new();
        let mut at = start;
        for (a, b) in spans {
            let (Some(before), Some(operand)) = (self.text.get(at..a), self.text.get(a..b)) else {
                return;
            };
            let var = format!("{}{}_{}", self.prefix, self.pass, self.next);
            self.next += 1;
            assigns.push_str(&format!("{var} := {operand}{with}; "));
            rewritten.push_str(before);
            rewritten.push_str(&var);
            at = b;
        }
        let Some(rest) = self.text.get(at..end) else {
            return;
        };
        rewritten.push_str(rest);
        let text = if braceless {
            format!("{{ {assigns}{rewritten} }}")
        } else {
            format!("{assigns}{rewritten}")
        };
        self.edits.push(Edit { start, end, text });
    }

    /// An operand of a call under `not`: a reference, a call (or operator),
    /// or a rule or import named bare moves out whole; a collection literal
    /// or a membership moves its members; a local variable, a scalar, a
    /// comprehension stay.
    fn operand<'e>(&self, e: &'e Expr, moved: &mut Vec<&'e Expr>) {
        match e {
            Expr::Var {
                value: Value::String(s),
                ..
            } if self.rules.contains(s.as_ref()) || self.globals.contains(s.as_ref()) => {
                moved.push(e)
            }
            Expr::RefDot { .. }
            | Expr::RefBrack { .. }
            | Expr::Call { .. }
            | Expr::BoolExpr { .. }
            | Expr::ArithExpr { .. }
            | Expr::BinExpr { .. }
            | Expr::UnaryExpr { .. } => moved.push(e),
            // `x in xs` is a value, but regorus reads it as false where
            // `xs` is undefined (OPA: undefined): its operands move instead.
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.operand(k, moved);
                }
                self.operand(value, moved);
                self.operand(collection, moved);
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().for_each(|i| self.operand(i, moved))
            }
            Expr::Object { fields, .. } => {
                for (_, k, v) in fields {
                    self.operand(k, moved);
                    self.operand(v, moved);
                }
            }
            _ => {}
        }
    }

    /// The computed keys of a reference (`m[input.k]`) move out, and so
    /// does a base that is not a variable (`split(s, "/")[0]`).
    fn keys<'e>(&self, e: &'e Expr, moved: &mut Vec<&'e Expr>) {
        let mut cur = e;
        loop {
            match cur {
                Expr::RefDot { refr, .. } => cur = refr.as_ref(),
                Expr::RefBrack { refr, index, .. } => {
                    self.operand(index, moved);
                    cur = refr.as_ref();
                }
                Expr::Var { .. } => return,
                _ => return self.operand(cur, moved),
            }
        }
    }
}

/// The variables a query binds outside its negations (`some x` declares
/// without binding; a negation binds nothing).
fn bound_by(q: &Query, out: &mut BTreeSet<String>) {
    for s in &q.stmts {
        if let Literal::NotExpr { .. } = &s.literal {
            continue;
        }
        // `every`'s body binds its own variables only.
        for_each_literal_child(&s.literal, |c| {
            if let Child::Value(x) = c {
                vars_in(x, out);
            }
        });
    }
}

/// The variables an expression names (outside comprehensions, whose own
/// variables are local; a call's function name is not a variable).
fn vars_in(e: &Expr, out: &mut BTreeSet<String>) {
    if let Expr::Var {
        value: Value::String(s),
        ..
    } = e
    {
        out.insert(s.to_string());
    }
    for_each_child(e, |c| {
        if let Child::Value(x) = c {
            vars_in(x, out);
        }
    });
}

fn is_ref(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> String {
        let m = vec![(
            "a.rego".to_string(),
            format!("package mcp\nimport rego.v1\n{src}\n"),
        )];
        match transform(&m) {
            Some(v) => v[0].1.lines().skip(2).collect::<Vec<_>>().join("\n"),
            None => "unchanged".into(),
        }
    }

    #[test]
    fn call_operands_move_out() {
        assert_eq!(
            one(r#"allow if { not startswith(input.x, "a") }"#),
            r#"allow if { __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, "a") }"#
        );
        assert_eq!(
            one(r#"allow if not startswith(input.x, "a")"#),
            r#"allow if { __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, "a") }"#
        );
        assert_eq!(
            one(r#"allow if { not "a" in input.xs }"#),
            r#"allow if { __mcp_not0_0 := input.xs; not "a" in __mcp_not0_0 }"#
        );
        assert_eq!(
            one("m := {}\nallow if { not m[input.k] }"),
            "m := {}\nallow if { __mcp_not0_0 := input.k; not m[__mcp_not0_0] }"
        );
        assert_eq!(
            one("r := input.x\nallow if { not startswith(r, \"a\") }"),
            "r := input.x\nallow if { __mcp_not0_0 := r; not startswith(__mcp_not0_0, \"a\") }"
        );
    }

    #[test]
    fn alone_or_unified_references_stay() {
        assert_eq!(one("allow if { not input.admin }"), "unchanged");
        assert_eq!(one(r#"allow if { not input.role == "x" }"#), "unchanged");
        assert_eq!(
            one(r#"allow if { not split(input.q, "/")[0] == "a" }"#),
            r#"allow if { __mcp_not0_0 := split(input.q, "/"); not __mcp_not0_0[0] == "a" }"#
        );
        assert_eq!(
            one(r#"allow if { y := "a"; not startswith(y, "a") }"#),
            "unchanged"
        );
        // `with` applies to the moved operand too, as in OPA.
        assert_eq!(
            one(r#"allow if { not startswith(input.x, "a") with input as {} }"#),
            r#"allow if { __mcp_not0_0 := input.x with input as {}; not startswith(__mcp_not0_0, "a") with input as {} }"#
        );
        // Unbound variables in the negation (OPA refuses these): as written.
        assert_eq!(
            one(r#"allow if { not startswith(input.roles[_], "a") }"#),
            "unchanged"
        );
        assert_eq!(
            one(r#"allow if { some i; not startswith(input.roles[i], "a") }"#),
            "unchanged"
        );
        // Bound ones move.
        assert_eq!(
            one(r#"allow if { some i in [0]; not startswith(input.roles[i], "a") }"#),
            r#"allow if { some i in [0]; __mcp_not0_0 := input.roles[i]; not startswith(__mcp_not0_0, "a") }"#
        );
        assert_eq!(
            one("f(x) if { not startswith(x.name, \"a\") }"),
            "f(x) if { __mcp_not0_0 := x.name; not startswith(__mcp_not0_0, \"a\") }"
        );
        assert_eq!(
            one(r#"allow if { not lower(input.x) == "a" }"#),
            r#"allow if { __mcp_not0_0 := lower(input.x); not __mcp_not0_0 == "a" }"#
        );
    }

    #[test]
    fn scopes_imports_braces_and_names() {
        // `every` binds its key and value for its body.
        assert_eq!(
            one(r#"allow if { every v in input.xs { not startswith(v.name, "a") } }"#),
            r#"allow if { every v in input.xs { __mcp_not0_0 := v.name; not startswith(__mcp_not0_0, "a") } }"#
        );
        // A function's head value sees its arguments.
        assert_eq!(
            one(r#"f(x) := count([1 | not startswith(x.n, "a")])"#),
            r#"f(x) := count([1 | __mcp_not0_0 := x.n; not startswith(__mcp_not0_0, "a")])"#
        );
        // An imported name is a reference.
        let m = vec![(
            "a.rego".to_string(),
            "package mcp\nimport rego.v1\nimport data.lib.r\nallow if not startswith(r, \"a\")\n"
                .to_string(),
        )];
        let out = transform(&m).unwrap();
        assert!(
            out[0]
                .1
                .contains("allow if { __mcp_not0_0 := r; not startswith(__mcp_not0_0, \"a\") }"),
            "{out:?}"
        );
        // Braces are read from the syntax tree, not guessed from the text.
        assert_eq!(
            one("allow if { # only if\n not startswith(input.x, \"a\") }"),
            "allow if { # only if\n __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, \"a\") }"
        );
        assert_eq!(
            one("allow if # why\n  not startswith(input.x, \"a\")"),
            "allow if # why\n  { __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, \"a\") }"
        );
        // A name the policy already uses is not reused.
        assert_eq!(
            one("allow if { __mcp_not0_0 := 5; not startswith(input.x, \"a\") }"),
            "allow if { __mcp_not0_0 := 5; __mcp_not_0_0 := input.x; not startswith(__mcp_not_0_0, \"a\") }"
        );
        // A membership inside an operand moves its operands, not itself.
        assert_eq!(
            one(r#"allow if not ("a" in input.xs) == true"#),
            r#"allow if { __mcp_not0_0 := input.xs; not ("a" in __mcp_not0_0) == true }"#
        );
    }

    #[test]
    fn negations_in_comprehensions_and_nested() {
        assert_eq!(
            one(r#"allow if { c := [1 | not startswith(input.x, "a")]; count(c) == 1 }"#),
            r#"allow if { c := [1 | __mcp_not0_0 := input.x; not startswith(__mcp_not0_0, "a")]; count(c) == 1 }"#
        );
        // An operand holding a negation of its own: the inner one next pass.
        let out = one(r#"allow if { not f(count([1 | not startswith(input.x, "a")])) }"#);
        assert!(
            out.contains("__mcp_not0_1 := count([") && out.contains("not f(__mcp_not0_1)"),
            "{out}"
        );
        assert!(out.contains("__mcp_not1_0 := input.x"), "{out}");
    }
}
