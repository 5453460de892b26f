//! The wire model: what a message and the request carrying it are.

/// The HTTP request's attributes the policy may read (identity, source,
/// connection, route) and which of them a policy needs.
pub mod attributes;
/// JSON-RPC 2.0 / MCP messages: parse, classify, structure checks.
pub mod jsonrpc;
/// Interned object keys for reading and building policy values.
pub mod keys;
/// The MCP method vocabulary: method names, subjects, filtered lists.
pub mod methods;
/// Rewriting a message's body (policy-directed edits).
pub mod rewrite;
/// Session and routing headers, and the upstream they name.
pub mod routing;
/// Server-Sent Events framing.
pub mod sse;
