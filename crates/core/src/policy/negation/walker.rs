//! The walk that finds negations to rewrite: scopes of bound variables,
//! the operands OPA evaluates before a negated expression, and the text
//! edit that moves them out.

use crate::policy::ast::{for_each_child, for_each_literal_child, head_exprs, Child};
use crate::policy::listing::widen;
use regorus::unstable::{BoolOp, Expr, Literal, LiteralStmt, Module, Query, Rule, RuleHead};
use regorus::Value;
use std::collections::BTreeSet;

/// One edit of a module's text: replace `start..end` with `text`.
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) text: String,
}

pub(super) struct Walker<'a> {
    pub(super) text: &'a str,
    /// The package's rules: a bare variable naming one is a reference.
    pub(super) rules: &'a BTreeSet<String>,
    /// `input`, `data` and the module's imports: references too.
    pub(super) globals: BTreeSet<String>,
    /// Variables bound in the enclosing scopes (innermost last): those of
    /// the queries' literals outside negations, a function's arguments,
    /// `every`'s key and value.
    pub(super) bound: Vec<BTreeSet<String>>,
    /// The fresh variables' prefix.
    pub(super) prefix: &'a str,
    pub(super) pass: usize,
    pub(super) next: usize,
    pub(super) edits: Vec<Edit>,
}

impl Walker<'_> {
    pub(super) fn module(&mut self, m: &Module) {
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
    pub(super) fn query(&mut self, q: &Query, braceless: bool) {
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
    pub(super) fn closed(&self, e: &Expr) -> bool {
        let mut vs = BTreeSet::new();
        vars_in(e, &mut vs);
        vs.iter().all(|v| {
            v != "_"
                && (self.rules.contains(v)
                    || self.globals.contains(v)
                    || self.bound.iter().any(|b| b.contains(v)))
        })
    }

    pub(super) fn stmt(&mut self, s: &LiteralStmt, braceless: bool) {
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
    pub(super) fn expr(&mut self, e: &Expr) {
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
    pub(super) fn negation(&mut self, s: &LiteralStmt, e: &Expr, braceless: bool) {
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
    pub(super) fn operand<'e>(&self, e: &'e Expr, moved: &mut Vec<&'e Expr>) {
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
    pub(super) fn keys<'e>(&self, e: &'e Expr, moved: &mut Vec<&'e Expr>) {
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
pub(super) fn bound_by(q: &Query, out: &mut BTreeSet<String>) {
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
pub(super) fn vars_in(e: &Expr, out: &mut BTreeSet<String>) {
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

pub(super) fn is_ref(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. }
    )
}
