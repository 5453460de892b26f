//! The rewrite: where the listing guard goes in each call-dependent
//! definition, and the listing-only copies of `allow` bodies.

use super::analysis::{found_cd, Analysis};
use super::reads::PACKAGE;
use super::reads::{Found, Reader, Scope};
use super::text::{ends_with_open_brace, widen};
use regorus::unstable::{Expr, Module, Query, Rule, RuleHead};
use regorus::Value;
use std::collections::BTreeSet;

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

pub(super) struct Edits {
    pub(super) inserts: Vec<(usize, (usize, String))>,
    pub(super) appended: Vec<(usize, String)>,
    pub(super) rules: Vec<CallDependent>,
}

impl Analysis {
    pub(super) fn edits(&self, parsed: &[regorus::unstable::Ref<Module>]) -> Edits {
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
    pub(super) fn kept_literals<'a>(
        &self,
        scope: &Scope,
        text: &'a str,
        q: &Query,
    ) -> Vec<&'a str> {
        let found: Vec<Found> = q
            .stmts
            .iter()
            .map(|s| Reader { keys: &self.keys }.stmt_found(scope, s))
            .collect();
        let mut dropped: Vec<bool> = q
            .stmts
            .iter()
            .zip(&found)
            .map(|(s, f)| !s.with_mods.is_empty() || found_cd(f, &self.cd))
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
}
