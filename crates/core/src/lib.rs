//! mcp-policy-core: decide every Model Context Protocol message crossing a
//! proxy with Rego policies, independent of any host.
//!
//! The folders follow the data path (docs/architecture.md):
//!
//! - [`mcp`]: the wire model: JSON-RPC messages, the HTTP request's
//!   attributes, session and routing headers, SSE framing, rewrites, and
//!   the interned object keys every layer reads values with;
//! - [`policy`]: the policy `input`, the engine (compile, evaluate, read a
//!   decision), the listing transform, Rego tests and the input lint;
//! - [`config`]: plugin settings, limits and policy bundles;
//! - [`state`]: the session store and resumed streams;
//! - [`catalog`]: what is known about tools (facts, pins, poisoning);
//! - [`detect`]: detectors run on tool results;
//! - [`pipeline`]: the request and response paths, as actions the proxy
//!   adapter (the `mcp-policy` crate) carries out;
//! - [`observe`]: audit events, metrics and the recorder;
//! - [`host`]: the host's capabilities (store, clock, recorder) as traits;
//! - [`replay`]: recorded messages and sessions decided offline (the CLI
//!   and the browser playground).
//!
//! No panics in the data path: a panic traps the VM and Envoy then fails
//! every request on that worker. Outside tests, unwrap/expect/panic and
//! unchecked indexing are compile errors (`[workspace.lints]`, `make lint`).
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

/// Human approval bound to the exact call (docs/approval.md).
pub mod approval;
pub mod catalog;
pub mod config;
pub mod detect;
/// Entry points of the fuzz targets and the corpus regression test.
pub mod fuzzing;
/// The host's capabilities: store, clock, recorder.
pub mod host;
pub mod mcp;
pub mod observe;
pub mod pipeline;
pub mod policy;
pub mod replay;
pub mod state;
