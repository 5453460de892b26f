//! What a rule definition reads: references into `input` that only a call
//! has, the rules it uses (and whether monotonically, at the top of a
//! body), and the variables it binds, with import aliases and package-local
//! rule names resolved.

use crate::policy::ast::{for_each_child, Child};
use regorus::unstable::{Expr, Literal, LiteralStmt, Query};
use regorus::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The package whose `allow` and `deny` decide.
pub(super) const PACKAGE: &str = "data.mcp";

/// Where a reference starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Root {
    Input,
    Data,
}

#[derive(Default, Clone)]
pub(super) struct Scope {
    pub(super) package: String,
    /// alias → (root, path components)
    pub(super) aliases: BTreeMap<String, (Root, Vec<Option<String>>)>,
}

/// What a walk over expressions found.
#[derive(Default)]
pub(super) struct Found {
    pub(super) direct: Option<String>,
    pub(super) listing: bool,
    pub(super) uses: Vec<(String, bool, String)>,
    pub(super) vars: BTreeSet<String>,
}

pub(super) fn var_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Var {
            value: Value::String(s),
            ..
        } => Some(s.to_string()),
        _ => None,
    }
}

/// A reference chain: its root variable, its components (`None` for an
/// index computed at run time), and its index expressions.
pub(super) type Chain<'a> = (String, Vec<Option<String>>, Vec<&'a Expr>);

/// The root variable and the components of a reference chain.
pub(super) fn chain(e: &Expr) -> Option<Chain<'_>> {
    let mut comps: Vec<Option<String>> = Vec::new();
    let mut indexes: Vec<&Expr> = Vec::new();
    let mut cur = e;
    loop {
        match cur {
            Expr::Var { .. } => {
                let root = var_name(cur)?;
                comps.reverse();
                return Some((root, comps, indexes));
            }
            Expr::RefDot { refr, field, .. } => {
                comps.push(match &field.1 {
                    Value::String(s) => Some(s.to_string()),
                    _ => None,
                });
                cur = refr.as_ref();
            }
            Expr::RefBrack { refr, index, .. } => {
                comps.push(match index.as_ref() {
                    Expr::String {
                        value: Value::String(s),
                        ..
                    }
                    | Expr::RawString {
                        value: Value::String(s),
                        ..
                    } => Some(s.to_string()),
                    _ => None,
                });
                indexes.push(index.as_ref());
                cur = refr.as_ref();
            }
            _ => return None,
        }
    }
}

/// Whether a path into `input` (components after `input`) is given only
/// for a call, never when listing: arguments, the other params, the
/// message's id, client information, routing headers, batch position, the
/// session and the rate counters; or a prefix of those read whole.
pub(super) fn call_dependent_input(p: &[Option<String>]) -> bool {
    let s = |i: usize| p.get(i).map(|c| c.as_deref());
    match s(0) {
        None | Some(None) => true,
        Some(Some("session" | "rate")) => true,
        Some(Some("mcp")) => match s(1) {
            None | Some(None) => true,
            Some(Some("id" | "client" | "capabilities" | "headers" | "batch")) => true,
            Some(Some("params")) => match s(2) {
                None | Some(None) => true,
                Some(Some(k)) => k != "name" && k != "uri",
            },
            Some(Some("tool" | "prompt")) => match s(2) {
                None | Some(None) => true,
                Some(Some(k)) => k == "arguments",
            },
            Some(Some(_)) => false,
        },
        Some(Some(_)) => false,
    }
}

pub(super) fn is_listing(p: &[Option<String>]) -> bool {
    matches!(p, [Some(m), Some(l), ..] if m == "mcp" && l == "listing")
}

pub(super) fn show(root: &str, comps: &[Option<String>]) -> String {
    let mut s = root.to_string();
    for c in comps {
        match c {
            Some(c) => {
                s.push('.');
                s.push_str(c);
            }
            None => s.push_str("[_]"),
        }
    }
    s
}

/// Reads references against the policy's rule keys (`data.pkg.name`).
pub(super) struct Reader<'a> {
    pub(super) keys: &'a BTreeSet<String>,
}

