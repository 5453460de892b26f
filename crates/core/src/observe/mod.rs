//! What the filter reports: audit events, metrics, and the recorder that
//! hands them to the host.

/// Audit events and their outbox.
pub mod audit;
/// Metrics derived from audit records.
pub mod metrics;
/// The recorder: decisions, learnt tools and the collector, as writes.
pub mod report;
