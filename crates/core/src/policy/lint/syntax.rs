//! Small readings of the syntax tree the lint's checks share.

use crate::policy::ast::{for_each_child, for_each_literal_child, Child};
use regorus::unstable::{Expr, Literal, Module, Query};
use regorus::Value;

pub(super) fn module_name(m: &Module) -> &str {
    m.package.span.source.file()
}

/// `sprintf`, `object.get`: the dotted name of a called function.
pub(super) fn call_name(fcn: &Expr) -> Option<String> {
    match fcn {
        Expr::Var {
            value: Value::String(s),
            ..
        } => Some(s.to_string()),
        Expr::RefDot { refr, field, .. } => {
            let base = call_name(refr)?;
            match &field.1 {
                Value::String(f) => Some(format!("{base}.{f}")),
                _ => None,
            }
        }
        _ => None,
    }
}

pub(super) fn var_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Var {
            value: Value::String(s),
            ..
        } => Some(s.as_ref()),
        _ => None,
    }
}

/// Every sub-expression of `e` (itself included), comprehension terms and
/// queries included when `into_compr`.
pub(super) fn walk_expr<'a>(e: &'a Expr, into_compr: bool, f: &mut dyn FnMut(&'a Expr)) {
    f(e);
    for_each_child(e, |c| match c {
        Child::Value(x) | Child::Callee(x) => walk_expr(x, into_compr, f),
        Child::Term(x) if into_compr => walk_expr(x, into_compr, f),
        Child::Body(q) if into_compr => walk_query(q, f),
        Child::Term(_) | Child::Body(_) => {}
    });
}

/// Every expression of every statement of `q` (nested queries included).
pub(super) fn walk_query<'a>(q: &'a Query, f: &mut dyn FnMut(&'a Expr)) {
    for s in &q.stmts {
        walk_literal(&s.literal, true, f);
        for w in &s.with_mods {
            walk_expr(&w.refr, true, f);
            walk_expr(&w.r#as, true, f);
        }
    }
}

pub(super) fn walk_literal<'a>(l: &'a Literal, into_compr: bool, f: &mut dyn FnMut(&'a Expr)) {
    for_each_literal_child(l, |c| match c {
        Child::Body(q) if into_compr => walk_query(q, f),
        Child::Body(_) => {}
        Child::Value(x) | Child::Callee(x) | Child::Term(x) => walk_expr(x, into_compr, f),
    });
}

/// Whether `e` can be undefined: anything but literals and comprehensions
/// built from them (a reference, a call, a variable that may be a rule).
pub(super) fn may_be_undefined(e: &Expr) -> bool {
    match e {
        Expr::String { .. }
        | Expr::RawString { .. }
        | Expr::Number { .. }
        | Expr::Bool { .. }
        | Expr::Null { .. }
        | Expr::ArrayCompr { .. }
        | Expr::SetCompr { .. }
        | Expr::ObjectCompr { .. } => false,
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            items.iter().any(|i| may_be_undefined(i))
        }
        Expr::Object { fields, .. } => fields
            .iter()
            .any(|(_, k, v)| may_be_undefined(k) || may_be_undefined(v)),
        Expr::Var { .. } => false,
        _ => true,
    }
}

/// The source text of an expression, shortened for messages.
pub(super) fn text(e: &Expr) -> String {
    let t = e.span().text();
    let t: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().count() > 60 {
        format!("{}…", t.chars().take(57).collect::<String>())
    } else {
        t
    }
}
