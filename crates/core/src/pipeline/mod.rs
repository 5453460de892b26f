//! The request and response paths: what the filter does with a message,
//! expressed as actions the proxy adapter carries out.

/// The request path and the plugin (`Plugin`).
pub mod request;
/// The response path: results, streams, listing.
pub mod response;