impl Reader<'_> {
    /// A rule head's reference: only its brackets' contents are read.
    pub(super) fn walk_head_ref(&self, scope: &Scope, e: &Expr, f: &mut Found) {
        if let Some((_, _, indexes)) = chain(e) {
            for i in indexes {
                self.walk(scope, i, f);
            }
        }
    }

    pub(super) fn walk_query(&self, scope: &Scope, q: &Query, top: bool, f: &mut Found) {
        for s in &q.stmts {
            self.walk_stmt(scope, s, top, f);
        }
    }

    pub(super) fn walk_stmt(&self, scope: &Scope, s: &LiteralStmt, top: bool, f: &mut Found) {
        // Monotone uses only at the top of a body, without `with`.
        let top = top && s.with_mods.is_empty();
        for w in &s.with_mods {
            self.walk(scope, w.refr.as_ref(), f);
            self.walk(scope, w.r#as.as_ref(), f);
        }
        if let Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } = &s.literal {
            if self.existence_test(scope, expr.as_ref()) {
                return;
            }
        }
        match &s.literal {
            Literal::SomeVars { vars, .. } => {
                for v in vars {
                    f.vars.insert(v.text().to_string());
                }
            }
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    self.walk(scope, k.as_ref(), f);
                }
                self.walk(scope, value.as_ref(), f);
                self.walk_mono(scope, collection.as_ref(), top, f);
            }
            Literal::Expr { expr, .. } => match expr.as_ref() {
                Expr::Membership {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(k) = key {
                        self.walk(scope, k.as_ref(), f);
                    }
                    self.walk(scope, value.as_ref(), f);
                    self.walk_mono(scope, collection.as_ref(), top, f);
                }
                Expr::RefBrack { .. } if top => {
                    let before = f.uses.len();
                    self.walk(scope, expr.as_ref(), f);
                    // `x[v]` as a literal: the use of the set `x` itself.
                    if let Some((root, comps, _)) = chain(expr.as_ref()) {
                        if let Some((k, rest)) = self.resolve_rule(scope, &root, &comps) {
                            if rest >= 1 {
                                for u in f.uses.iter_mut().skip(before) {
                                    if u.0 == k {
                                        u.1 = true;
                                        break;
                                    }
                                }
                            }
                        }
                    }
                }
                _ => self.walk(scope, expr.as_ref(), f),
            },
            Literal::NotExpr { expr, .. } => self.walk(scope, expr.as_ref(), f),
            Literal::Every {
                key,
                value,
                domain,
                query,
                ..
            } => {
                if let Some(k) = key {
                    f.vars.insert(k.text().to_string());
                }
                f.vars.insert(value.text().to_string());
                self.walk(scope, domain.as_ref(), f);
                self.walk_query(scope, query.as_ref(), false, f);
            }
        }
    }

    /// `input.mcp` or `not input.mcp` (likewise `input`, `input.mcp.tool`,
    /// `input.mcp.prompt`, `input.mcp.params`): whether the object exists is
    /// the same for a listing and for the call it stands for.
    pub(super) fn existence_test(&self, scope: &Scope, e: &Expr) -> bool {
        let Some((root, comps, _)) = chain(e) else {
            return false;
        };
        let Some((Root::Input, p)) = self.absolute(scope, &root, &comps) else {
            return false;
        };
        let p: Option<Vec<&str>> = p.iter().map(|c| c.as_deref()).collect();
        matches!(
            p.as_deref(),
            Some([] | ["mcp"] | ["mcp", "tool" | "prompt" | "params"])
        )
    }

    /// The collection of `some v in x` / `v in x`: monotone in `x` when it
    /// is a rule read whole.
    pub(super) fn walk_mono(&self, scope: &Scope, e: &Expr, top: bool, f: &mut Found) {
        let before = f.uses.len();
        self.walk(scope, e, f);
        if !top {
            return;
        }
        if let Some((root, comps, _)) = chain(e) {
            if let Some((k, 0)) = self.resolve_rule(scope, &root, &comps) {
                for u in f.uses.iter_mut().skip(before) {
                    if u.0 == k {
                        u.1 = true;
                        break;
                    }
                }
            }
        }
    }

    /// The rule a reference names, and how many components follow it.
    pub(super) fn resolve_rule(
        &self,
        scope: &Scope,
        root: &str,
        comps: &[Option<String>],
    ) -> Option<(String, usize)> {
        let (root, comps) = self.absolute(scope, root, comps)?;
        if root != Root::Data {
            return None;
        }
        let mut key = String::from("data");
        for (i, c) in comps.iter().enumerate() {
            let c = c.as_ref()?;
            key.push('.');
            key.push_str(c);
            if self.keys.contains(&key) {
                return Some((key, comps.len() - i - 1));
            }
        }
        None
    }

    /// A reference with aliases and package-local rule names resolved:
    /// (input or data, components).
    pub(super) fn absolute(
        &self,
        scope: &Scope,
        root: &str,
        comps: &[Option<String>],
    ) -> Option<(Root, Vec<Option<String>>)> {
        match root {
            "input" => Some((Root::Input, comps.to_vec())),
            "data" => Some((Root::Data, comps.to_vec())),
            _ => {
                if let Some((r, base)) = scope.aliases.get(root) {
                    let mut p = base.clone();
                    p.extend_from_slice(comps);
                    return Some((r.clone(), p));
                }
                let key = format!("{}.{root}", scope.package);
                if self.keys.contains(&key) {
                    let mut p: Vec<Option<String>> = key
                        .split('.')
                        .skip(1)
                        .map(|s| Some(s.to_string()))
                        .collect();
                    p.extend_from_slice(comps);
                    return Some((Root::Data, p));
                }
                None
            }
        }
    }

    /// Record what a reference chain reads.
    pub(super) fn reference(
        &self,
        scope: &Scope,
        root: &str,
        comps: &[Option<String>],
        f: &mut Found,
    ) {
        let shown = show(root, comps);
        let Some((r, p)) = self.absolute(scope, root, comps) else {
            return;
        };
        match r {
            Root::Input => {
                if is_listing(&p) {
                    f.listing = true;
                } else if call_dependent_input(&p) && f.direct.is_none() {
                    f.direct = Some(shown);
                }
            }
            Root::Data => {
                // A rule, or everything under a prefix read whole.
                let mut key = String::from("data");
                let mut whole = true;
                for c in &p {
                    let Some(c) = c else {
                        break;
                    };
                    key.push('.');
                    key.push_str(c);
                    if self.keys.contains(&key) {
                        f.uses.push((key.clone(), false, shown.clone()));
                        whole = false;
                        break;
                    }
                }
                if whole {
                    let prefix = format!("{key}.");
                    for k in self.keys.iter().filter(|k| k.starts_with(&prefix)) {
                        f.uses.push((k.clone(), false, shown.clone()));
                    }
                }
            }
        }
    }

    pub(super) fn walk(&self, scope: &Scope, e: &Expr, f: &mut Found) {
        if let Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. } = e {
            if let Some((root, comps, indexes)) = chain(e) {
                if root != "_" && root != "input" && root != "data" {
                    f.vars.insert(root.clone());
                }
                self.reference(scope, &root, &comps, f);
                for i in indexes {
                    self.walk(scope, i, f);
                }
                return;
            }
        }
        for_each_child(e, |c| match c {
            // The function itself: a rule (user function) or a builtin;
            // not a variable.
            Child::Callee(fcn) => {
                if let Some((root, comps, _)) = chain(fcn) {
                    self.reference(scope, &root, &comps, f);
                }
            }
            Child::Value(x) | Child::Term(x) => self.walk(scope, x, f),
            Child::Body(q) => self.walk_query(scope, q, false, f),
        });
    }

    /// What one statement of a body reads, on its own.
    pub(super) fn stmt_found(&self, scope: &Scope, s: &LiteralStmt) -> Found {
        let mut f = Found::default();
        self.walk_stmt(scope, s, false, &mut f);
        f
    }
}
