//! What the filter reports: audit events and metrics.

/// Audit events and their outbox.
pub mod audit;
/// Metrics derived from audit records.
pub mod metrics;
