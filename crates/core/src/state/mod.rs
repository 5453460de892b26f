//! State kept across messages: sessions, calls, resumed streams.

/// Streams a client resumes (`Last-Event-ID`).
pub mod resume;
/// The key-value store (host shared data or memory) and session records.
pub mod store;
