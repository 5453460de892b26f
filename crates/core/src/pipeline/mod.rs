//! The request and response paths: what the filter does with a message,
//! expressed as actions the proxy adapter carries out.
//!
//! ```text
//! plugin.rs   the Plugin (configuration, policy, ids, clock) and evaluate
//! actions.rs  the vocabulary both paths share (actions, watches, Decided)
//! replies.rs  every reply and error body the filter writes itself
//! subject.rs  the pipeline's reading of method names
//! memo.rs     the listing memo (held by the Plugin, used by listing)
//! error.rs    the pipeline's errors
//! request/    headers → body → message | batch (+ session, rewrite, watch)
//! response/   start → feed → stream → message → listing
//! ```
//!
//! Imports go one way: `request/` and `response/` use the shared files
//! above and never each other; `replies` uses `actions` and `subject`;
//! `plugin` uses `actions` and `memo`.

/// The vocabulary both paths share.
pub mod actions;
/// The pipeline's errors.
pub mod error;
/// The listing memo.
pub mod memo;
/// The plugin: configuration, compiled policy, evaluation.
pub mod plugin;
/// Replies and error bodies.
pub mod replies;
/// The request path.
pub mod request;
/// The response path: results, streams, listing.
pub mod response;
/// Method names, as the pipeline reads them.
pub(crate) mod subject;

pub use plugin::Plugin;
