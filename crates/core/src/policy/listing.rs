//! One policy for calls and lists: which rules depend on the call.
//!
//! A list item (a tool of `tools/list`…) is decided as the request that
//! would use it, without arguments (docs/input.md, "Listing"). Its meaning
//! is: **an item is listed when some call of it by this caller could be
//! allowed**. A rule that reads what only a call has (its arguments, its
//! other params, the session, the rate counters) cannot be decided when
//! listing, so it must not hide the item: it decides each call.
//!
//! This module finds those rules statically, in the syntax tree, and
//! rewrites the policy's sources once, at compile time, so that one compiled
//! program serves both calls and lists:
//!
//! - a **call-dependent** definition of `deny` (package `mcp`) gets the
//!   guard `not input.mcp.listing` in each of its bodies: it never fires in
//!   a listing, and nothing changes for a call (`input.mcp.listing` is
//!   undefined then);
//! - so does a call-dependent definition of a helper *set* (`x contains …`)
//!   that is only ever used monotonically (`some v in x`, `v in x`, `x[v]`)
//!   by definitions of `deny` or of other such sets: the set then holds, in
//!   a listing, only what it holds for every call, and rules like
//!   `deny contains msg if some msg in tenant_deny` keep deciding lists with
//!   their call-independent members;
//! - a call-dependent definition of `allow` (package `mcp`) is guarded the
//!   same way, and for each of its bodies that gives `true`, a listing-only
//!   copy is appended at the end of the module: `input.mcp.listing == true`
//!   and the body's literals that neither depend on the call nor share a
//!   variable with one that does (those are assumed satisfiable by some
//!   arguments).
//!
//! Every change is made on the line it belongs to (appended copies after
//! the last line), so line numbers in errors stay those of the original
//! sources. The result over-approximates: a listed item may still be
//! denied when called, never the reverse (for rules this analysis sees).
//! Definitions that mention `input.mcp.listing` are left as written: their
//! author decides.

use super::ast::{for_each_child, Child};
use regorus::unstable::{Expr, Literal, LiteralStmt, Module, Query, Rule, RuleHead};
use regorus::{Engine, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The package whose `allow` and `deny` decide.
const PACKAGE: &str = "data.mcp";

/// The guard inserted into call-dependent bodies.
const GUARD: &str = "not input.mcp.listing";

/// What the transformation did to one rule definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDependent {
    /// The module (name as given).
    pub module: String,
    /// Line of the definition.
    pub line: u32,
    /// `data.<package>.<rule>`
    pub rule: String,
    /// Why it depends on the call: the first call-dependent reference or
    /// rule it uses, as written.
    pub because: String,
    /// For `allow`: a listing-only copy without the call-dependent
    /// conditions was added (else the definition is simply not applied
    /// when listing).
    pub relaxed: bool,
}

/// The policy's sources as compiled, and what was changed.
#[derive(Debug, Clone, Default)]
pub struct Transformed {
    pub modules: Vec<(String, String)>,
    pub rules: Vec<CallDependent>,
}

/// Rewrite `modules` for listing. `None` when nothing needs rewriting, or
/// when the modules do not parse (compiling the originals reports why).
pub fn transform(modules: &[(String, String)]) -> Option<Transformed> {
    let mut engine = Engine::new();
    engine.set_rego_v0(false);
    for (name, source) in modules {
        engine.add_policy(name.clone(), source.clone()).ok()?;
    }
    let parsed = engine.get_modules();
    let mut a = Analysis::default();
    for (index, m) in parsed.iter().enumerate() {
        a.add_module(index, m);
    }
    a.solve();
    let edits = a.edits(parsed);
    if edits.rules.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(modules.len());
    for (index, (name, source)) in modules.iter().enumerate() {
        let mut text = source.clone();
        let mut inserts: Vec<&(usize, String)> = edits
            .inserts
            .iter()
            .filter(|(m, _)| *m == index)
            .map(|(_, i)| i)
            .collect();
        inserts.sort_by_key(|x| std::cmp::Reverse(x.0));
        for (at, what) in inserts {
            if !text.is_char_boundary(*at) || *at > text.len() {
                return None;
            }
            text.insert_str(*at, what);
        }
        for (m, copy) in &edits.appended {
            if *m == index {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(copy);
            }
        }
        out.push((name.clone(), text));
    }
    Some(Transformed {
        modules: out,
        rules: edits.rules,
    })
}

/// Where a reference starts.
#[derive(Debug, Clone, PartialEq)]
enum Root {
    Input,
    Data,
}

