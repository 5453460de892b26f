//! References to `input` paths that the filter never provides (lint code
//! `input-path`).
//!
//! [`INPUT`] is the documented input (docs/input.md) as a tree. A test keeps
//! the two in step. The policy's syntax tree is walked for every reference
//! rooted at `input` (or at an `import input…` alias), and each reference's
//! constant part (`input.mcp.tool.name`, `input.http.headers["x-a"]`) is
//! looked up in the tree. A reference below an open-ended field (`params`,
//! `tool.arguments`, `http.headers`, `identity.claims`…) is always fine; a
//! variable index (`input.mcp[k]`) ends the check for that reference.
//!
//! What this does not see: paths built at run time (`object.get(input,
//! ["mcp", k], …)`, `input[x]`) and references through a local variable
//! (`m := input.mcp; m.tol`).

mod tree;

pub use tree::{documented_paths, Node, INPUT};

use super::syntax::call_name;
use crate::policy::ast::{for_each_child, for_each_literal_child, Child};
use regorus::unstable::{Expr, Module, Query, Rule, RuleHead};
use regorus::Value;
use tree::{step, LOWER_CASE_KEYS};
use Node::{Each, Leaf, Obj, Open};

/// One questionable reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Module name as compiled (the caller maps it to a path).
    pub module: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
    /// `did you mean …?`, when a documented name is close.
    pub suggestion: Option<String>,
}

/// One segment of a reference: a constant key, or a run-time index.
enum Seg {
    Key(String),
    Dynamic,
}

/// A segment and where it is written (line, column).
type Located = (Seg, (u32, u32));

/// Check every module's references to `input`.
pub fn check_modules(modules: &[regorus::unstable::Ref<Module>]) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in modules {
        // `import input.mcp.tool` makes `tool` mean `input.mcp.tool`;
        // `import input.mcp as m` makes `m` mean it.
        let mut aliases: Vec<(String, Vec<String>)> = vec![("input".into(), Vec::new())];
        for imp in &m.imports {
            let Some((root, segs)) = chain(&imp.refr) else {
                continue;
            };
            if root != "input" {
                continue;
            }
            let keys: Option<Vec<String>> = segs
                .into_iter()
                .map(|(s, _)| match s {
                    Seg::Key(k) => Some(k),
                    Seg::Dynamic => None,
                })
                .collect();
            let Some(keys) = keys else { continue };
            let alias = match &imp.r#as {
                Some(span) => span.text().to_string(),
                None => keys.last().cloned().unwrap_or_else(|| "input".into()),
            };
            aliases.push((alias, keys));
        }
        let mut w = Walker {
            aliases: &aliases,
            module: m.package.span.source.file().clone(),
            out: &mut out,
        };
        for rule in &m.policy {
            w.rule(rule);
        }
    }
    out
}

struct Walker<'a> {
    aliases: &'a [(String, Vec<String>)],
    module: String,
    out: &'a mut Vec<Finding>,
}

