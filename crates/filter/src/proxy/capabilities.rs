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
/// VM; the proxy's log level, as last read; and the audit lines waiting to
/// be written.
pub struct Metrics {
    ids: HashMap<String, u32>,
    /// Lines below this level are not written (nor formatted): the host
    /// would drop them. Read at configure time and at each tick.
    pub log_level: Level,
    /// Audit lines not yet written, one per line (`audit.log_batch`).
    pub audit: AuditLines,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            ids: HashMap::new(),
            // Until the host says, every line is written.
            log_level: Level::Trace,
            audit: AuditLines::default(),
        }
    }
}

/// Audit lines gathered per VM and written to the proxy log together: one
/// host call (and one write of Envoy's log) for many decisions. Written
/// when `batch` lines wait or they hold [`AuditLines::MAX_BYTES`], at each
/// tick (the tick period is at most `audit.log_flush_ms`), and when the VM
/// stops or is configured again. `batch` 0: each line at once.
#[derive(Default)]
pub struct AuditLines {
    text: String,
    lines: usize,
    pub batch: usize,
}

impl AuditLines {
    /// A batch is written once it holds this many bytes, whatever its
    /// number of lines.
    pub const MAX_BYTES: usize = 64 * 1024;

    /// Write the waiting lines, if any, in one log line of the host.
    pub fn flush<H: Host>(&mut self, host: &H) {
        if self.lines == 0 {
            return;
        }
        // Best effort, as every log line: a failure must not affect requests.
        let _ = stage!(18, host.log(Level::Info, &self.text));
        self.text.clear();
        self.lines = 0;
    }

    fn push<H: Host>(&mut self, host: &H, line: &str) {
        if self.batch == 0 {
            let _ = stage!(18, host.log(Level::Info, line));
            return;
        }
        if self.lines > 0 {
            self.text.push('\n');
        }
        self.text.push_str(line);
        self.lines += 1;
        if self.lines >= self.batch || self.text.len() >= Self::MAX_BYTES {
            self.flush(host);
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
        let _ = stage!(18, self.host.log(level, message));
    }

    fn enabled(&self, level: Level) -> bool {
        level >= self.metrics.log_level
    }

    fn define(&mut self, kind: MetricKind, name: &str) {
        let _ = self.metrics.id(self.host, kind, name);
    }

    fn count(&mut self, name: &str, n: u64) {
        stage!(16, {
            if let Some(id) = self.metrics.id(self.host, MetricKind::Counter, name) {
                let _ = self.host.increment_metric(id, n as i64);
            }
        })
    }

    fn gauge(&mut self, name: &str, delta: i64) {
        if let Some(id) = self.metrics.id(self.host, MetricKind::Gauge, name) {
            let _ = self.host.increment_metric(id, delta);
        }
    }

    fn observe(&mut self, name: &str, value: u64) {
        stage!(17, {
            if let Some(id) = self.metrics.id(self.host, MetricKind::Histogram, name) {
                let _ = self.host.record_metric(id, value);
            }
        })
    }

    fn filter_state(&mut self, key: &str, value: &str) {
        let _ = stage!(19, self.host.set_property(&[key], Some(value.as_bytes())));
    }

    fn audit_line(&mut self, line: &str) {
        if self.enabled(Level::Info) {
            self.metrics.audit.push(self.host, line);
        }
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