/// One rule definition and what it reads.
struct Def {
    module: usize,
    module_name: String,
    key: String,
    rule: regorus::unstable::Ref<Rule>,
    /// It reads a call-dependent part of the input (the first one).
    direct: Option<String>,
    /// It mentions `input.mcp.listing`.
    listing: bool,
    /// Rules it uses: (key, monotone use at the top of a body, as written).
    uses: Vec<(String, bool, String)>,
    /// All its definitions give a set (`contains`).
    is_set: bool,
}

#[derive(Default)]
struct Analysis {
    defs: Vec<Def>,
    /// Every rule key (`data.pkg.name`).
    keys: BTreeSet<String>,
    /// Per module: package key and import aliases.
    scopes: Vec<Scope>,
    splittable: BTreeSet<String>,
    cd: BTreeMap<String, bool>,
}

#[derive(Default, Clone)]
struct Scope {
    package: String,
    /// alias → (root, path components)
    aliases: BTreeMap<String, (Root, Vec<Option<String>>)>,
}

/// What a walk over expressions found.
#[derive(Default)]
struct Found {
    direct: Option<String>,
    listing: bool,
    uses: Vec<(String, bool, String)>,
    vars: BTreeSet<String>,
}

struct Edits {
    inserts: Vec<(usize, (usize, String))>,
    appended: Vec<(usize, String)>,
    rules: Vec<CallDependent>,
}

fn var_name(e: &Expr) -> Option<String> {
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
type Chain<'a> = (String, Vec<Option<String>>, Vec<&'a Expr>);

