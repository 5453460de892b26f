//! mcp-policy: the proxy-wasm module. The only crate that touches the
//! proxy-wasm ABI; every decision is made by the host-independent core
//! (`mcp-policy-core`), which this adapter feeds with the request's headers,
//! body and attributes and whose actions it carries out
//! (docs/architecture.md).
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

/// The root and HTTP contexts (the proxy-wasm ABI exists only on wasm32).
#[cfg(target_arch = "wasm32")]
mod filter;
/// The host calls the adapter makes, on the proxy-wasm ABI directly (no
/// SDK panics); its encodings are plain functions, tested natively.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod host;
/// Stage timing of profiling builds (feature `stage-timing`).
#[cfg(feature = "stage-timing")]
mod profiler;
