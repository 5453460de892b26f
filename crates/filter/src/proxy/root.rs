//! The root context: reads the plugin configuration and compiles the
//! policy once (a configuration that does not load is refused:
//! `on_configure` returns false and the reason is logged), polls the bundle
//! source, flushes audit events to the collector, and hands each HTTP
//! context the plugin in force. What to log and count is the core's
//! (`config::bundle::source`, `observe::report`); this context makes the
//! host calls.

use super::capabilities::{log, now_ms, HostClock, SharedData, Sink, Stats};
use super::host::{Buffer, Host, Map};
use super::http::Http;
use mcp_policy_core::config::bundle::{source, Poller};
use mcp_policy_core::config::settings::{CollectorSettings, Config, Settings};
use mcp_policy_core::host::{Clock, Level, MetricKind, Recorder};
use mcp_policy_core::observe::audit::Outbox;
use mcp_policy_core::observe::{metrics, report};
use mcp_policy_core::pipeline::request::Plugin;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The tick period when nothing else needs one: how soon a change of
/// Envoy's log level (`/logging`) is seen.
const LOG_LEVEL_TICK_MS: u64 = 5_000;

pub struct Root<H: Host> {
    pub(super) host: H,
    pub(super) plugin: Option<Rc<RefCell<Plugin>>>,
    pub(super) stats: Rc<RefCell<Stats>>,
    /// Audit events waiting for the HTTP collector (kept across
    /// reconfigurations, so none is lost on a policy update).
    pub(super) outbox: Option<Rc<RefCell<Outbox>>>,
    collector: Option<CollectorSettings>,
    /// When the collector is next due (ticks also serve the bundle poller).
    next_flush_ms: u64,
    /// `audit.log_flush_ms` when audit lines are gathered: the tick is at
    /// most this long.
    log_flush_ms: Option<u64>,
    /// The policy bundle source, when configured.
    poller: Option<Poller>,
    /// A poll sent before a reconfiguration replaced the poller: its answer
    /// is ignored.
    stale_poll: Option<u32>,
    /// The configuration's settings, which bundles are compiled with.
    settings: Option<Settings>,
    /// The bundle revision this VM serves (the `mcp_policy_bundle_active`
    /// gauge counts VMs per revision).
    active_revision: Option<String>,
}

/// A plugin around a freshly loaded configuration, with the host's clock
/// and decision ids seeded from the host's time and the revision.
fn new_plugin<H: Host>(host: &H, config: Config) -> Plugin {
    let mut plugin = Plugin::from(config);
    plugin.clock = crate::proxy::capabilities::eval_micros::<H>;
    let mut seed = [0u8; 32];
    let t = HostClock(host).now().as_nanos().to_le_bytes();
    for (d, s) in seed
        .iter_mut()
        .zip(t.iter().chain(plugin.policy.revision().as_bytes()))
    {
        *d = *s;
    }
    plugin.ids = mcp_policy_core::observe::audit::Ids::new(seed);
    plugin
}

impl<H: Host> Root<H> {
    pub fn new(host: H) -> Self {
        Root {
            host,
            plugin: None,
            stats: Rc::new(RefCell::new(Stats::default())),
            outbox: None,
            collector: None,
            next_flush_ms: 0,
            log_flush_ms: None,
            poller: None,
            stale_poll: None,
            settings: None,
            active_revision: None,
        }
    }

    /// Report through the host (skipped if the stats are in use, which a
    /// single-threaded VM never sees).
    fn report(&self, f: impl FnOnce(&mut Sink<'_, H>)) {
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            f(&mut Sink {
                host: &self.host,
                metrics: &mut s.metrics,
            });
        }
    }

    /// The revision of the plugin in force (empty before the first).
    fn serving(&self) -> String {
        self.plugin
            .as_ref()
            .and_then(|p| p.try_borrow().ok().map(|p| p.policy.revision().to_string()))
            .unwrap_or_default()
    }

    /// Send a poll to the bundle source if one is due.
    fn poll_bundle(&mut self, now: u64) {
        let Some(p) = self.poller.as_mut() else {
            return;
        };
        if !p.due(now) {
            return;
        }
        let headers = p.request(now);
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let timeout = Duration::from_millis(p.settings().timeout_ms);
        match self
            .host
            .dispatch_http_call(&p.settings().cluster, &h, None, timeout)
        {
            Ok(token) => {
                if let Ok(mut s) = self.stats.try_borrow_mut() {
                    source::sent(
                        p,
                        &mut Sink {
                            host: &self.host,
                            metrics: &mut s.metrics,
                        },
                        token,
                    );
                }
            }
            Err(e) => {
                let reason = source::not_sent(p, &e);
                self.bundle_failed(&reason, Level::Warn);
            }
        }
    }

    fn bundle_failed(&mut self, reason: &str, level: Level) {
        let from = self.poller.as_ref().map(source::source).unwrap_or_default();
        let keeping = self.serving();
        self.report(|r| source::failed(r, &from, &keeping, reason, level));
    }

