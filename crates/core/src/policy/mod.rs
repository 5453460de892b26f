//! The policy: its `input`, the engine that decides on it, and the tools
//! that check policies offline.

/// One walk over regorus' syntax tree, shared by lint, negation and listing.
pub mod ast;
/// Compile, evaluate and read a decision (RVM or interpreter).
pub mod engine;
/// The policy `input` document built from a message and its request.
pub mod input;
/// The input lint: references to `input` paths the filter never provides.
pub mod lint;
/// Call-dependent rules of list results (`tools/list` filtering).
pub mod listing;
/// `not` over an undefined operand, compiled as OPA does.
pub mod negation;
/// The outputs a policy may define besides `allow` and `deny`.
pub mod outputs;
/// `test_` rules (`opa test` convention).
pub mod regotest;
