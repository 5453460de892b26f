//! `sprintf-args` and `sprintf-verb`: literal formats checked against
//! their argument arrays, with the types a body makes provable.

use super::finding::{Finding, Severity};
use super::syntax::{call_name, text, var_name, walk_expr, walk_literal};
use crate::policy::ast::head_exprs;
use regorus::unstable::{BoolOp, Expr, Literal, Query, Ref, Rule};
use regorus::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Per-rule analyses.
pub(super) struct Cx<'a> {
    pub(super) module: String,
    pub(super) out: &'a mut Vec<Finding>,
}

impl Cx<'_> {
    pub(super) fn push(
        &mut self,
        e: &Expr,
        severity: Severity,
        code: &'static str,
        message: String,
        suggestion: Option<String>,
    ) {
        let sp = e.span();
        self.out.push(Finding {
            module: self.module.clone(),
            line: sp.line,
            column: sp.col,
            severity,
            code,
            message,
            suggestion,
        });
    }

    pub(super) fn rule(&mut self, rule: &Rule) {
        let (head, bodies) = match rule {
            Rule::Spec { head, bodies, .. } => (head, bodies),
            Rule::Default { value, .. } => {
                self.sprintf_in(value, &Types::default());
                return;
            }
        };
        let head_exprs = head_exprs(head);
        for (i, body) in bodies.iter().enumerate() {
            // The value this body gives: the head's, or its own `else := v`.
            let mut values: Vec<&Expr> = if i == 0 {
                head_exprs.clone()
            } else {
                Vec::new()
            };
            if let Some(a) = &body.assign {
                values.push(&a.value);
            }
            let types = Types::of_query(&body.query);
            for v in &values {
                self.sprintf_in(v, &types);
            }
            self.query(&body.query, &types);
        }
    }

    /// Statements of one body.
    pub(super) fn query(&mut self, q: &Query, types: &Types) {
        for s in q.stmts.iter() {
            // sprintf anywhere in the statement (comprehensions get their
            // own pass below).
            walk_literal(&s.literal, false, &mut |e| {
                if let Expr::Call { fcn, params, .. } = e {
                    if call_name(fcn).as_deref() == Some("sprintf") {
                        self.sprintf(e, params, types);
                    }
                }
            });
            // Comprehension bodies are queries of their own.
            walk_literal(&s.literal, false, &mut |e| match e {
                Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                    let t = Types::of_query(query);
                    self.sprintf_in(term, &t);
                    self.query(query, &t);
                }
                Expr::ObjectCompr { query, .. } => {
                    let t = Types::of_query(query);
                    self.query(query, &t);
                }
                _ => {}
            });
            if let Literal::Every { query, .. } = &s.literal {
                let t = Types::of_query(query);
                self.query(query, &t);
            }
        }
    }

    /// sprintf calls in `e` (not inside comprehensions: those are walked
    /// with their own query).
    pub(super) fn sprintf_in(&mut self, e: &Expr, types: &Types) {
        walk_expr(e, false, &mut |x| {
            if let Expr::Call { fcn, params, .. } = x {
                if call_name(fcn).as_deref() == Some("sprintf") {
                    self.sprintf(x, params, types);
                }
            }
        });
    }

    pub(super) fn sprintf(&mut self, call: &Expr, params: &[Ref<Expr>], types: &Types) {
        let (Some(fmt), Some(args)) = (params.first(), params.get(1)) else {
            return;
        };
        let fmt = match fmt.as_ref() {
            Expr::String {
                value: Value::String(s),
                ..
            }
            | Expr::RawString {
                value: Value::String(s),
                ..
            } => s.to_string(),
            _ => return,
        };
        let Expr::Array { items, .. } = args.as_ref() else {
            return;
        };
        let verbs = verbs(&fmt);
        if verbs.len() != items.len() {
            self.push(
                call,
                Severity::Warning,
                "sprintf-args",
                format!(
                    "sprintf format {fmt:?} has {} but {} given: the call fails (so a rule built on it errors; a deny rule denies)",
                    plural(verbs.len(), "verb"),
                    plural(items.len(), "argument"),
                ),
                Some("give one argument per verb (`%%` is a literal percent sign)".into()),
            );
            return;
        }
        for (verb, arg) in verbs.iter().zip(items.iter()) {
            let ty = types.of(arg);
            // An unknown type is reported only for what the client controls
            // (`input…`, or a local taken from it); a function's parameters
            // and rules are trusted.
            if ty == Ty::Unknown && !types.client_controlled(arg) {
                continue;
            }
            let problem = match verb {
                'd' if ty != Ty::Int => Some(match ty {
                    Ty::Unknown => "may not be an integer",
                    _ => "is not an integer",
                }),
                'q' if ty != Ty::Str => Some(match ty {
                    Ty::Unknown => "may not be a string",
                    _ => "is not a string",
                }),
                's' if matches!(ty, Ty::Int | Ty::Num) => None,
                'f' | 'e' | 'g' if matches!(ty, Ty::Str | Ty::Other) => Some("is not a number"),
                _ => None,
            };
            if let Some(p) = problem {
                self.push(
                    arg,
                    Severity::Warning,
                    "sprintf-verb",
                    format!(
                        "`%{verb}` with `{}`, which {p}: regorus fails at run time where OPA formats it (a deny rule then denies with an error instead of its reason)",
                        text(arg)
                    ),
                    Some(match verb {
                        'q' => "use `%v`, or guard with `is_string(…)` before formatting with `%q`".into(),
                        'd' => "use `%v`, or guard with `is_number(…)` and `round(…)`".into(),
                        _ => "use `%v`".into(),
                    }),
                );
            }
        }
    }
}