    /// The bundle source answered (or the call failed or timed out).
    fn on_bundle_response(&mut self, body_size: usize) {
        let status = self
            .host
            .get_map_value(Map::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let etag = self
            .host
            .get_map_value(Map::HttpCallResponseHeaders, "etag")
            .ok()
            .flatten();
        log(
            &self.host,
            Level::Debug,
            &format!("mcp-policy: bundle poll answered: status {status:?}, etag {etag:?}, {body_size} byte(s)"),
        );
        let keeping = self.serving();
        let stats = self.stats.clone();
        let Ok(mut s) = stats.try_borrow_mut() else {
            return;
        };
        let (Some(p), Some(settings)) = (self.poller.as_mut(), self.settings.as_ref()) else {
            return;
        };
        let host = &self.host;
        let mut sink = Sink {
            host,
            metrics: &mut s.metrics,
        };
        let Some(config) = source::answered(
            p,
            &SharedData(host),
            &mut sink,
            status,
            etag.clone(),
            body_size,
            || {
                host.get_buffer(Buffer::HttpCallResponseBody, 0, body_size)
                    .ok()
                    .flatten()
            },
            settings,
            &keeping,
        ) else {
            return;
        };
        let from = source::source(p);
        let plugin = new_plugin(host, config);
        let revision = plugin.policy.revision().to_string();
        source::loaded(&mut sink, &from, &plugin.policy, etag.as_deref(), &keeping);
        drop(s);
        // New requests get the new plugin; requests in flight keep
        // theirs (they hold an Rc to it). Session state lives in
        // shared data and is untouched.
        self.plugin = Some(Rc::new(RefCell::new(plugin)));
        self.set_active(Some(revision));
    }

    /// This VM now serves bundle revision `revision` (or none).
    fn set_active(&mut self, revision: Option<String>) {
        let old = self.active_revision.take();
        self.report(|r| {
            if let Some(old) = &old {
                r.gauge(&source::active_gauge(old), -1);
            }
            if let Some(new) = &revision {
                r.gauge(&source::active_gauge(new), 1);
            }
        });
        self.active_revision = revision;
    }

    fn restore_bundle(&mut self, settings: &Settings) -> Option<Config> {
        let p = self.poller.as_mut()?;
        let mut s = self.stats.try_borrow_mut().ok()?;
        source::restore(
            p,
            &SharedData(&self.host),
            &mut Sink {
                host: &self.host,
                metrics: &mut s.metrics,
            },
            settings,
        )
    }

    fn on_configure_bundle(&mut self, config: &Config) {
        self.stale_poll = self.poller.as_ref().and_then(|p| p.in_flight());
        let Some(b) = config.settings.bundle.clone() else {
            self.poller = None;
            return;
        };
        let seed = HostClock(&self.host).now().as_nanos() as u64;
        self.poller = Some(Poller::new(b, seed));
        self.report(|r| source::define(r));
    }

    /// The tick period serving both the collector and the bundle poller
    /// (each tick also reads Envoy's log level again).
    fn tick_ms(&self) -> Option<u64> {
        let flush = self.collector.as_ref().map(|c| c.flush_interval_ms);
        let poll = self
            .poller
            .as_ref()
            .map(|p| (p.settings().poll_interval_ms / 10).clamp(50, 1000));
        [flush, poll, self.log_flush_ms].into_iter().flatten().min()
    }

    /// Write the audit lines waiting in this VM.
    fn flush_audit_lines(&self) {
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            s.metrics.audit.flush(&self.host);
        }
    }

    /// The plugin goes away (reconfiguration, shutdown): this VM no longer
    /// serves its bundle revision.
    pub fn on_done(&mut self) -> bool {
        super::capabilities::new_callback();
        self.flush_audit_lines();
        if let Some(old) = self.active_revision.take() {
            self.report(|r| r.gauge(&source::active_gauge(&old), -1));
        }
        true
    }

    /// The bundle source or the collector answered (or the call failed or
    /// timed out); calls are told apart by their token.
    pub fn on_http_call_response(&mut self, token: u32, body: usize) {
        super::capabilities::new_callback();
        if self.poller.as_ref().is_some_and(|p| p.owns(token)) {
            self.on_bundle_response(body);
            return;
        }
        if self.stale_poll == Some(token) {
            self.stale_poll = None;
            return;
        }
        let status = self
            .host
            .get_map_value(Map::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let Some(outbox) = &self.outbox else { return };
        let Ok(mut o) = outbox.try_borrow_mut() else {
            return;
        };
        self.report(|r| report::collector_answered(r, &mut o, status));
    }

    pub fn on_configure(&mut self) -> bool {
        super::capabilities::new_callback();
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            s.metrics.read_log_level(&self.host);
        }
        let bytes = match self
            .host
            .get_buffer(Buffer::PluginConfiguration, 0, usize::MAX)
        {
            Ok(Some(b)) if !b.is_empty() => b,
            _ => {
                log(
                    &self.host,
                    Level::Critical,
                    "mcp-policy: invalid configuration: no plugin configuration given (expected JSON with a `policy`)",
                );
                return false;
            }
        };
        match Config::from_json(&bytes) {
            Ok(config) => {
                self.configure(config);
                true
            }
            Err(e) => {
                self.report(|r| {
                    r.log(Level::Critical, &format!("mcp-policy: {e}"));
                    r.count(metrics::CONFIG_FAILURES, 1);
                });
                false
            }
        }
    }

