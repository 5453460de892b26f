//! Per-session and per-principal state: call history, the principal a
//! session is bound to, sliding-window rate counters, and kills. Kept in the
//! host's shared key-value store (proxy-wasm shared data: one per Envoy
//! process, shared by all worker threads), updated with compare-and-swap.
//!
//! Memory is bounded whatever the clients send: keys are hashed into a fixed
//! number of slots, each holding at most a few records; a full slot evicts
//! its expired records first, then the least recently used (never a killed
//! one while an unkilled one can go). Records expire after `ttl` of
//! inactivity; history keeps the last `max_calls` calls.
//!
//! Split by responsibility: [`backend`] is the store interface (the host's
//! shared data in the module, memory in tests and the CLI) and the
//! compare-and-swap loop every update goes through; [`records`] what a
//! session or principal record holds; [`sessions`] the slots records are
//! kept in and the update applied to them.

mod backend;
mod records;
mod sessions;

pub(crate) use backend::fnv1a;
pub use backend::{read_modify_write, MemoryStore, Store, StoreError, UpdateError};
pub use records::{kill_value, Call, Counter, Kill, Record, SessionSettings, SessionSettingsError};
pub use sessions::{States, Update};
