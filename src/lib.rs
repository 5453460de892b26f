//! mcp-policy: decide every Model Context Protocol message crossing a proxy
//! with Rego policies.
//!
//! The crate is a host-independent core (wire model, policy input, policy
//! engine, decision, request pipeline) plus one thin proxy-wasm adapter
//! (`filter`, compiled only for wasm32) that is the only code touching the
//! proxy-wasm ABI.
//!
//! No panics in the data path: a panic traps the VM and Envoy then fails
//! every request on that worker. Outside tests, unwrap/expect/panic and
//! unchecked indexing are compile errors (`make lint`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod attributes;
pub mod audit;
pub mod bundle;
pub mod config;
pub mod detect;
pub mod engine;
/// Entry points of the fuzz targets and the corpus regression test.
#[cfg(not(target_arch = "wasm32"))]
pub mod fuzzing;
pub mod input;
pub mod lint;
pub mod listing;
pub mod mcp;
pub mod metrics;
pub mod negation;
pub mod pins;
pub mod pipeline;
pub mod poison;
pub mod regotest;
pub mod response;
pub mod resume;
pub mod rewrite;
pub mod routing;
pub mod sse;
pub mod state;
pub mod tools;

#[cfg(target_arch = "wasm32")]
mod filter;
/// The host calls the adapter makes, on the proxy-wasm ABI directly (no
/// SDK panics); its encodings are plain functions, tested natively.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod host;

/// The `mcp-policy` command-line tool (native builds with feature `cli`).
#[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
pub mod cli;
