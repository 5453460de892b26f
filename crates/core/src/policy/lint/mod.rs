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

pub mod input;

use crate::policy::ast::{
    for_each_child, for_each_literal_child, head_exprs, head_ref, root_var, Child,
};
use regorus::unstable::{BoolOp, Expr, Literal, Module, Query, Ref, Rule, RuleHead};
use regorus::Value;
use std::collections::{BTreeMap, BTreeSet};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The policy decides differently from OPA: refuse it at configuration time.
    Error,
    /// Probably a mistake: report it.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding, located in a module (name as given to [`lint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub module: String,
    pub line: u32,
    pub column: u32,
    pub severity: Severity,
    /// Stable identifier (`input-path`, `sprintf-verb`, …).
    pub code: &'static str,
    pub message: String,
    /// A suggested rewrite, when there is one.
    pub suggestion: Option<String>,
}

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

fn module_name(m: &Module) -> &str {
    m.package.span.source.file()
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

/// `sprintf`, `object.get`: the dotted name of a called function.
pub(crate) fn call_name(fcn: &Expr) -> Option<String> {
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

fn var_name(e: &Expr) -> Option<&str> {
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
fn walk_expr<'a>(e: &'a Expr, into_compr: bool, f: &mut dyn FnMut(&'a Expr)) {
    f(e);
    for_each_child(e, |c| match c {
        Child::Value(x) | Child::Callee(x) => walk_expr(x, into_compr, f),
        Child::Term(x) if into_compr => walk_expr(x, into_compr, f),
        Child::Body(q) if into_compr => walk_query(q, f),
        Child::Term(_) | Child::Body(_) => {}
    });
}

/// Every expression of every statement of `q` (nested queries included).
fn walk_query<'a>(q: &'a Query, f: &mut dyn FnMut(&'a Expr)) {
    for s in &q.stmts {
        walk_literal(&s.literal, true, f);
        for w in &s.with_mods {
            walk_expr(&w.refr, true, f);
            walk_expr(&w.r#as, true, f);
        }
    }
}

fn walk_literal<'a>(l: &'a Literal, into_compr: bool, f: &mut dyn FnMut(&'a Expr)) {
    for_each_literal_child(l, |c| match c {
        Child::Body(q) if into_compr => walk_query(q, f),
        Child::Body(_) => {}
        Child::Value(x) | Child::Callee(x) | Child::Term(x) => walk_expr(x, into_compr, f),
    });
}

/// Whether `e` can be undefined: anything but literals and comprehensions
/// built from them (a reference, a call, a variable that may be a rule).
fn may_be_undefined(e: &Expr) -> bool {
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
fn text(e: &Expr) -> String {
    let t = e.span().text();
    let t: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().count() > 60 {
        format!("{}…", t.chars().take(57).collect::<String>())
    } else {
        t
    }
}

/// Per-rule analyses.
struct Cx<'a> {
    module: String,
    out: &'a mut Vec<Finding>,
}

/// Every rule name (first segment of the head) of `modules`.
fn rule_names(modules: &[Ref<Module>], functions: bool) -> BTreeSet<String> {
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

impl Cx<'_> {
    fn push(
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

    fn rule(&mut self, rule: &Rule) {
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
    fn query(&mut self, q: &Query, types: &Types) {
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
    fn sprintf_in(&mut self, e: &Expr, types: &Types) {
        walk_expr(e, false, &mut |x| {
            if let Expr::Call { fcn, params, .. } = x {
                if call_name(fcn).as_deref() == Some("sprintf") {
                    self.sprintf(x, params, types);
                }
            }
        });
    }

    fn sprintf(&mut self, call: &Expr, params: &[Ref<Expr>], types: &Types) {
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

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The verbs of a Go-style format (`%%` is not one), in order.
fn verbs(fmt: &str) -> Vec<char> {
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
enum Ty {
    Str,
    Int,
    /// A number that may not be an integer.
    Num,
    /// Boolean, null, array, set, object.
    Other,
    Unknown,
}

/// Builtins that always return a string (when they return).
const STRING_BUILTINS: [&str; 18] = [
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
struct Types {
    vars: BTreeMap<String, Ty>,
    /// Locals assigned from `input`.
    input_vars: BTreeSet<String>,
}

impl Types {
    fn of_query(q: &Query) -> Types {
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

    fn client_controlled(&self, e: &Expr) -> bool {
        let t = text(e);
        t.starts_with("input.") || t.starts_with("input[") || self.input_vars.contains(&t)
    }

    fn of(&self, e: &Expr) -> Ty {
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

/// `rule-conflict`: complete rules defined more than once with values that
/// differ, whose bodies are not visibly exclusive.
fn conflicts(modules: &[Ref<Module>], out: &mut Vec<Finding>) {
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

fn has_var(e: &Expr) -> bool {
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
struct Facts {
    equal: BTreeMap<String, String>,
    /// `is_string(x)`…: x's text -> the predicate.
    types: BTreeMap<String, String>,
    holds: BTreeSet<String>,
    negated: BTreeSet<String>,
}

impl Facts {
    fn of(q: &Query) -> Facts {
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
    fn excludes(&self, other: &Facts) -> bool {
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
fn definition_order(modules: &[Ref<Module>], out: &mut Vec<Finding>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str) -> Vec<String> {
        lint(&[(
            "p.rego".into(),
            format!("package mcp\nimport rego.v1\n{src}"),
        )])
        .into_iter()
        // `input.x` and the like are not documented: only the object.get
        // test looks at input paths.
        .filter(|f| f.code != "input-path" || src.contains("nmae"))
        .map(|f| format!("{}:{} {} {}", f.line, f.column, f.severity.as_str(), f.code))
        .collect()
    }

    #[test]
    fn sprintf_argument_count_and_verbs() {
        let f = run(r#"deny contains sprintf("%v and %v", ["a"]) if true
deny contains sprintf("100%% %v", ["a"]) if true
deny contains sprintf("%d", ["seven"]) if true
deny contains sprintf("%d", [count(input.mcp.params)]) if true
deny contains sprintf("%q", [input.mcp.tool.name]) if true
deny contains sprintf("%q", [input.mcp.tool.name]) if is_string(input.mcp.tool.name)
deny contains sprintf("%v", [input.mcp.tool.name]) if true
deny contains msg if { n := input.mcp.tool.arguments.n; msg := sprintf("%d", [n]) }
f(x) := sprintf("%q", [x])
"#);
        assert_eq!(
            f,
            [
                "3:22 warning sprintf-args",
                "5:31 warning sprintf-verb",
                "7:44 warning sprintf-verb",
                "10:79 warning sprintf-verb",
            ],
            "{f:?}"
        );
    }

    #[test]
    fn conflicting_definitions() {
        let f = run(r#"a := 1 if input.x
a := 2 if input.y
b := 1 if input.m == "x"
b := 2 if input.m == "y"
c := 1 if input.x
c := 1 if input.y
d := 1 if input.x
d := 2 if not input.x
e := input.a if input.x
e := input.b if input.y
default g := false
g := true if input.x
"#);
        assert_eq!(
            f,
            ["4:1 warning rule-conflict", "12:1 warning rule-conflict"],
            "{f:?}"
        );
    }

    #[test]
    fn definition_order_in_a_later_module() {
        let a = "package mcp\nimport rego.v1\nallow if true\n".to_string();
        let b = "package mcp\nimport rego.v1\nr if c\nr if f(1)\nc := input.x\nf(x) if x == 1\n"
            .to_string();
        let got = |mods: &[(String, String)]| -> Vec<String> {
            lint(mods)
                .into_iter()
                .filter(|f| f.code != "input-path")
                .map(|f| format!("{} {}:{} {}", f.module, f.line, f.column, f.code))
                .collect()
        };
        assert_eq!(
            got(&[("a.rego".into(), a.clone()), ("b.rego".into(), b.clone())]),
            ["b.rego 3:6 definition-order"]
        );
        // The first module of the package is not affected.
        assert!(got(&[("b.rego".into(), b), ("a.rego".into(), a)]).is_empty());
    }

    #[test]
    fn input_paths_are_not_checked_in_tests() {
        let f = lint(&[
            (
                "p.rego".into(),
                "package mcp\nimport rego.v1\nallow if input.mcp.tool.nmae == \"x\"\n".into(),
            ),
            (
                "p_test.rego".into(),
                "package t\nimport rego.v1\ntest_x if data.mcp.allow with input.mcp.tool.nmae as \"x\"\n"
                    .into(),
            ),
        ]);
        assert_eq!(f.len(), 1, "{f:?}");
        let f = &f[0];
        assert_eq!((f.module.as_str(), f.line, f.column), ("p.rego", 3, 25));
        assert_eq!(f.code, "input-path");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(
            f.suggestion.as_deref(),
            Some("did you mean input.mcp.tool.name?")
        );
    }

    #[test]
    fn object_get_keys_are_checked() {
        let f = run("allow if object.get(input.mcp.tool, \"nmae\", \"\") == \"x\"\nallow if object.get(input.mcp, [\"tool\", \"name\"], \"\") == \"x\"\n");
        assert_eq!(f, ["3:38 warning input-path"], "{f:?}");
    }
}