    fn configure(&mut self, config: Config) {
        log(
            &self.host,
            Level::Info,
            &format!(
                "mcp-policy: configured: policy {} ({} module(s): {}; engine {}), max_body_bytes {}",
                config.policy.revision(),
                config.policy.module_names().len(),
                config.policy.module_names().join(", "),
                config.policy.engine_kind().as_str(),
                config.settings.max_body_bytes
            ),
        );
        if let Some(reason) = config.policy.listing_fallback() {
            log(
                &self.host,
                Level::Warn,
                &format!(
                    "mcp-policy: the policy rewritten for listing did not compile ({reason}); lists are decided by every rule as written"
                ),
            );
        }
        // Audit lines gathered under the previous settings are written
        // first; then lines are gathered as these settings say.
        let a = &config.settings.audit;
        let batch = if a.log && a.log_flush_ms > 0 {
            a.log_batch
        } else {
            0
        };
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            s.metrics.audit.flush(&self.host);
            s.metrics.audit.batch = batch;
        }
        self.log_flush_ms = (batch > 0).then_some(a.log_flush_ms);
        self.collector = config.settings.audit.collector.clone();
        if let Some(c) = &self.collector {
            if self.outbox.is_none() {
                self.outbox = Some(Rc::new(RefCell::new(Outbox::new(
                    c.queue_limit,
                    c.batch_size,
                    c.max_retries,
                ))));
            }
            self.report(|r| report::define_collector(r));
        }
        self.on_configure_bundle(&config);
        // With neither a collector nor a poller, a slow tick still reads
        // Envoy's log level again (it can change at run time).
        let ms = self.tick_ms().unwrap_or(LOG_LEVEL_TICK_MS);
        let _ = self.host.set_tick_period(Duration::from_millis(ms));
        self.settings = Some(config.settings.clone());
        let pending = config.bundle_pending;
        let (config, restored) = match self.restore_bundle(&config.settings) {
            Some(kept) => (kept, true),
            None => (config, false),
        };
        let revision = config.policy.revision().to_string();
        // In-flight requests keep the plugin they started with.
        self.plugin = Some(Rc::new(RefCell::new(new_plugin(&self.host, config))));
        self.set_active(restored.then_some(revision));
        if pending && !restored {
            log(
                &self.host,
                Level::Warn,
                "mcp-policy: no inline policy: every message is denied (503, \"policy bundle not loaded yet\") until the first bundle loads",
            );
        }
        // The first poll at once (if the host cannot make the call
        // yet, the first tick does).
        self.poll_bundle(now_ms(&self.host));
        self.report(|r| {
            r.count(metrics::CONFIG_LOADS, 1);
            // Defined up front so they are exported (as 0) before
            // anything happens.
            r.define(MetricKind::Counter, metrics::CONFIG_FAILURES);
            r.define(MetricKind::Histogram, metrics::EVAL_US);
        });
    }

    /// Poll the bundle source when due; send the next batch of audit events
    /// to the collector when due.
    pub fn on_tick(&mut self) {
        super::capabilities::new_callback();
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            s.metrics.read_log_level(&self.host);
            s.metrics.audit.flush(&self.host);
        }
        let now = now_ms(&self.host);
        self.poll_bundle(now);
        let (Some(outbox), Some(c)) = (&self.outbox, &self.collector) else {
            return;
        };
        // Ticks may come faster than the flush interval (they also serve
        // the poller); half a tick of slack keeps the interval's rhythm.
        let slack = self.tick_ms().unwrap_or(0) / 2;
        if now.saturating_add(slack) < self.next_flush_ms {
            return;
        }
        self.next_flush_ms = now.saturating_add(c.flush_interval_ms);
        let Ok(mut o) = outbox.try_borrow_mut() else {
            return;
        };
        let Some(body) = o.next_batch() else { return };
        let authority = c.authority.clone().unwrap_or_else(|| c.cluster.clone());
        let headers = [
            (":method", "POST"),
            (":path", c.path.as_str()),
            (":authority", authority.as_str()),
            ("content-type", "application/x-ndjson"),
        ];
        let timeout = Duration::from_millis(c.timeout_ms);
        if let Err(e) =
            self.host
                .dispatch_http_call(&c.cluster, &headers, Some(body.as_bytes()), timeout)
        {
            // Not even sent (e.g. unknown cluster): a failed attempt.
            self.report(|r| report::collector_not_sent(r, &mut o, &c.cluster, &e));
        }
    }

    /// A new HTTP context, with the plugin in force.
    pub fn create_http_context(&self) -> Http<H> {
        Http::new(
            self.host.clone(),
            self.plugin.clone(),
            self.stats.clone(),
            self.outbox.clone(),
        )
    }
}
