//! regorus' syntax tree, shared by the analyses and rewrites of policy/
//! (lint, negation, listing) and the engine:
//!
//! - [`Parsed`]: modules parsed once, in an engine the next step reads or
//!   compiles without parsing the same text again;
//! - one walk: the direct children of an expression or a literal, named by
//!   the part they play, in source order. Each analysis recurses through
//!   [`for_each_child`] and handles the few expression kinds it reads
//!   itself; which children exist is written once, here.

use regorus::unstable::{Expr, Literal, Module, Query, Ref, Rule, RuleHead};
use regorus::{Engine, Value};

/// Modules parsed as the engine compiles them (Rego v1), in the order
/// given. Cloning shares the syntax trees.
#[derive(Clone)]
pub struct Parsed {
    engine: Engine,
    modules: Vec<Ref<Module>>,
    packages: Vec<String>,
}

/// A module that does not parse: its name, and regorus' message (with the
/// `--> file:line:col` location in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub module: String,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

impl Parsed {
    /// Parse `modules` (name, Rego source); the first that does not parse
    /// is the error.
    pub fn parse(modules: &[(String, String)]) -> Result<Parsed, ParseError> {
        let mut engine = Engine::new();
        // Rego v1 (OPA 1.x) syntax is the default for new engines; say so.
        engine.set_rego_v0(false);
        let mut packages = Vec::with_capacity(modules.len());
        for (name, source) in modules {
            let package = engine
                .add_policy(name.clone(), source.clone())
                .map_err(|e| ParseError {
                    module: name.clone(),
                    message: e.to_string(),
                })?;
            packages.push(package);
        }
        let modules = engine.get_modules().clone();
        Ok(Parsed {
            engine,
            modules,
            packages,
        })
    }

    /// The syntax trees, in the order given.
    pub fn modules(&self) -> &[Ref<Module>] {
        &self.modules
    }

    /// Each module's package, as regorus names it (`data.mcp`).
    pub fn packages(&self) -> &[String] {
        &self.packages
    }

    /// The engine holding the modules, to add more and compile.
    pub fn into_engine(self) -> Engine {
        self.engine
    }
}

/// A direct child of an expression or a literal.
#[derive(Clone, Copy)]
pub enum Child<'a> {
    /// An operand, evaluated as a value where it is written.
    Value(&'a Expr),
    /// The function a call names (a rule or a builtin; not a variable).
    Callee(&'a Expr),
    /// A comprehension's term (or key and value), evaluated after its body.
    Term(&'a Expr),
    /// A comprehension's or an `every`'s body: a query of its own.
    Body(&'a Query),
}

/// Call `f` on each direct child of `e`, in source order: a call's function
/// then its arguments; a comprehension's term(s) then its body; a
/// reference's base then its index; a membership's key, value, collection.
/// Scalars and variables have none.
pub fn for_each_child<'a>(e: &'a Expr, mut f: impl FnMut(Child<'a>)) {
    use Child::{Body, Callee, Term, Value as V};
    match e {
        Expr::String { .. }
        | Expr::RawString { .. }
        | Expr::Number { .. }
        | Expr::Bool { .. }
        | Expr::Null { .. }
        | Expr::Var { .. } => {}
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            items.iter().for_each(|i| f(V(i)));
        }
        Expr::Object { fields, .. } => {
            for (_, k, v) in fields {
                f(V(k));
                f(V(v));
            }
        }
        Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
            f(Term(term));
            f(Body(query));
        }
        Expr::ObjectCompr {
            key, value, query, ..
        } => {
            f(Term(key));
            f(Term(value));
            f(Body(query));
        }
        Expr::Call { fcn, params, .. } => {
            f(Callee(fcn));
            params.iter().for_each(|p| f(V(p)));
        }
        Expr::UnaryExpr { expr, .. } => f(V(expr)),
        Expr::RefDot { refr, .. } => f(V(refr)),
        Expr::RefBrack { refr, index, .. } => {
            f(V(refr));
            f(V(index));
        }
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => {
            f(V(lhs));
            f(V(rhs));
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                f(V(k));
            }
            f(V(value));
            f(V(collection));
        }
    }
}

