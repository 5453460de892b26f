//! The core's host capabilities ([`mcp_policy_core::host`]) on a [`Host`]:
//! the session [`Store`] on shared data, the [`Clock`], and the
//! [`Recorder`] that writes what the core reports (metrics defined on
//! first use, log lines, filter state) straight through to the host.

use super::host::{is_cas_mismatch, Host};
use mcp_policy_core::host::{Clock, Level, MetricKind, Recorder, Store, StoreError};
use mcp_policy_core::observe::report::Reporter;
use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

/// Session state lives in the host's shared data: one store per Envoy
/// process, shared by every worker's VM, updated with compare-and-swap.
pub struct SharedData<'a, H>(pub &'a H);

impl<H: Host> Store for SharedData<'_, H> {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match self.0.get_shared_data(key) {
            Ok((Some(v), Some(cas))) => Some((v, cas)),
            Ok((None, Some(cas))) => Some((Vec::new(), cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.0.set_shared_data(key, Some(value), cas).map_err(|e| {
            if is_cas_mismatch(e) {
                StoreError::CasMismatch
            } else {
                StoreError::Failed(format!("shared data: {e}"))
            }
        })
    }
}

thread_local! {
    /// The host's time as last read in this callback: one callback of the
    /// host is one instant for the filter (the store's time, the audit
    /// event's), so the clock is read once, not at every use.
    static NOW: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Forget the last reading: called as each callback of the host begins.
pub fn new_callback() {
    NOW.with(|n| n.set(None));
}

/// Read the host's clock now, and keep the reading for the callback.
fn read<H: Host>(host: &H) -> Duration {
    let t = host.get_current_time().unwrap_or_default();
    NOW.with(|n| n.set(Some(t)));
    t
}

/// The plugin's evaluation timer: a fresh reading each time (it measures),
/// kept as the callback's time (the audit event's time is then the end of
/// the evaluation, with no read of its own).
pub fn eval_micros<H: Host>() -> u64 {
    let t = H::micros();
    NOW.with(|n| n.set(Some(Duration::from_micros(t))));
    t
}

/// The host's clock, since the epoch (zero if the host cannot tell), read
/// at most once per callback.
pub struct HostClock<'a, H>(pub &'a H);

impl<H: Host> Clock for HostClock<'_, H> {
    fn now(&self) -> Duration {
        NOW.with(|n| n.get()).unwrap_or_else(|| read(self.0))
    }
}

/// Envoy stats (docs/metrics.md): ids of the metrics defined so far, per
/// VM; and the proxy's log level, as last read.
pub struct Metrics {
    ids: HashMap<String, u32>,
    /// Lines below this level are not written (nor formatted): the host
    /// would drop them. Read at configure time and at each tick.
    pub log_level: Level,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            ids: HashMap::new(),
            // Until the host says, every line is written.
            log_level: Level::Trace,
        }
    }
}

impl Metrics {
    /// Read the proxy's log level again (it can change at run time).
    pub fn read_log_level<H: Host>(&mut self, host: &H) {
        self.log_level = host.log_level().unwrap_or(Level::Trace);
    }

    fn id<H: Host>(&mut self, host: &H, kind: MetricKind, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let id = host.define_metric(kind, name).ok()?;
        self.ids.insert(name.to_string(), id);
        Some(id)
    }
}

/// What a VM reports with: the metric ids and the core's reporter.
#[derive(Default)]
pub struct Stats {
    pub metrics: Metrics,
    pub reporter: Reporter,
}

/// The [`Recorder`] of one host call site: writes through at once.
pub struct Sink<'a, H> {
    pub host: &'a H,
    pub metrics: &'a mut Metrics,
}

impl<H: Host> Recorder for Sink<'_, H> {
    fn log(&mut self, level: Level, message: &str) {
        if !self.enabled(level) {
            return;
        }
        // Logging is best effort; a failure to log must not affect the request.
        let _ = self.host.log(level, message);
    }

    fn enabled(&self, level: Level) -> bool {
        level >= self.metrics.log_level
    }

    fn define(&mut self, kind: MetricKind, name: &str) {
        let _ = self.metrics.id(self.host, kind, name);
    }

    fn count(&mut self, name: &str, n: u64) {
        if let Some(id) = self.metrics.id(self.host, MetricKind::Counter, name) {
            let _ = self.host.increment_metric(id, n as i64);
        }
    }

    fn gauge(&mut self, name: &str, delta: i64) {
        if let Some(id) = self.metrics.id(self.host, MetricKind::Gauge, name) {
            let _ = self.host.increment_metric(id, delta);
        }
    }

    fn observe(&mut self, name: &str, value: u64) {
        if let Some(id) = self.metrics.id(self.host, MetricKind::Histogram, name) {
            let _ = self.host.record_metric(id, value);
        }
    }

    fn filter_state(&mut self, key: &str, value: &str) {
        let _ = self.host.set_property(&[key], Some(value.as_bytes()));
    }
}

/// A log line; best effort (a failure to log must not affect the request).
pub fn log<H: Host>(host: &H, level: Level, message: &str) {
    let _ = host.log(level, message);
}

/// The host's time in milliseconds since the epoch (zero if it cannot tell).
pub fn now_ms<H: Host>(host: &H) -> u64 {
    HostClock(host).now_ms()
}
