//! What is known about the upstreams' tools.

/// Tool definition pins (rug-pull detection).
pub mod pins;
/// Tool poisoning: instructions hidden in tool definitions.
pub mod poison;
/// Tool facts learnt from `tools/list` results.
pub mod tools;
