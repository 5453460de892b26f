//! mcp-policy: the proxy-wasm module. The only crate that touches the
//! proxy-wasm ABI; every decision is made by the host-independent core
//! (`mcp-policy-core`), which this adapter feeds with the request's headers,
//! body and attributes and whose actions it carries out
//! (docs/architecture.md).
//!
//! The contexts are written against a host trait, so they also build
//! natively and are tested there against a mock host that records every
//! call (`cargo test -p mcp-policy`).
//!
//! No panics: a panic traps the VM and Envoy then fails every request on
//! that worker. Outside tests, unwrap/expect/panic and unchecked indexing
//! are compile errors (`[workspace.lints]`, `make lint`).
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

/// The root and HTTP contexts, the host they call, and (on wasm32) the
/// module's entry points.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod proxy;