impl Walker<'_> {
    fn rule(&mut self, rule: &Rule) {
        match rule {
            Rule::Spec { head, bodies, .. } => {
                match head {
                    RuleHead::Compr { refr, assign, .. } => {
                        self.expr(refr);
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                    RuleHead::Set { refr, key, .. } => {
                        self.expr(refr);
                        if let Some(k) = key {
                            self.expr(k);
                        }
                    }
                    RuleHead::Func { args, assign, .. } => {
                        for a in args {
                            self.expr(a);
                        }
                        if let Some(a) = assign {
                            self.expr(&a.value);
                        }
                    }
                }
                for b in bodies {
                    if let Some(a) = &b.assign {
                        self.expr(&a.value);
                    }
                    self.query(&b.query);
                }
            }
            Rule::Default { value, .. } => self.expr(value),
        }
    }

    fn query(&mut self, q: &Query) {
        for s in &q.stmts {
            for_each_literal_child(&s.literal, |c| match c {
                Child::Value(x) | Child::Callee(x) | Child::Term(x) => self.expr(x),
                Child::Body(q) => self.query(q),
            });
            for w in &s.with_mods {
                self.expr(&w.refr);
                self.expr(&w.r#as);
            }
        }
    }

    fn expr(&mut self, e: &Expr) {
        match e {
            Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                if let Some((root, segs)) = chain(e) {
                    self.reference(&root, &segs);
                }
                // Walk what the chain does not cover: run-time indexes, and a
                // root that is not a variable (`f(x).y`).
                let mut cur = e;
                loop {
                    match cur {
                        Expr::RefDot { refr, .. } => cur = refr,
                        Expr::RefBrack { refr, index, .. } => {
                            self.expr(index);
                            cur = refr;
                        }
                        Expr::Var { .. } => break,
                        other => {
                            self.expr(other);
                            break;
                        }
                    }
                }
            }
            Expr::Call { fcn, params, .. } => {
                // `object.get(input.mcp.tool, "nmae", d)`: the path the
                // constant key leads to.
                if call_name(fcn).as_deref() == Some("object.get") {
                    if let (Some(obj), Some(key)) = (params.first(), params.get(1)) {
                        if let Some((root, mut segs)) = chain(obj) {
                            let sp = key.span();
                            let at = (sp.line, sp.col);
                            let keys: Option<Vec<String>> = match key.as_ref() {
                                Expr::String {
                                    value: Value::String(s),
                                    ..
                                }
                                | Expr::RawString {
                                    value: Value::String(s),
                                    ..
                                } => Some(vec![s.to_string()]),
                                Expr::Array { items, .. } => items
                                    .iter()
                                    .map(|i| match i.as_ref() {
                                        Expr::String {
                                            value: Value::String(s),
                                            ..
                                        }
                                        | Expr::RawString {
                                            value: Value::String(s),
                                            ..
                                        } => Some(s.to_string()),
                                        _ => None,
                                    })
                                    .collect(),
                                _ => None,
                            };
                            if let Some(keys) = keys {
                                segs.extend(keys.into_iter().map(|k| (Seg::Key(k), at)));
                                self.reference(&root, &segs);
                            }
                        }
                    }
                }
                self.children(e);
            }
            _ => self.children(e),
        }
    }

    /// Every operand and comprehension of `e` (a call's function is a
    /// name, not an input reference).
    fn children(&mut self, e: &Expr) {
        for_each_child(e, |c| match c {
            Child::Value(x) | Child::Term(x) => self.expr(x),
            Child::Body(q) => self.query(q),
            Child::Callee(_) => {}
        });
    }

    fn reference(&mut self, root: &str, segs: &[Located]) {
        let Some((_, prefix)) = self.aliases.iter().rev().find(|(a, _)| a == root) else {
            return;
        };
        let mut path: Vec<&str> = vec!["input"];
        let mut node = INPUT;
        for key in prefix {
            match step(node, key) {
                Some(n) => node = n,
                None => return, // the import itself is reported where it is used
            }
            path.push(key);
        }
        for (seg, at) in segs {
            let here = show(&path);
            if let Each(element) = node {
                // `calls[i]`, `calls[_]`: the element, whatever the index.
                node = *element;
                path.push("[_]");
                continue;
            }
            let Seg::Key(key) = seg else { return };
            match node {
                Each(_) => return,
                Open => {
                    if LOWER_CASE_KEYS.contains(&here.as_str())
                        && key.chars().any(|c| c.is_ascii_uppercase())
                    {
                        self.report(
                            *at,
                            format!(
                                "{here}[{key:?}] is never set: header names in {here} are lower case; use {:?}",
                                key.to_ascii_lowercase()
                            ),
                        );
                    }
                    return;
                }
                Leaf => {
                    self.report(
                        *at,
                        format!("{here} is a single value in the documented input; it has no member {key:?}"),
                    );
                    return;
                }
                Obj(members) => match members.iter().find(|(k, _)| k == key) {
                    Some((_, n)) => {
                        node = *n;
                        path.push(key);
                    }
                    None => {
                        let hint = suggestion(key, members.iter().map(|(k, _)| *k))
                            .map(|s| format!("did you mean {here}.{s}?"));
                        self.report_with(
                            *at,
                            format!("{here}.{key} is not in the documented input (docs/input.md)"),
                            hint,
                        );
                        return;
                    }
                },
            }
        }
    }

    fn report(&mut self, at: (u32, u32), message: String) {
        self.report_with(at, message, None);
    }

    fn report_with(
        &mut self,
        (line, col): (u32, u32),
        message: String,
        suggestion: Option<String>,
    ) {
        self.out.push(Finding {
            module: self.module.clone(),
            line,
            col,
            message,
            suggestion,
        });
    }
}

/// `input.session.calls[_].tool`.
fn show(path: &[&str]) -> String {
    let mut s = String::new();
    for p in path {
        if !s.is_empty() && !p.starts_with('[') {
            s.push('.');
        }
        s.push_str(p);
    }
    s
}

/// The variable a reference starts from and its segments, outermost last.
fn chain(e: &Expr) -> Option<(String, Vec<Located>)> {
    let mut segs = Vec::new();
    let mut cur = e;
    loop {
        match cur {
            Expr::RefDot { refr, field, .. } => {
                let seg = match &field.1 {
                    Value::String(s) => Seg::Key(s.to_string()),
                    _ => Seg::Key(field.0.text().to_string()),
                };
                segs.push((seg, (field.0.line, field.0.col)));
                cur = refr;
            }
            Expr::RefBrack { refr, index, .. } => {
                let seg = match index.as_ref() {
                    Expr::String {
                        value: Value::String(s),
                        ..
                    }
                    | Expr::RawString {
                        value: Value::String(s),
                        ..
                    } => Seg::Key(s.to_string()),
                    _ => Seg::Dynamic,
                };
                let sp = index.span();
                segs.push((seg, (sp.line, sp.col)));
                cur = refr;
            }
            Expr::Var {
                value: Value::String(s),
                ..
            } => {
                segs.reverse();
                return Some((s.to_string(), segs));
            }
            _ => return None,
        }
    }
}

/// The closest member name, if it is close enough to be a typo.
fn suggestion<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(key, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    let at = |i: usize, j: usize| i * w + j;
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            let v = if i == 0 || j == 0 {
                i + j
            } else {
                let (ca, cb) = (a.get(i - 1), b.get(j - 1));
                let cost = usize::from(ca != cb);
                let get = |k: usize| d.get(k).copied().unwrap_or(usize::MAX - 1);
                let mut v = (get(at(i - 1, j)) + 1)
                    .min(get(at(i, j - 1)) + 1)
                    .min(get(at(i - 1, j - 1)) + cost);
                if i > 1 && j > 1 && ca == b.get(j - 2) && a.get(i - 2) == cb {
                    v = v.min(get(at(i - 2, j - 2)) + 1);
                }
                v
            };
            if let Some(slot) = d.get_mut(at(i, j)) {
                *slot = v;
            }
        }
    }
    d.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests;
