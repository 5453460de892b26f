//! mcp-policy: decide every Model Context Protocol message crossing a proxy
//! with Rego policies.
//!
//! The crate is a host-independent core (wire model, policy input, policy
//! engine, decision, request pipeline) plus one thin proxy-wasm adapter
//! (`filter`, compiled only for wasm32) that is the only code touching the
//! proxy-wasm ABI.

pub mod config;
pub mod engine;
pub mod input;
pub mod mcp;
pub mod pipeline;
pub mod regotest;
pub mod routing;

#[cfg(target_arch = "wasm32")]
mod filter;