/// The root variable and the components of a reference chain.
fn chain(e: &Expr) -> Option<Chain<'_>> {
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
fn call_dependent_input(p: &[Option<String>]) -> bool {
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

fn is_listing(p: &[Option<String>]) -> bool {
    matches!(p, [Some(m), Some(l), ..] if m == "mcp" && l == "listing")
}

fn show(root: &str, comps: &[Option<String>]) -> String {
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

impl Analysis {
    fn add_module(&mut self, index: usize, m: &Module) {
        let mut scope = Scope {
            package: format!("data.{}", m.package.refr.span().text().trim()),
            ..Scope::default()
        };
        for imp in &m.imports {
            let Some((root, comps, _)) = chain(imp.refr.as_ref()) else {
                continue;
            };
            let root = match root.as_str() {
                "input" => Root::Input,
                "data" => Root::Data,
                _ => continue,
            };
            let alias = match &imp.r#as {
                Some(a) => a.text().to_string(),
                None => match comps.last() {
                    Some(Some(c)) => c.clone(),
                    Some(None) => continue,
                    None => match root {
                        Root::Input => "input".into(),
                        _ => "data".into(),
                    },
                },
            };
            scope.aliases.insert(alias, (root, comps));
        }
        let module_name = m.package.span.source.file().to_string();
        for rule in &m.policy {
            let (refr, is_set) = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. } => (refr, false),
                    RuleHead::Set { refr, .. } => (refr, true),
                    RuleHead::Func { refr, .. } => (refr, false),
                },
                Rule::Default { refr, .. } => (refr, false),
            };
            let Some((name, _, _)) = chain(refr.as_ref()) else {
                continue;
            };
            let key = format!("{}.{name}", scope.package);
            self.keys.insert(key.clone());
            self.defs.push(Def {
                module: index,
                module_name: module_name.clone(),
                key,
                rule: rule.clone(),
                direct: None,
                listing: false,
                uses: Vec::new(),
                is_set,
            });
        }
        self.scopes.push(scope);
    }

    fn solve(&mut self) {
        // What each definition reads.
        let mut found = Vec::with_capacity(self.defs.len());
        for d in &self.defs {
            let scope = self.scopes.get(d.module).cloned().unwrap_or_default();
            let mut f = Found::default();
            let rule = d.rule.clone();
            match rule.as_ref() {
                Rule::Spec { head, bodies, .. } => {
                    match head {
                        RuleHead::Compr { refr, assign, .. } => {
                            self.walk_head_ref(&scope, refr.as_ref(), &mut f);
                            if let Some(a) = assign {
                                self.walk(&scope, a.value.as_ref(), &mut f);
                            }
                        }
                        RuleHead::Set { refr, key, .. } => {
                            self.walk_head_ref(&scope, refr.as_ref(), &mut f);
                            if let Some(k) = key {
                                self.walk(&scope, k.as_ref(), &mut f);
                            }
                        }
                        RuleHead::Func {
                            refr, args, assign, ..
                        } => {
                            self.walk_head_ref(&scope, refr.as_ref(), &mut f);
                            for a in args {
                                self.walk(&scope, a.as_ref(), &mut f);
                            }
                            if let Some(a) = assign {
                                self.walk(&scope, a.value.as_ref(), &mut f);
                            }
                        }
                    }
                    for b in bodies {
                        if let Some(a) = &b.assign {
                            self.walk(&scope, a.value.as_ref(), &mut f);
                        }
                        self.walk_query(&scope, b.query.as_ref(), true, &mut f);
                    }
                }
                Rule::Default { value, .. } => self.walk(&scope, value.as_ref(), &mut f),
            }
            found.push(f);
        }
        for (d, f) in self.defs.iter_mut().zip(found) {
            d.direct = f.direct;
            d.listing = f.listing;
            d.uses = f.uses;
        }
        let deny = format!("{PACKAGE}.deny");

        // Sets that may be split definition by definition: every
        // definition is `contains`, and every use is monotone, by `deny` or
        // by another such set (greatest fixpoint).
        let outputs: BTreeSet<String> = std::iter::once("allow")
            .chain(crate::policy::outputs::OPTIONAL_OUTPUTS)
            .map(|o| format!("{PACKAGE}.{o}"))
            .collect();
        let mut cand: BTreeSet<String> = self
            .keys
            .iter()
            .filter(|k| {
                **k != deny
                    && !outputs.contains(*k)
                    && self.defs.iter().filter(|d| d.key == **k).all(|d| d.is_set)
            })
            .cloned()
            .collect();
        loop {
            let mut drop: BTreeSet<String> = BTreeSet::new();
            for d in &self.defs {
                if is_test(&d.key) {
                    continue;
                }
                for (k, mono, _) in &d.uses {
                    if cand.contains(k) && !(*mono && (d.key == deny || cand.contains(&d.key))) {
                        drop.insert(k.clone());
                    }
                }
            }
            if drop.is_empty() {
                break;
            }
            cand.retain(|k| !drop.contains(k));
        }
        self.splittable = cand;

        // Call-dependent rules (least fixpoint).
        let mut cd: BTreeMap<String, bool> = self.keys.iter().map(|k| (k.clone(), false)).collect();
        loop {
            let mut changed = false;
            for d in &self.defs {
                if cd.get(&d.key).copied().unwrap_or(false) || self.splittable.contains(&d.key) {
                    continue;
                }
                if Self::def_cd(d, &cd).is_some() {
                    cd.insert(d.key.clone(), true);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.cd = cd;
    }

    /// Why a definition depends on the call, if it does.
    fn def_cd(d: &Def, cd: &BTreeMap<String, bool>) -> Option<String> {
        if d.listing {
            return None;
        }
        if let Some(r) = &d.direct {
            return Some(r.clone());
        }
        d.uses
            .iter()
            .find(|(k, _, _)| cd.get(k).copied().unwrap_or(false))
            .map(|(_, _, shown)| shown.clone())
    }

    /// A rule head's reference: only its brackets' contents are read.
    fn walk_head_ref(&self, scope: &Scope, e: &Expr, f: &mut Found) {
        if let Some((_, _, indexes)) = chain(e) {
            for i in indexes {
                self.walk(scope, i, f);
            }
        }
    }

    fn walk_query(&self, scope: &Scope, q: &Query, top: bool, f: &mut Found) {
        for s in &q.stmts {
            self.walk_stmt(scope, s, top, f);
        }
    }

    fn walk_stmt(&self, scope: &Scope, s: &LiteralStmt, top: bool, f: &mut Found) {
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
    fn existence_test(&self, scope: &Scope, e: &Expr) -> bool {
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
    fn walk_mono(&self, scope: &Scope, e: &Expr, top: bool, f: &mut Found) {
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
    fn resolve_rule(
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
    fn absolute(
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
    fn reference(&self, scope: &Scope, root: &str, comps: &[Option<String>], f: &mut Found) {
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

    fn walk(&self, scope: &Scope, e: &Expr, f: &mut Found) {
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
    fn stmt_found(&self, scope: &Scope, s: &LiteralStmt) -> Found {
        let mut f = Found::default();
        self.walk_stmt(scope, s, false, &mut f);
        f
    }

    fn edits(&self, parsed: &[regorus::unstable::Ref<Module>]) -> Edits {
        let deny = format!("{PACKAGE}.deny");
        let allow = format!("{PACKAGE}.allow");
        let mut e = Edits {
            inserts: Vec::new(),
            appended: Vec::new(),
            rules: Vec::new(),
        };
        for d in &self.defs {
            let is_allow = d.key == allow;
            if !(d.key == deny || is_allow || self.splittable.contains(&d.key)) {
                continue;
            }
            let Some(because) = Self::def_cd(d, &self.cd) else {
                continue;
            };
            let Rule::Spec { span, head, bodies } = d.rule.as_ref() else {
                continue;
            };
            let Some(source) = parsed.get(d.module).map(|m| m.package.span.source.clone()) else {
                continue;
            };
            let text = source.contents();
            if bodies.is_empty() {
                // A head without a body: `deny contains input.x`.
                let (_, end) = widen(text, span.start as usize, span.end as usize);
                e.inserts.push((d.module, (end, format!(" if {GUARD}"))));
            }
            for b in bodies {
                let Some(first) = b.query.stmts.first() else {
                    // `else := v` without a query: guarded by the bodies
                    // before it, which all fail in a listing.
                    continue;
                };
                let Some(last) = b.query.stmts.last() else {
                    continue;
                };
                let (start, _) = widen(text, first.span.start as usize, first.span.end as usize);
                let (_, end) = widen(text, last.span.start as usize, last.span.end as usize);
                let braced = text
                    .get(b.span.start as usize..start)
                    .is_some_and(ends_with_open_brace);
                if braced {
                    e.inserts.push((d.module, (start, format!("{GUARD}; "))));
                } else {
                    e.inserts.push((d.module, (start, format!("{{{GUARD}; "))));
                    e.inserts.push((d.module, (end, " }".to_string())));
                }
            }
            let mut relaxed = false;
            if is_allow {
                let scope = self.scopes.get(d.module).cloned().unwrap_or_default();
                let head_text = match head {
                    RuleHead::Compr { span, assign, .. } => match assign {
                        None => Some("allow".to_string()),
                        Some(a)
                            if matches!(
                                a.value.as_ref(),
                                Expr::Bool {
                                    value: Value::Bool(true),
                                    ..
                                }
                            ) =>
                        {
                            Some(span.text().to_string())
                        }
                        Some(a)
                            if matches!(
                                a.value.as_ref(),
                                Expr::Bool {
                                    value: Value::Bool(false),
                                    ..
                                }
                            ) =>
                        {
                            None
                        }
                        // A computed value: assumed possibly true.
                        Some(_) => Some("allow".to_string()),
                    },
                    _ => None,
                };
                for b in bodies {
                    let gives_true = if b.is_else {
                        match &b.assign {
                            None => true,
                            Some(a) => !matches!(
                                a.value.as_ref(),
                                Expr::Bool {
                                    value: Value::Bool(false),
                                    ..
                                }
                            ),
                        }
                    } else {
                        head_text.is_some()
                    };
                    if !gives_true {
                        continue;
                    }
                    let head = match (&head_text, b.is_else) {
                        (Some(h), false) => h.clone(),
                        _ => "allow".to_string(),
                    };
                    let kept = self.kept_literals(&scope, text, b.query.as_ref());
                    // Literals end with `;`: a kept literal starting with
                    // `-` or `+` would otherwise continue the one before
                    // it across the newline (Rego's grammar, OPA's too).
                    let mut copy = format!("\n{head} if {{\n\tinput.mcp.listing == true");
                    for k in kept {
                        copy.push_str(";\n\t");
                        copy.push_str(k);
                    }
                    copy.push_str("\n}\n");
                    e.appended.push((d.module, copy));
                    relaxed = true;
                }
            }
            e.rules.push(CallDependent {
                module: d.module_name.clone(),
                line: span.line,
                rule: d.key.clone(),
                because,
                relaxed,
            });
        }
        e
    }

    /// The literals of a body kept in a listing-only copy: those that do
    /// not depend on the call, carry no `with`, and share no variable with
    /// a literal that is dropped.
    fn kept_literals<'a>(&self, scope: &Scope, text: &'a str, q: &Query) -> Vec<&'a str> {
        let found: Vec<Found> = q.stmts.iter().map(|s| self.stmt_found(scope, s)).collect();
        let mut dropped: Vec<bool> = q
            .stmts
            .iter()
            .zip(&found)
            .map(|(s, f)| !s.with_mods.is_empty() || Self::found_cd(f, &self.cd))
            .collect();
        loop {
            let tainted: BTreeSet<&String> = found
                .iter()
                .zip(&dropped)
                .filter(|(_, d)| **d)
                .flat_map(|(f, _)| f.vars.iter())
                .collect();
            let more: Vec<bool> = found
                .iter()
                .zip(&dropped)
                .map(|(f, d)| *d || f.vars.iter().any(|v| tainted.contains(v)))
                .collect();
            let changed = more != dropped;
            dropped = more;
            if !changed {
                break;
            }
        }
        q.stmts
            .iter()
            .zip(&dropped)
            .filter(|(_, d)| !**d)
            .filter_map(|(s, _)| {
                let (start, end) = widen(text, s.span.start as usize, s.span.end as usize);
                text.get(start..end)
            })
            .collect()
    }

    fn found_cd(f: &Found, cd: &BTreeMap<String, bool>) -> bool {
        f.direct.is_some()
            || f.uses
                .iter()
                .any(|(k, _, _)| cd.get(k).copied().unwrap_or(false))
    }
}

/// Whether the last character of `s` outside strings and comments is `{`
/// (the text between `if` and a body's first statement).
fn ends_with_open_brace(s: &str) -> bool {
    let mut last = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                last = Some('"');
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '`' {
                        break;
                    }
                }
                last = Some('`');
            }
            c if c.is_whitespace() => {}
            c => last = Some(c),
        }
    }
    last == Some('{')
}

/// A statement's byte range in `text`. regorus' spans of string tokens
/// leave out their quotes, so a statement that starts or ends with a string
/// is widened by the quote (no statement otherwise touches a quote). Also
/// used by the negation rewrite (`negation.rs`).
pub(crate) fn widen(text: &str, start: usize, end: usize) -> (usize, usize) {
    let quote = |i: usize| matches!(text.as_bytes().get(i), Some(b'"' | b'`'));
    let start = if start > 0 && quote(start - 1) {
        start - 1
    } else {
        start
    };
    let end = if quote(end) { end + 1 } else { end };
    (start, end)
}

fn is_test(key: &str) -> bool {
    key.rsplit('.')
        .next()
        .is_some_and(|n| n.starts_with("test_"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::engine::Policy;

    fn one(src: &str) -> Vec<(String, String)> {
        vec![("p.rego".to_string(), src.to_string())]
    }

    /// (rule, line, relaxed) of every changed definition.
    fn changed(modules: &[(String, String)]) -> Vec<(String, u32, bool)> {
        transform(modules)
            .map(|t| {
                t.rules
                    .into_iter()
                    .map(|r| {
                        (
                            r.rule.trim_start_matches("data.").to_string(),
                            r.line,
                            r.relaxed,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lines(src: &str) -> Vec<u32> {
        changed(&one(src)).into_iter().map(|(_, l, _)| l).collect()
    }

    const HEAD: &str = "package mcp\nimport rego.v1\n";

    #[test]
    fn direct_argument_references_and_negation() {
        let src = format!(
            "{HEAD}deny contains \"a\" if {{\n\tinput.mcp.tool.name == \"read_file\"\n\tnot startswith(input.mcp.tool.arguments.path, \"/w/\")\n}}\n\
             deny contains \"b\" if input.mcp.tool.name == \"x\"\n\
             deny contains \"c\" if input.mcp.params.arguments.x == 1\n\
             deny contains \"d\" if input.mcp.params.name == \"x\"\n\
             deny contains \"e\" if input.mcp.prompt.arguments.x\n\
             deny contains \"f\" if input.session.calls[_].allowed == false\n\
             deny contains \"g\" if input.rate.identity.window > 3\n\
             deny contains \"h\" if input.mcp.tool.definition.annotations.destructiveHint\n\
             deny contains \"i\" if input.identity.claims.role == \"x\"\n"
        );
        assert_eq!(lines(&src), [3, 8, 10, 11, 12]);
        let t = transform(&one(&src)).unwrap();
        let out = &t.modules[0].1;
        assert_eq!(out.lines().count(), src.lines().count());
        assert!(
            out.contains("deny contains \"a\" if {\n\tnot input.mcp.listing; input.mcp.tool.name")
        );
        assert!(out.contains("deny contains \"b\" if input.mcp.tool.name == \"x\"\n"));
        assert!(out.contains(
            "deny contains \"c\" if {not input.mcp.listing; input.mcp.params.arguments.x == 1 }\n"
        ));
        assert!(out.contains("deny contains \"b\" if input.mcp.tool.name == \"x\"\n"));
        assert_eq!(t.rules[0].because, "input.mcp.tool.arguments.path");
    }

    #[test]
    fn input_read_whole_is_call_dependent() {
        let src = format!(
            "{HEAD}deny contains \"a\" if object.get(input, \"x\", 1) == 2\n\
             deny contains \"b\" if object.get(input.mcp, \"tool\", {{}}).arguments.x\n\
             deny contains \"c\" if input.mcp.tool[k] == 1\n\
             deny contains \"d\" if {{ some k; input[k] == 1 }}\n\
             deny contains \"e\" if input.mcp.tool.name == \"x\"\n\
             deny contains \"f\" if input.mcp.resource == {{}}\n\
             deny contains \"g\" if {{ not input.mcp; input.http.method == \"GET\" }}\n\
             deny contains \"h\" if {{ input.mcp.tool; not input.mcp.params }}\n\
             deny contains \"i\" if not input.mcp.tool.arguments\n\
             deny contains \"j\" if input.mcp == {{}}\n"
        );
        // An existence test of the objects that hold call-dependent parts
        // is not call-dependent (they exist for the listing and the call).
        assert_eq!(lines(&src), [3, 4, 5, 6, 11, 12]);
    }

    #[test]
    fn helper_rules_functions_and_imports() {
        let src = format!(
            "{HEAD}import input.mcp.tool.arguments as args\nimport data.lib\n\
             bad_path if not startswith(input.mcp.tool.arguments.path, \"/w/\")\n\
             bad_via_alias if args.x == 1\n\
             ok_path(p) if startswith(p, \"/w/\")\n\
             reads_args(k) := input.mcp.tool.arguments[k]\n\
             named(n) if input.mcp.tool.name == n\n\
             deny contains \"a\" if bad_path\n\
             deny contains \"b\" if bad_via_alias\n\
             deny contains \"c\" if reads_args(\"x\") == 1\n\
             deny contains \"d\" if named(\"x\")\n\
             deny contains \"e\" if not ok_path(\"/etc\")\n\
             deny contains \"f\" if lib.far\n\
             deny contains \"g\" if data.lib.near\n\
             deny contains \"h\" if data.mcp.bad_path\n"
        );
        let lib = "package lib\nimport rego.v1\nfar if helper\nhelper if input.mcp.tool.arguments.x\nnear if input.identity.subject == \"a\"\n";
        let modules = vec![
            ("p.rego".to_string(), src),
            ("lib.rego".to_string(), lib.to_string()),
        ];
        let got: Vec<u32> = changed(&modules).into_iter().map(|(_, l, _)| l).collect();
        assert_eq!(got, [10, 11, 12, 15, 17]);
    }

    #[test]
    fn variables_every_some_in_and_else_chains() {
        let src = format!(
            "{HEAD}deny contains msg if {{\n\tp := input.mcp.tool.arguments.path\n\tmsg := p\n}}\n\
             deny contains \"e\" if every v in input.mcp.tool.arguments {{ is_string(v) }}\n\
             deny contains k if some k, _ in input.mcp.tool.arguments\n\
             kind := \"a\" if {{ input.mcp.tool.arguments.x }} else := \"b\"\n\
             deny contains \"k\" if kind == \"b\"\n\
             plain := \"a\" if {{ input.mcp.tool.name == \"x\" }} else := \"b\"\n\
             deny contains \"p\" if plain == \"b\"\n\
             deny contains \"q\" if every v in [1] {{ v == input.mcp.params.x }}\n"
        );
        assert_eq!(lines(&src), [3, 7, 8, 10, 13]);
    }

    #[test]
    fn rules_mentioning_listing_are_left_alone() {
        let src = format!(
            "{HEAD}deny contains \"a\" if {{ not input.mcp.listing; not input.mcp.tool.arguments.ok }}\n\
             deny contains \"b\" if {{ input.mcp.listing; not input.mcp.tool.arguments.ok }}\n\
             deny contains \"c\" if not input.mcp.tool.arguments.ok\n"
        );
        assert_eq!(lines(&src), [5]);
    }

    #[test]
    fn sets_used_monotonically_are_split_by_definition() {
        let src = format!(
            "{HEAD}t_deny contains \"owner\" if input.identity.claims.tenant != \"a\"\n\
             t_deny contains \"arg\" if input.mcp.tool.arguments.tenant != \"a\"\n\
             t_more contains m if some m in t_deny\n\
             deny contains m if some m in t_more\n\
             u contains \"x\" if input.mcp.tool.arguments.y\n\
             u contains \"z\" if input.identity.subject == \"s\"\n\
             deny contains \"u\" if count(u) > 1\n\
             v contains \"x\" if input.mcp.tool.arguments.y\n\
             deny contains m if v[m]\n\
             allow if \"w\" in w\n\
             w contains \"w\" if input.mcp.tool.arguments.y\n"
        );
        // t_deny and v are split (their argument definition is guarded);
        // u is used by count, so `deny` using it is guarded whole; w is
        // used by `allow`, which gets a copy instead.
        let got = changed(&one(&src));
        let names: Vec<(&str, u32)> = got.iter().map(|(r, l, _)| (r.as_str(), *l)).collect();
        assert_eq!(
            names,
            [
                ("mcp.t_deny", 4),
                ("mcp.deny", 9),
                ("mcp.v", 10),
                ("mcp.allow", 12)
            ]
        );
        let t = transform(&one(&src)).unwrap();
        assert!(t.modules[0]
            .1
            .contains("t_deny contains \"arg\" if {not input.mcp.listing; "));
    }

    #[test]
    fn a_kept_literal_starting_with_minus_stays_its_own_literal() {
        // `-2 in roles` after a newline would continue `true` before it
        // (`true - 2 in roles`) were the copy's literals not ended by `;`.
        let src = format!(
            "{HEAD}allow if {{\n\t-2 in input.identity.claims.roles\n\tinput.mcp.tool.arguments.x == 1\n}}\n"
        );
        let mut p = crate::policy::engine::Policy::compile(
            &one(&src),
            None,
            crate::policy::engine::DEFAULT_MAX_INSTRUCTIONS,
        )
        .unwrap();
        assert!(p.listing_fallback().is_none());
        let input =
            serde_json::json!({"mcp": {"listing": true}, "identity": {"claims": {"roles": [-2]}}});
        let r = p
            .evaluate(crate::policy::engine::json_to_value(&input).unwrap())
            .unwrap();
        assert!(r.allow);
    }

    #[test]
    fn allow_gets_a_listing_copy_without_call_conditions() {
        let src = format!(
            "{HEAD}default allow := false\n\
             allow if {{\n\tinput.identity.claims.role == \"reader\"\n\tp := input.mcp.tool.arguments.path\n\tstartswith(p, \"/w/\")\n\tinput.mcp.tool.name == \"read_file\"\n}}\n\
             allow := true if input.identity.claims.role == \"admin\"\n\
             allow := false if input.mcp.tool.arguments.force\n"
        );
        let got = changed(&one(&src));
        assert_eq!(
            got,
            [
                ("mcp.allow".to_string(), 4, true),
                ("mcp.allow".to_string(), 11, false)
            ]
        );
        let t = transform(&one(&src)).unwrap();
        let out = &t.modules[0].1;
        assert!(out.ends_with(
            "\nallow if {\n\tinput.mcp.listing == true;\n\tinput.identity.claims.role == \"reader\";\n\tinput.mcp.tool.name == \"read_file\"\n}\n"
        ), "{out}");
        assert!(out.contains(
            "allow := false if {not input.mcp.listing; input.mcp.tool.arguments.force }"
        ));
    }

    #[test]
    fn allow_copies_compile_next_to_their_originals() {
        let src = "package mcp\nimport rego.v1\ndefault allow := false\n\
            allow := true if { input.identity.subject == \"a\"; input.mcp.tool.arguments.x }\n\
            allow := true if input.identity.subject == \"b\"\n";
        let mut p = Policy::compile(&one(src), None, 100_000).unwrap();
        assert_eq!(p.listing_fallback(), None);
        let mut l = listing("r");
        l["identity"]["subject"] = "a".into();
        assert!(permits(&mut p, l));
    }

    #[test]
    fn allow_else_chains() {
        let src = "package mcp\nimport rego.v1\n\
            allow := false if { input.mcp.tool.arguments.x == 1 } else := true if { input.identity.subject == \"s\" }\n";
        let mut p = Policy::compile(&one(src), None, 100_000).unwrap();
        assert_eq!(p.listing_fallback(), None);
        let mut l = listing("r");
        assert!(!permits(&mut p, l.clone()));
        l["identity"]["subject"] = "s".into();
        assert!(permits(&mut p, l));
        let mut c = call("r", "/a");
        c["identity"]["subject"] = "s".into();
        assert!(permits(&mut p, c.clone()));
        c["mcp"]["tool"]["arguments"]["x"] = 1.into();
        assert!(!permits(&mut p, c));
    }

    /// The issue's policy, evaluated as the filter does.
    const ISSUE: &str = "package mcp\nimport rego.v1\n\
        default allow := false\n\
        allow if input.identity.claims.role in {\"reader\", \"admin\"}\n\
        deny contains \"files must be under /workspace\" if {\n\
        \tinput.mcp.tool.name == \"read_file\"\n\
        \tnot startswith(input.mcp.tool.arguments.path, \"/workspace/\")\n\
        }\n";

    fn permits(p: &mut Policy, input: serde_json::Value) -> bool {
        let v = Value::from_json_str(&input.to_string()).unwrap();
        p.evaluate(v).unwrap().permits()
    }

    fn listing(role: &str) -> serde_json::Value {
        serde_json::json!({
            "identity": {"claims": {"role": role}},
            "mcp": {"listing": true, "kind": "request", "direction": "client_to_server",
                    "method": "tools/call", "list_method": "tools/list",
                    "tool": {"name": "read_file", "definition": {"name": "read_file"}},
                    "params": {"name": "read_file"}}
        })
    }

    fn call(role: &str, path: &str) -> serde_json::Value {
        serde_json::json!({
            "identity": {"claims": {"role": role}},
            "mcp": {"kind": "request", "direction": "client_to_server", "method": "tools/call",
                    "tool": {"name": "read_file", "arguments": {"path": path}},
                    "params": {"name": "read_file", "arguments": {"path": path}}}
        })
    }

    #[test]
    fn the_issue_policy_lists_what_the_caller_may_call() {
        let mut p = Policy::compile(&one(ISSUE), None, 100_000).unwrap();
        assert!(p.listing_fallback().is_none());
        assert!(permits(&mut p, listing("reader")));
        assert!(!permits(&mut p, listing("guest")));
        assert!(permits(&mut p, call("reader", "/workspace/a")));
        assert!(!permits(&mut p, call("reader", "/etc/passwd")));
        assert!(!permits(&mut p, call("guest", "/workspace/a")));
        let rules = p.call_dependent_rules();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            (rules[0].rule.as_str(), rules[0].line),
            ("data.mcp.deny", 5)
        );
        // The revision is that of the sources as written.
        let untouched = Policy::compile(&one("package mcp\nallow := true\n"), None, 1000).unwrap();
        assert_ne!(p.revision(), untouched.revision());
        assert_eq!(
            p.revision(),
            Policy::compile(&one(ISSUE), None, 1000).unwrap().revision()
        );
    }

    #[test]
    fn an_allow_that_reads_arguments_still_lists_for_its_role() {
        let src = "package mcp\nimport rego.v1\ndefault allow := false\n\
            allow if {\n\tinput.identity.claims.role == \"reader\"\n\tstartswith(input.mcp.tool.arguments.path, \"/workspace/\")\n}\n";
        let mut p = Policy::compile(&one(src), None, 100_000).unwrap();
        assert!(permits(&mut p, listing("reader")));
        assert!(!permits(&mut p, listing("guest")));
        assert!(permits(&mut p, call("reader", "/workspace/a")));
        assert!(!permits(&mut p, call("reader", "/etc/passwd")));
    }

    #[test]
    fn errors_keep_their_lines() {
        // A runtime error in a guarded rule is reported at its own line.
        let src = "package mcp\nimport rego.v1\ndefault allow := true\n\
            deny contains \"x\" if {\n\tinput.mcp.tool.arguments.n / 0 == 1\n}\n";
        let p = Policy::compile(&one(src), None, 100_000).unwrap();
        assert_eq!(p.call_dependent_rules().len(), 1);
        let bad = "package mcp\nimport rego.v1\ndeny contains \"x\" if {\n\tinput.mcp.tool.arguments.x\n\tnot_a_function(1)\n}\n";
        let e = Policy::compile(&one(bad), None, 100_000).unwrap_err();
        assert!(
            e.to_string().contains(":5:") || e.to_string().contains("p.rego"),
            "{e}"
        );
    }

    #[test]
    fn bodies_starting_or_ending_with_strings_compile() {
        let src = "package mcp\nimport rego.v1\ndefault allow := true\n\
            deny contains \"q\" if \"x\" == input.mcp.tool.arguments.y\n\
            deny contains \"r\" if input.mcp.tool.arguments.y == `x`\n\
            deny contains input.mcp.tool.arguments.z\n\
            deny contains \"s\" if { \"x\" == input.mcp.tool.arguments.y; input.mcp.params.w == \"v\" }\n";
        let mut p = Policy::compile(&one(src), None, 100_000).unwrap();
        assert_eq!(p.listing_fallback(), None);
        assert_eq!(p.call_dependent_rules().len(), 4);
        assert!(permits(&mut p, listing("reader")));
        let mut c = call("reader", "/a");
        c["mcp"]["tool"]["arguments"]["y"] = "x".into();
        let v = Value::from_json_str(&c.to_string()).unwrap();
        assert_eq!(p.evaluate(v).unwrap().deny, ["q", "r"]);
    }

    #[test]
    fn comments_and_strings_before_a_body() {
        let src = "package mcp\nimport rego.v1\ndefault allow := true\n\
            deny contains \"a{\" if { # why {\n\tinput.mcp.tool.arguments.x\n\tinput.mcp.tool.name == \"n\"\n}\n\
            deny contains \"b\" if # not a brace {\n\tinput.mcp.tool.arguments.y\n";
        let t = transform(&one(src)).unwrap();
        assert!(t.modules[0]
            .1
            .contains("# why {\n\tnot input.mcp.listing; input.mcp.tool.arguments.x"));
        assert!(t.modules[0]
            .1
            .contains("{\n\t{not input.mcp.listing; input.mcp.tool.arguments.y }"));
        let p = Policy::compile(&one(src), None, 100_000).unwrap();
        assert_eq!(p.listing_fallback(), None);
        assert_eq!(p.call_dependent_rules().len(), 2);
    }

    #[test]
    fn nothing_to_change_means_no_rewrite() {
        assert!(transform(&one("package mcp\nallow := true\n")).is_none());
        assert!(transform(&one("package mcp\nallow := \n")).is_none());
    }
}
