//! The host's capabilities, as the core sees them: the shared [`Store`],
//! the [`Clock`], and the [`Recorder`] that takes what the filter reports
//! (metrics by name, log lines, filter state). The proxy-wasm adapter
//! implements each on the host's calls; the core's tests and the CLI use
//! memory ([`crate::state::store::MemoryStore`],
//! [`crate::observe::report::Recording`]).
//!
//! A module of its own, at the top, because every layer uses it: `state/`
//! defines the store, `observe/` and `config/` report through the recorder,
//! and none of them may depend on another just for a trait.

pub use crate::state::store::{Store, StoreError};

/// The host's wall clock.
pub trait Clock {
    /// Since the epoch (zero if the host cannot tell).
    fn now(&self) -> std::time::Duration;

    /// Milliseconds since the epoch.
    fn now_ms(&self) -> u64 {
        self.now().as_millis() as u64
    }

    /// Microseconds since the epoch.
    fn now_micros(&self) -> u64 {
        self.now().as_micros() as u64
    }
}

/// A clock stopped at one time, in milliseconds since the epoch (the CLI's
/// replay, tests, and callers that already read the time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

/// A log line's level (the proxy's log levels), least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

/// A metric's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Where what the filter reports goes, in the order it is reported: the
/// adapter writes each call through to the host at once (metrics defined on
/// first use), so the host sees exactly this sequence.
pub trait Recorder {
    /// A line in the proxy's log.
    fn log(&mut self, level: Level, message: &str);
    /// Whether a line at `level` would be written (the proxy's log level):
    /// lines that would not be are not formatted.
    fn enabled(&self, level: Level) -> bool {
        let _ = level;
        true
    }
    /// Define a metric without changing it (exported as 0 from now on).
    fn define(&mut self, kind: MetricKind, name: &str);
    /// Add `n` to a counter.
    fn count(&mut self, name: &str, n: u64);
    /// Add `delta` to a gauge.
    fn gauge(&mut self, name: &str, delta: i64);
    /// Record one value in a histogram.
    fn observe(&mut self, name: &str, value: u64);
    /// Set a filter-state value (the access log's
    /// `%FILTER_STATE(wasm.<key>:PLAIN)%`).
    fn filter_state(&mut self, key: &str, value: &str);
    /// An audit line (info level). A host may gather lines and write
    /// several at once, each whole and in order; by default each is written
    /// at once.
    fn audit_line(&mut self, line: &str) {
        self.log(Level::Info, line);
    }
}