pub(super) fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The verbs of a Go-style format (`%%` is not one), in order.
pub(super) fn verbs(fmt: &str) -> Vec<char> {
    let mut out = Vec::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        // flags, width, precision
        while let Some(&n) = chars.peek() {
            if "+-# 0123456789.".contains(n) {
                chars.next();
            } else {
                break;
            }
        }
        match chars.next() {
            Some('%') | None => {}
            Some(v) => out.push(v),
        }
    }
    out
}

/// What is statically known of a value's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Str,
    Int,
    /// A number that may not be an integer.
    Num,
    /// Boolean, null, array, set, object.
    Other,
    Unknown,
}

/// Builtins that always return a string (when they return).
pub(super) const STRING_BUILTINS: [&str; 18] = [
    "sprintf",
    "concat",
    "lower",
    "upper",
    "trim",
    "trim_space",
    "trim_left",
    "trim_right",
    "trim_prefix",
    "trim_suffix",
    "replace",
    "substring",
    "format_int",
    "json.marshal",
    "base64.encode",
    "urlquery.encode",
    "strings.replace_n",
    "type_name",
];

/// Types of the local variables of one body, from `x := <typed>` and from
/// guards (`is_string(x)`, `x == "lit"`).
#[derive(Default)]
pub(super) struct Types {
    pub(super) vars: BTreeMap<String, Ty>,
    /// Locals assigned from `input`.
    pub(super) input_vars: BTreeSet<String>,
}

impl Types {
    pub(super) fn of_query(q: &Query) -> Types {
        let mut t = Types::default();
        for s in &q.stmts {
            let Literal::Expr { expr, .. } = &s.literal else {
                continue;
            };
            match expr.as_ref() {
                Expr::AssignExpr { lhs, rhs, .. } => {
                    if let Some(x) = var_name(lhs) {
                        let ty = t.of(rhs);
                        if ty != Ty::Unknown {
                            t.vars.insert(x.to_string(), ty);
                        } else if t.client_controlled(rhs) {
                            t.input_vars.insert(x.to_string());
                        }
                    }
                }
                // `v in {"a", "b"}`, `v in some_rule`: a member of a set the
                // policy wrote.
                Expr::Membership {
                    key: None,
                    value,
                    collection,
                    ..
                } => {
                    let strings = match collection.as_ref() {
                        Expr::Set { items, .. } | Expr::Array { items, .. } => {
                            items.iter().all(|i| {
                                matches!(i.as_ref(), Expr::String { .. } | Expr::RawString { .. })
                            })
                        }
                        Expr::Var { .. } => true,
                        _ => false,
                    };
                    if strings {
                        t.vars.insert(text(value), Ty::Str);
                    }
                }
                Expr::Call { fcn, params, .. } => {
                    let guard = match call_name(fcn).as_deref() {
                        Some("is_string") => Some(Ty::Str),
                        _ => None,
                    };
                    if let (Some(ty), Some(p)) = (guard, params.first()) {
                        t.vars.insert(text(p), ty);
                    }
                }
                Expr::BoolExpr {
                    op: BoolOp::Eq,
                    lhs,
                    rhs,
                    ..
                } => {
                    for (a, b) in [(lhs, rhs), (rhs, lhs)] {
                        if matches!(b.as_ref(), Expr::String { .. } | Expr::RawString { .. })
                            && !matches!(a.as_ref(), Expr::String { .. } | Expr::RawString { .. })
                        {
                            t.vars.insert(text(a), Ty::Str);
                        }
                    }
                }
                _ => {}
            }
        }
        t
    }

    pub(super) fn client_controlled(&self, e: &Expr) -> bool {
        let t = text(e);
        t.starts_with("input.") || t.starts_with("input[") || self.input_vars.contains(&t)
    }

    pub(super) fn of(&self, e: &Expr) -> Ty {
        match e {
            Expr::String { .. } | Expr::RawString { .. } => Ty::Str,
            Expr::Number { span, .. } => {
                if span.text().contains(['.', 'e', 'E']) {
                    Ty::Num
                } else {
                    Ty::Int
                }
            }
            Expr::Bool { .. }
            | Expr::Null { .. }
            | Expr::Array { .. }
            | Expr::Set { .. }
            | Expr::Object { .. }
            | Expr::ArrayCompr { .. }
            | Expr::SetCompr { .. }
            | Expr::ObjectCompr { .. }
            | Expr::BinExpr { .. }
            | Expr::BoolExpr { .. }
            | Expr::Membership { .. } => Ty::Other,
            Expr::Call { fcn, .. } => match call_name(fcn).as_deref() {
                Some("count") => Ty::Int,
                Some(n) if STRING_BUILTINS.contains(&n) => Ty::Str,
                Some("sum" | "product" | "to_number" | "abs" | "max" | "min") => Ty::Num,
                Some("round" | "ceil" | "floor") => Ty::Int,
                _ => Ty::Unknown,
            },
            _ => self.vars.get(&text(e)).copied().unwrap_or(Ty::Unknown),
        }
    }
}
