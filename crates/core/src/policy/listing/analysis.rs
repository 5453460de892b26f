//! The analysis: every rule definition of the policy, what it reads, which
//! helper sets may be split definition by definition, and which rules
//! depend on the call (fixpoints over the definitions).

use super::reads::{chain, Found, Reader, Root, Scope, PACKAGE};
use regorus::unstable::{Module, Rule, RuleHead};
use std::collections::{BTreeMap, BTreeSet};

/// One rule definition and what it reads.
pub(super) struct Def {
    pub(super) module: usize,
    pub(super) module_name: String,
    pub(super) key: String,
    pub(super) rule: regorus::unstable::Ref<Rule>,
    /// It reads a call-dependent part of the input (the first one).
    pub(super) direct: Option<String>,
    /// It mentions `input.mcp.listing`.
    pub(super) listing: bool,
    /// Rules it uses: (key, monotone use at the top of a body, as written).
    pub(super) uses: Vec<(String, bool, String)>,
    /// All its definitions give a set (`contains`).
    pub(super) is_set: bool,
}

#[derive(Default)]
pub(super) struct Analysis {
    pub(super) defs: Vec<Def>,
    /// Every rule key (`data.pkg.name`).
    pub(super) keys: BTreeSet<String>,
    /// Per module: package key and import aliases.
    pub(super) scopes: Vec<Scope>,
    pub(super) splittable: BTreeSet<String>,
    pub(super) cd: BTreeMap<String, bool>,
}

impl Analysis {
    pub(super) fn add_module(&mut self, index: usize, m: &Module) {
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

    pub(super) fn solve(&mut self) {
        // What each definition reads.
        let r = Reader { keys: &self.keys };
        let mut found = Vec::with_capacity(self.defs.len());
        for d in &self.defs {
            let scope = self.scopes.get(d.module).cloned().unwrap_or_default();
            let mut f = Found::default();
            let rule = d.rule.clone();
            match rule.as_ref() {
                Rule::Spec { head, bodies, .. } => {
                    match head {
                        RuleHead::Compr { refr, assign, .. } => {
                            r.walk_head_ref(&scope, refr.as_ref(), &mut f);
                            if let Some(a) = assign {
                                r.walk(&scope, a.value.as_ref(), &mut f);
                            }
                        }
                        RuleHead::Set { refr, key, .. } => {
                            r.walk_head_ref(&scope, refr.as_ref(), &mut f);
                            if let Some(k) = key {
                                r.walk(&scope, k.as_ref(), &mut f);
                            }
                        }
                        RuleHead::Func {
                            refr, args, assign, ..
                        } => {
                            r.walk_head_ref(&scope, refr.as_ref(), &mut f);
                            for a in args {
                                r.walk(&scope, a.as_ref(), &mut f);
                            }
                            if let Some(a) = assign {
                                r.walk(&scope, a.value.as_ref(), &mut f);
                            }
                        }
                    }
                    for b in bodies {
                        if let Some(a) = &b.assign {
                            r.walk(&scope, a.value.as_ref(), &mut f);
                        }
                        r.walk_query(&scope, b.query.as_ref(), true, &mut f);
                    }
                }
                Rule::Default { value, .. } => r.walk(&scope, value.as_ref(), &mut f),
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
    pub(super) fn def_cd(d: &Def, cd: &BTreeMap<String, bool>) -> Option<String> {
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
}

/// Whether what a statement reads depends on the call.
pub(super) fn found_cd(f: &Found, cd: &BTreeMap<String, bool>) -> bool {
    f.direct.is_some()
        || f.uses
            .iter()
            .any(|(k, _, _)| cd.get(k).copied().unwrap_or(false))
}

pub(super) fn is_test(key: &str) -> bool {
    key.rsplit('.')
        .next()
        .is_some_and(|n| n.starts_with("test_"))
}
