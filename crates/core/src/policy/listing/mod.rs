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

mod analysis;
mod edits;
mod reads;
mod text;

pub(crate) use text::widen;

use super::ast::Parsed;
use analysis::Analysis;
pub use edits::CallDependent;
use regorus::unstable::{Module, Ref};

/// The policy's sources as compiled, and what was changed.
#[derive(Debug, Clone, Default)]
pub struct Transformed {
    pub modules: Vec<(String, String)>,
    pub rules: Vec<CallDependent>,
}

/// Rewrite `modules` for listing. `None` when nothing needs rewriting, or
/// when the modules do not parse (compiling the originals reports why).
pub fn transform(modules: &[(String, String)]) -> Option<Transformed> {
    let parsed = Parsed::parse(modules).ok()?;
    transform_parsed(modules, parsed.modules())
}

/// [`transform`] on modules already parsed (`parsed` is the parse of
/// `modules`, in the same order).
pub(crate) fn transform_parsed(
    modules: &[(String, String)],
    parsed: &[Ref<Module>],
) -> Option<Transformed> {
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

#[cfg(test)]
mod tests;
