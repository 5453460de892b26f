//! Policy bundles: Rego modules and data in OPA's bundle layout (a gzipped
//! tar), unpacked within bounds and compiled into a `Policy` (`unpack.rs`);
//! the last good bundle kept for VMs that start later (`kept.rs`); and the
//! host-independent half of polling a bundle source (`poll.rs`,
//! [`Poller`]). Unpacking knows nothing of polling; the poller loads what
//! it downloads through [`load`].
//!
//! Layout (docs/bundles.md), as OPA reads it:
//! - `*.rego` anywhere: policy modules, named by their path in the bundle
//!   (`*_test.rego` files are skipped: run them with `mcp-policy test`);
//! - `data.json` anywhere: a JSON object, merged into `data` under its
//!   directory's path (`a/b/data.json` becomes `data.a.b`);
//! - `.manifest` at the top: `{"revision": "...", "roots": ["..."]}`; every
//!   package and data path must lie under one of the roots (default: all);
//! - `data.yaml`/`data.yml`, `patch.json` (delta bundles) and `*.wasm`
//!   are refused (a bundle is never half-read); `.signatures.json` and any
//!   other file are ignored (signatures are not verified).
//!
//! Every problem names the file inside the bundle (and the line and column
//! for JSON data and Rego).

/// The last good bundle as kept in shared data.
mod kept;
/// Polling a bundle source: when, what to send, what an answer means.
mod poll;
/// A bundle source as the filter drives it: logs, counters, keeping.
pub mod source;
/// Unpacking and compiling a bundle within its limits.
mod unpack;

pub use kept::{decode_kept, encode_kept, kept_key};
pub use poll::{Outcome, PollError, Poller};
pub use unpack::{load, unpack, unpack_with_tests, Bundle, BundleError};

#[cfg(test)]
pub(crate) mod tests;