/// Call `f` on each direct child of a literal: the expression of `e` and
/// `not e`, the key, value and collection of `some … in`, the domain and
/// body of `every` (its key and value are names, not expressions). `some x`
/// has none.
pub fn for_each_literal_child<'a>(l: &'a Literal, mut f: impl FnMut(Child<'a>)) {
    match l {
        Literal::SomeVars { .. } => {}
        Literal::SomeIn {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                f(Child::Value(k));
            }
            f(Child::Value(value));
            f(Child::Value(collection));
        }
        Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => f(Child::Value(expr)),
        Literal::Every { domain, query, .. } => {
            f(Child::Value(domain));
            f(Child::Body(query));
        }
    }
}

/// The reference a rule's head defines (`r`, `r[k]`, `a.b.c`, `f`).
pub fn head_ref(rule: &Rule) -> &Expr {
    match rule {
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => refr,
        },
        Rule::Default { refr, .. } => refr,
    }
}

/// The expressions of a rule head a body's variables reach: the reference,
/// then the value (`:= v`) or the set member (`contains m`).
pub fn head_exprs(head: &RuleHead) -> Vec<&Expr> {
    let (refr, extra) = match head {
        RuleHead::Compr { refr, assign, .. } | RuleHead::Func { refr, assign, .. } => {
            (refr, assign.as_ref().map(|a| a.value.as_ref()))
        }
        RuleHead::Set { refr, key, .. } => (refr, key.as_deref()),
    };
    let mut v: Vec<&Expr> = vec![refr];
    v.extend(extra);
    v
}

/// The variable a reference starts from (`r` of `r.a[k]`), when it is one.
pub fn root_var(e: &Expr) -> Option<&str> {
    let mut cur = e;
    while let Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } = cur {
        cur = refr;
    }
    match cur {
        Expr::Var {
            value: Value::String(s),
            ..
        } => Some(s.as_ref()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn parse(src: &str) -> regorus::Engine {
        let mut e = regorus::Engine::new();
        e.set_rego_v0(false);
        e.add_policy("t.rego".into(), src.into()).expect("parses");
        e
    }

    /// Every sub-expression's text, depth first, through [`for_each_child`].
    fn texts(e: &Expr, out: &mut Vec<String>) {
        out.push(e.span().text().to_string());
        for_each_child(e, |c| match c {
            Child::Value(x) | Child::Callee(x) | Child::Term(x) => texts(x, out),
            Child::Body(q) => {
                for s in &q.stmts {
                    for_each_literal_child(&s.literal, |c| {
                        if let Child::Value(x) = c {
                            texts(x, out)
                        }
                    });
                }
            }
        });
    }

    #[test]
    fn children_come_in_source_order() {
        let mut e = parse("package p\nr := [f(a, b.c[d]) | x in {\"k\": y}; not z]\n");
        let m = e.get_modules().first().cloned().expect("module");
        let Some(rule) = m.policy.first() else {
            panic!("a rule")
        };
        let Rule::Spec { head, .. } = rule.as_ref() else {
            panic!("spec")
        };
        assert_eq!(root_var(head_ref(rule)), Some("r"));
        let value = head_exprs(head).last().copied().expect("value");
        let mut out = Vec::new();
        texts(value, &mut out);
        assert_eq!(
            out,
            [
                "[f(a, b.c[d]) | x in {\"k\": y}; not z]",
                "f(a, b.c[d])",
                "f",
                "a",
                "b.c[d]",
                "b.c",
                "b",
                "d",
                "x in {\"k\": y}",
                "x",
                "{\"k\": y}",
                "k",
                "y",
                "z",
            ]
        );
    }
}
