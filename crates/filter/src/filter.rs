//! The proxy-wasm adapter: the only code that touches the proxy-wasm ABI.
//!
//! - Root context: reads the plugin configuration, compiles the policy once
//!   (a configuration that does not load is refused: `on_configure` returns
//!   false and the reason is logged).
//! - HTTP context: holds the request headers, buffers the whole body, hands
//!   both to the core pipeline, and carries out its answer (forward, or a
//!   local reply). Responses pass through untouched.
//!
//! Host calls go through `proxy_wasm::hostcalls` directly, never through the
//! SDK's trait helpers, which unwrap host errors (a panic traps the VM and
//! fails every request on the worker). Every host error is handled: reads
//! that fail count as "unknown", and a request whose body cannot be read is
//! refused.
//!
//! Host calls per request: one for all request headers, one per request
//! attribute the policy mentions (identity, source, connection, route; the
//! identity also whenever a session id is presented), one for the body, a
//! few shared-data reads/writes when the policy keeps session state, four
//! filter-state writes for the access log, one log line per decision, and
//! one local reply when a message is refused.

use crate::host;
use mcp_policy_core::config::settings::CollectorSettings;
use mcp_policy_core::config::settings::Config;
use mcp_policy_core::mcp::attributes::{self, Attributes, Needs};
use mcp_policy_core::observe::audit::Outbox;
use mcp_policy_core::pipeline::request::{
    error_reply, BodyAction, Decided, Forward, HeadersAction, LocalReply, Plugin,
};
use mcp_policy_core::policy::input::HttpRequest;
use mcp_policy_core::state::store::{Store, StoreError};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root {
        plugin: None,
        stats: Rc::new(RefCell::new(Stats::default())),
        outbox: None,
        collector: None,
        next_flush_ms: 0,
        poller: None,
        stale_poll: None,
        settings: None,
        active_revision: None,
    }) });
}}

macro_rules! stage {
    ($i:expr, $e:expr) => {{
        #[cfg(feature = "stage-timing")]
        let t0 = crate::profiler::now();
        let r = $e;
        #[cfg(feature = "stage-timing")]
        crate::profiler::add($i, crate::profiler::now() - t0);
        r
    }};
}

/// The dynamic-metadata namespace of Envoy's JWT filter.
const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

fn log(level: LogLevel, message: &str) {
    // Logging is best effort; a failure to log must not affect the request.
    let _ = host::log(level, message);
}

fn property(path: Vec<&str>) -> Option<Vec<u8>> {
    host::get_property(path).ok().flatten()
}

/// Session state lives in the host's shared data: one store per Envoy
/// process, shared by every worker's VM, updated with compare-and-swap.
struct SharedData;

impl Store for SharedData {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match host::get_shared_data(key) {
            Ok((Some(v), Some(cas))) => Some((v, cas)),
            Ok((None, Some(cas))) => Some((Vec::new(), cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        host::set_shared_data(key, Some(value), cas).map_err(|e| {
            if host::is_cas_mismatch(e) {
                StoreError::CasMismatch
            } else {
                StoreError::Failed(format!("shared data: {e}"))
            }
        })
    }
}

/// The host's clock, since the epoch (zero if the host cannot tell).
fn host_time() -> std::time::Duration {
    host::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
}

fn host_micros() -> u64 {
    host_time().as_micros() as u64
}

/// Envoy stats (docs/metrics.md), defined on first use; ids cached per VM.
#[derive(Default)]
struct Stats {
    ids: HashMap<String, u32>,
    cardinality: mcp_policy_core::observe::metrics::Cardinality,
}

impl Stats {
    fn id(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let id = host::define_metric(kind, name).ok()?;
        self.ids.insert(name.to_string(), id);
        Some(id)
    }

    fn inc(&mut self, name: &str) {
        self.add(name, 1);
    }

    fn add(&mut self, name: &str, n: u64) {
        if let Some(id) = self.id(MetricType::Counter, name) {
            let _ = host::increment_metric(id, n as i64);
        }
    }

    fn gauge_add(&mut self, name: &str, n: i64) {
        if let Some(id) = self.id(MetricType::Gauge, name) {
            let _ = host::increment_metric(id, n);
        }
    }

    fn observe(&mut self, name: &str, value: u64) {
        if let Some(id) = self.id(MetricType::Histogram, name) {
            let _ = host::record_metric(id, value);
        }
    }

    fn decisions(&mut self, decided: &[Decided]) {
        for d in decided {
            for name in self.cardinality.counters(&d.record) {
                self.inc(&name);
            }
            if d.record.kind != "rejected" {
                self.observe(mcp_policy_core::observe::metrics::EVAL_US, d.record.eval_us);
            }
        }
    }
}

/// Record decisions: one audit event per decided message in the proxy log,
/// and the request's decision in filter state for Envoy's access log
/// (`%FILTER_STATE(wasm.mcp_policy.decision:PLAIN)%` and friends).
fn record(
    plugin: &Plugin,
    stats: &RefCell<Stats>,
    outbox: Option<&RefCell<Outbox>>,
    decided: &[Decided],
    status: Option<u32>,
) {
    record_events(plugin, stats, outbox, decided, status, false);
}

/// Record decisions on what the server sent: audit events and metrics
/// only (the request's decision stays in filter state).
fn record_response(
    plugin: &Plugin,
    stats: &RefCell<Stats>,
    outbox: Option<&RefCell<Outbox>>,
    decided: &[Decided],
) {
    record_events(plugin, stats, outbox, decided, None, true);
}

fn record_events(
    plugin: &Plugin,
    stats: &RefCell<Stats>,
    outbox: Option<&RefCell<Outbox>>,
    decided: &[Decided],
    status: Option<u32>,
    response: bool,
) {
    if decided.is_empty() {
        return;
    }
    if let Ok(mut s) = stats.try_borrow_mut() {
        stage!(16, s.decisions(decided));
    }
    let now = now_ms();
    let mode = plugin.settings.mode.as_str();
    let revision = plugin.policy.revision();
    let mut events = Vec::with_capacity(decided.len());
    let mut full = 0u64;
    for d in decided {
        let e = stage!(
            17,
            mcp_policy_core::observe::audit::event(&d.record, now, mode, revision, status)
        );
        if plugin.settings.audit.log {
            stage!(18, log(LogLevel::Info, &format!("mcp-policy audit {e}")));
        }
        if let Some(reason) = d
            .record
            .reasons
            .iter()
            .find(|r| mcp_policy_core::policy::engine::error_kind_of_reason(r).is_some())
        {
            log(
                LogLevel::Warn,
                &format!(
                    "mcp-policy: decision {} denied by a policy error ({} {}): {reason}",
                    d.record.decision_id, d.record.method, mode
                ),
            );
        }
        if let Some(Ok(mut o)) = outbox.map(RefCell::try_borrow_mut) {
            if !o.push(e.clone()) {
                full += 1;
            }
        }
        events.push(e);
    }
    if full > 0 {
        log(
            LogLevel::Error,
            &format!("mcp-policy: audit collector queue full: {full} event(s) dropped (counted in mcp_policy_audit_dropped)"),
        );
        if let Ok(mut s) = stats.try_borrow_mut() {
            s.add(mcp_policy_core::observe::metrics::AUDIT_DROPPED, full);
        }
    }
    if response {
        return;
    }
    let allowed = decided.iter().all(|d| d.allowed);
    let ids: Vec<&str> = decided
        .iter()
        .map(|d| d.record.decision_id.as_str())
        .collect();
    let reasons: Vec<&str> = decided
        .iter()
        .flat_map(|d| d.reasons.iter().map(String::as_str))
        .collect();
    let set = |key: &str, value: &str| {
        let _ = host::set_property(vec![key], Some(value.as_bytes()));
    };
    stage!(19, {
        set(
            "mcp_policy.decision",
            if allowed { "allow" } else { "deny" },
        );
        set("mcp_policy.decision_id", &ids.join(","));
        set("mcp_policy.reasons", &reasons.join("; "));
        set("mcp_policy.audit", &events.join("\n"));
    });
}

/// Remember the tool definitions of a watched tools/list answer.
fn learn(w: &mcp_policy_core::pipeline::request::ToolsWatch, tools: &[serde_json::Value]) {
    mcp_policy_core::catalog::tools::remember_at(
        &SharedData,
        &w.upstream,
        tools,
        w.replace,
        now_ms(),
    );
    log(
        LogLevel::Debug,
        &format!(
            "mcp-policy: learnt {} tool definition(s) from {}",
            tools.len(),
            w.upstream
        ),
    );
}

fn now_ms() -> u64 {
    host_time().as_millis() as u64
}

struct Root {
    plugin: Option<Rc<RefCell<Plugin>>>,
    stats: Rc<RefCell<Stats>>,
    /// Audit events waiting for the HTTP collector (kept across
    /// reconfigurations, so none is lost on a policy update).
    outbox: Option<Rc<RefCell<Outbox>>>,
    collector: Option<CollectorSettings>,
    /// When the collector is next due (ticks also serve the bundle poller).
    next_flush_ms: u64,
    /// The policy bundle source, when configured.
    poller: Option<mcp_policy_core::config::bundle::Poller>,
    /// A poll sent before a reconfiguration replaced the poller: its answer
    /// is ignored.
    stale_poll: Option<u32>,
    /// The configuration's settings, which bundles are compiled with.
    settings: Option<mcp_policy_core::config::settings::Settings>,
    /// The bundle revision this VM serves (the `mcp_policy_bundle_active`
    /// gauge counts VMs per revision).
    active_revision: Option<String>,
}

/// A plugin around a freshly loaded configuration, with the host's clock
/// and decision ids seeded from the host's time and the revision.
fn new_plugin(config: Config) -> Plugin {
    let mut plugin = Plugin::from(config);
    plugin.clock = host_micros;
    let mut seed = [0u8; 32];
    let t = host_time().as_nanos().to_le_bytes();
    for (d, s) in seed
        .iter_mut()
        .zip(t.iter().chain(plugin.policy.revision().as_bytes()))
    {
        *d = *s;
    }
    plugin.ids = mcp_policy_core::observe::audit::Ids::new(seed);
    plugin
}

fn bundle_gauge(revision: &str) -> String {
    format!(
        "{}.revision.{}",
        mcp_policy_core::observe::metrics::BUNDLE_ACTIVE,
        mcp_policy_core::observe::metrics::sanitize(revision)
    )
}

impl Root {
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
        let timeout = std::time::Duration::from_millis(p.settings().timeout_ms);
        match hostcalls::dispatch_http_call(&p.settings().cluster, h, None, vec![], timeout) {
            Ok(token) => {
                p.sent(token);
                log(
                    LogLevel::Debug,
                    &format!(
                        "mcp-policy: bundle poll {token} sent to {}{} (if-none-match {})",
                        p.settings().cluster,
                        p.settings().path,
                        p.etag().unwrap_or("none")
                    ),
                );
            }
            Err(e) => {
                p.send_failed();
                let cluster = p.settings().cluster.clone();
                self.bundle_failed(&format!(
                    "bundle download failed: the call to cluster {cluster} could not be made ({e:?})"
                ), LogLevel::Warn);
            }
        }
    }

    fn bundle_failed(&mut self, reason: &str, level: LogLevel) {
        let source = self
            .poller
            .as_ref()
            .map(|p| format!("{}{}", p.settings().cluster, p.settings().path))
            .unwrap_or_default();
        let keeping = self
            .plugin
            .as_ref()
            .and_then(|p| p.try_borrow().ok().map(|p| p.policy.revision().to_string()))
            .unwrap_or_default();
        log(
            level,
            &format!("mcp-policy: policy bundle from {source} not used: {reason}; still serving revision {keeping} (counted in mcp_policy_bundle_failures)"),
        );
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            s.inc(mcp_policy_core::observe::metrics::BUNDLE_FAILURES);
        }
    }

    /// The bundle source answered (or the call failed or timed out).
    fn on_bundle_response(&mut self, body_size: usize) {
        let status = host::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let etag = host::get_map_value(MapType::HttpCallResponseHeaders, "etag")
            .ok()
            .flatten();
        log(
            LogLevel::Debug,
            &format!("mcp-policy: bundle poll answered: status {status:?}, etag {etag:?}, {body_size} byte(s)"),
        );
        let (Some(p), Some(settings)) = (self.poller.as_mut(), self.settings.as_ref()) else {
            return;
        };
        let outcome = p.on_response(
            status,
            etag.clone(),
            body_size,
            || {
                host::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                    .ok()
                    .flatten()
            },
            settings,
        );
        let source = format!("{}{}", p.settings().cluster, p.settings().path);
        match outcome {
            mcp_policy_core::config::bundle::Outcome::NotModified => {
                if let Ok(mut s) = self.stats.try_borrow_mut() {
                    s.inc(mcp_policy_core::observe::metrics::BUNDLE_NOT_MODIFIED);
                }
            }
            mcp_policy_core::config::bundle::Outcome::Failed(e) => {
                let level = if e.kind() == "download" {
                    LogLevel::Warn
                } else {
                    LogLevel::Error
                };
                self.bundle_failed(&e.to_string(), level);
            }
            mcp_policy_core::config::bundle::Outcome::Loaded { config, bytes } => {
                keep_bundle(p, etag.as_deref(), &bytes);
                let plugin = new_plugin(*config);
                let revision = plugin.policy.revision().to_string();
                let previous = self
                    .plugin
                    .as_ref()
                    .and_then(|p| p.try_borrow().ok().map(|p| p.policy.revision().to_string()))
                    .unwrap_or_default();
                log(
                    LogLevel::Info,
                    &format!(
                        "mcp-policy: policy bundle loaded from {source}: revision {revision} ({} module(s): {}; engine {}; etag {}), replacing revision {previous}",
                        plugin.policy.module_names().len(),
                        plugin.policy.module_names().join(", "),
                        plugin.policy.engine_kind().as_str(),
                        etag.as_deref().unwrap_or("none"),
                    ),
                );
                // New requests get the new plugin; requests in flight keep
                // theirs (they hold an Rc to it). Session state lives in
                // shared data and is untouched.
                self.plugin = Some(Rc::new(RefCell::new(plugin)));
                if let Ok(mut s) = self.stats.try_borrow_mut() {
                    s.inc(mcp_policy_core::observe::metrics::BUNDLE_LOADS);
                }
                self.set_active(Some(revision));
            }
        }
    }

    /// This VM now serves bundle revision `revision` (or none).
    fn set_active(&mut self, revision: Option<String>) {
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            if let Some(old) = &self.active_revision {
                s.gauge_add(&bundle_gauge(old), -1);
            }
            if let Some(new) = &revision {
                s.gauge_add(&bundle_gauge(new), 1);
            }
        }
        self.active_revision = revision;
    }

    /// The last good bundle of this source, kept in shared data by any VM of
    /// this Envoy, compiled with this configuration's settings: a VM that
    /// starts (a new worker, a reconfiguration, a reloaded VM) serves it at
    /// once instead of waiting for its first poll.
    fn restore_bundle(
        &mut self,
        settings: &mcp_policy_core::config::settings::Settings,
    ) -> Option<Config> {
        let p = self.poller.as_mut()?;
        let (kept, _) = SharedData.get(&mcp_policy_core::config::bundle::kept_key(p.settings()))?;
        let (etag, body) = mcp_policy_core::config::bundle::decode_kept(&kept)?;
        match mcp_policy_core::config::bundle::load(body, &p.settings().limits(), settings) {
            Ok(c) => {
                log(
                    LogLevel::Info,
                    &format!(
                        "mcp-policy: policy bundle restored from shared data: revision {} (etag {}); polling {}{} for a newer one",
                        c.policy.revision(),
                        etag.as_deref().unwrap_or("none"),
                        p.settings().cluster,
                        p.settings().path
                    ),
                );
                p.set_etag(etag);
                Some(c)
            }
            Err(e) => {
                log(
                    LogLevel::Warn,
                    &format!("mcp-policy: the policy bundle kept in shared data is not used: {e}"),
                );
                None
            }
        }
    }
}

/// Keep the bundle just loaded in shared data for VMs that start later
/// (once per ETag: the other VMs find it already there).
fn keep_bundle(p: &mcp_policy_core::config::bundle::Poller, etag: Option<&str>, bytes: &[u8]) {
    let key = mcp_policy_core::config::bundle::kept_key(p.settings());
    let etag_key = format!("{key}.etag");
    let e = etag.unwrap_or("");
    if !e.is_empty()
        && SharedData
            .get(&etag_key)
            .is_some_and(|(v, _)| v == e.as_bytes())
    {
        return;
    }
    let value = mcp_policy_core::config::bundle::encode_kept(etag, bytes);
    if let Err(err) = SharedData
        .set(&key, &value, None)
        .and_then(|()| SharedData.set(&etag_key, e.as_bytes(), None))
    {
        log(
            LogLevel::Warn,
            &format!("mcp-policy: could not keep the policy bundle in shared data: {err:?}"),
        );
    }
}

impl Context for Root {
    /// The plugin goes away (reconfiguration, shutdown): this VM no longer
    /// serves its bundle revision.
    fn on_done(&mut self) -> bool {
        if let Some(old) = self.active_revision.take() {
            if let Ok(mut s) = self.stats.try_borrow_mut() {
                s.gauge_add(&bundle_gauge(&old), -1);
            }
        }
        true
    }

    /// The bundle source or the collector answered (or the call failed or
    /// timed out); calls are told apart by their token.
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        if self.poller.as_ref().is_some_and(|p| p.owns(token)) {
            self.on_bundle_response(body);
            return;
        }
        if self.stale_poll == Some(token) {
            self.stale_poll = None;
            return;
        }
        let status = host::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        let Some(outbox) = &self.outbox else { return };
        let (dropped, sent) = match outbox.try_borrow_mut() {
            Ok(mut o) => {
                let before = o.queued();
                let dropped = o.on_result(ok);
                (
                    dropped,
                    if ok {
                        before.saturating_sub(o.queued()) as u64
                    } else {
                        0
                    },
                )
            }
            Err(_) => return,
        };
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            if sent > 0 {
                s.add(mcp_policy_core::observe::metrics::AUDIT_SENT, sent);
            }
            if dropped > 0 {
                s.add(mcp_policy_core::observe::metrics::AUDIT_DROPPED, dropped);
            }
        }
        if !ok {
            let shown = status.map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
            if dropped > 0 {
                log(LogLevel::Error, &format!("mcp-policy: audit collector failed ({shown}); {dropped} event(s) dropped after retries (counted in mcp_policy_audit_dropped)"));
            } else {
                log(
                    LogLevel::Warn,
                    &format!("mcp-policy: audit collector failed ({shown}); will retry"),
                );
            }
        }
    }
}

impl Root {
    fn on_configure_bundle(&mut self, config: &Config) {
        self.stale_poll = self.poller.as_ref().and_then(|p| p.in_flight());
        let Some(b) = config.settings.bundle.clone() else {
            self.poller = None;
            return;
        };
        let seed = host_time().as_nanos() as u64;
        self.poller = Some(mcp_policy_core::config::bundle::Poller::new(b, seed));
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            let _ = s.id(
                MetricType::Counter,
                mcp_policy_core::observe::metrics::BUNDLE_LOADS,
            );
            let _ = s.id(
                MetricType::Counter,
                mcp_policy_core::observe::metrics::BUNDLE_FAILURES,
            );
            let _ = s.id(
                MetricType::Counter,
                mcp_policy_core::observe::metrics::BUNDLE_NOT_MODIFIED,
            );
        }
    }

    /// The tick period serving both the collector and the bundle poller.
    fn tick_ms(&self) -> Option<u64> {
        let flush = self.collector.as_ref().map(|c| c.flush_interval_ms);
        let poll = self
            .poller
            .as_ref()
            .map(|p| (p.settings().poll_interval_ms / 10).clamp(50, 1000));
        match (flush, poll) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match host::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) if !b.is_empty() => b,
            _ => {
                log(
                    LogLevel::Critical,
                    "mcp-policy: invalid configuration: no plugin configuration given (expected JSON with a `policy`)",
                );
                return false;
            }
        };
        match Config::from_json(&bytes) {
            Ok(config) => {
                log(
                    LogLevel::Info,
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
                        LogLevel::Warn,
                        &format!(
                            "mcp-policy: the policy rewritten for listing did not compile ({reason}); lists are decided by every rule as written"
                        ),
                    );
                }
                self.collector = config.settings.audit.collector.clone();
                if let Some(c) = &self.collector {
                    if self.outbox.is_none() {
                        self.outbox = Some(Rc::new(RefCell::new(Outbox::new(
                            c.queue_limit,
                            c.batch_size,
                            c.max_retries,
                        ))));
                    }
                    if let Ok(mut s) = self.stats.try_borrow_mut() {
                        let _ = s.id(
                            MetricType::Counter,
                            mcp_policy_core::observe::metrics::AUDIT_DROPPED,
                        );
                        let _ = s.id(
                            MetricType::Counter,
                            mcp_policy_core::observe::metrics::AUDIT_SENT,
                        );
                    }
                }
                self.on_configure_bundle(&config);
                if let Some(ms) = self.tick_ms() {
                    let _ = host::set_tick_period(std::time::Duration::from_millis(ms));
                }
                self.settings = Some(config.settings.clone());
                let pending = config.bundle_pending;
                let (config, restored) = match self.restore_bundle(&config.settings) {
                    Some(kept) => (kept, true),
                    None => (config, false),
                };
                let revision = config.policy.revision().to_string();
                // In-flight requests keep the plugin they started with.
                self.plugin = Some(Rc::new(RefCell::new(new_plugin(config))));
                self.set_active(restored.then_some(revision));
                if pending && !restored {
                    log(
                        LogLevel::Warn,
                        "mcp-policy: no inline policy: every message is denied (503, \"policy bundle not loaded yet\") until the first bundle loads",
                    );
                }
                // The first poll at once (if the host cannot make the call
                // yet, the first tick does).
                self.poll_bundle(now_ms());
                if let Ok(mut s) = self.stats.try_borrow_mut() {
                    s.inc(mcp_policy_core::observe::metrics::CONFIG_LOADS);
                    // Defined up front so they are exported (as 0) before
                    // anything happens.
                    let _ = s.id(
                        MetricType::Counter,
                        mcp_policy_core::observe::metrics::CONFIG_FAILURES,
                    );
                    let _ = s.id(
                        MetricType::Histogram,
                        mcp_policy_core::observe::metrics::EVAL_US,
                    );
                }
                true
            }
            Err(e) => {
                log(LogLevel::Critical, &format!("mcp-policy: {e}"));
                if let Ok(mut s) = self.stats.try_borrow_mut() {
                    s.inc(mcp_policy_core::observe::metrics::CONFIG_FAILURES);
                }
                false
            }
        }
    }

    /// Poll the bundle source when due; send the next batch of audit events
    /// to the collector when due.
    fn on_tick(&mut self) {
        let now = now_ms();
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
        let headers = vec![
            (":method", "POST"),
            (":path", c.path.as_str()),
            (":authority", authority.as_str()),
            ("content-type", "application/x-ndjson"),
        ];
        let timeout = std::time::Duration::from_millis(c.timeout_ms);
        if let Err(e) = hostcalls::dispatch_http_call(
            &c.cluster,
            headers,
            Some(body.as_bytes()),
            vec![],
            timeout,
        ) {
            // Not even sent (e.g. unknown cluster): a failed attempt.
            let dropped = o.on_result(false);
            log(
                LogLevel::Warn,
                &format!(
                    "mcp-policy: audit collector call to {} failed: {e:?}",
                    c.cluster
                ),
            );
            if dropped > 0 {
                log(LogLevel::Error, &format!("mcp-policy: {dropped} audit event(s) dropped after retries (counted in mcp_policy_audit_dropped)"));
                if let Ok(mut s) = self.stats.try_borrow_mut() {
                    s.add(mcp_policy_core::observe::metrics::AUDIT_DROPPED, dropped);
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            plugin: self.plugin.clone(),
            stats: self.stats.clone(),
            outbox: self.outbox.clone(),
            request: None,
            state: State::Pass,
            body_size: 0,
            response_headers: Vec::new(),
            watch: None,
            watcher: None,
            bind_on_response: None,
            response_watch: None,
            stream: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[derive(PartialEq, Eq)]
enum State {
    /// Nothing (more) to do for this request.
    Pass,
    /// Headers held, body being buffered.
    Buffering,
    /// A local reply was sent.
    Replied,
}

struct Http {
    plugin: Option<Rc<RefCell<Plugin>>>,
    stats: Rc<RefCell<Stats>>,
    outbox: Option<Rc<RefCell<Outbox>>>,
    request: Option<HttpRequest>,
    state: State,
    /// Bytes of body buffered so far.
    body_size: usize,
    /// Headers the policy asked to set on the response.
    response_headers: Vec<(String, String)>,
    /// A forwarded tools/list whose answer is to be learnt from.
    watch: Option<mcp_policy_core::pipeline::request::ToolsWatch>,
    watcher: Option<(
        mcp_policy_core::catalog::tools::Watcher,
        mcp_policy_core::pipeline::request::ToolsWatch,
    )>,
    /// The principal of an `initialize`: the session id the server mints is
    /// bound to it.
    bind_on_response: Option<String>,
    /// The response is to be inspected (decided, filtered).
    response_watch: Option<Box<mcp_policy_core::pipeline::response::ResponseWatch>>,
    /// The response being inspected.
    stream: Option<Box<mcp_policy_core::pipeline::response::ResponseStream>>,
}

/// Read the request attributes the policy can use, following
/// [`Attributes::visible`]: the caller's identity (verified JWT claims, TLS
/// peer) always — every audit event records it, and session binding needs
/// it — the rest only when the policy mentions it.
fn read_attributes(needs: Needs) -> Attributes {
    let mut a = Attributes::default();
    {
        // jwt_authn stores each verified payload in the stream's dynamic
        // metadata under its `payload_in_metadata` name. Envoy hands the
        // whole `metadata` over as a serialized protobuf (deeper paths come
        // in an untyped encoding), so it is read whole and decoded here.
        if let Some(bytes) = stage!(20, property(vec!["metadata"])) {
            match attributes::decode_metadata_namespace(&bytes, JWT_AUTHN) {
                Ok(Some(ns)) => a.jwt_claims = attributes::jwt_payload(&ns),
                Ok(None) => {}
                Err(e) => log(
                    LogLevel::Warn,
                    &format!("mcp-policy: unreadable dynamic metadata: {e}"),
                ),
            }
        }
    }
    {
        a.peer_principal = stage!(21, property(vec!["connection", "uri_san_peer_certificate"]))
            .and_then(|b| attributes::decode_string(&b));
    }
    if needs.source {
        a.source_address =
            property(vec!["source", "address"]).and_then(|b| attributes::decode_string(&b));
    }
    if needs.connection {
        a.tls_version =
            property(vec!["connection", "tls_version"]).and_then(|b| attributes::decode_string(&b));
        a.mtls = property(vec!["connection", "mtls"]).and_then(|b| attributes::decode_bool(&b));
    }
    if needs.xds {
        a.route_name =
            property(vec!["xds", "route_name"]).and_then(|b| attributes::decode_string(&b));
        a.cluster_name =
            property(vec!["xds", "cluster_name"]).and_then(|b| attributes::decode_string(&b));
    }
    a
}

impl Http {
    fn reply(&mut self, r: LocalReply) -> Action {
        log(
            LogLevel::Info,
            &format!("mcp-policy: {} -> HTTP {}", r.log, r.status),
        );
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Err(e) = host::send_http_response(r.status, headers, Some(&r.body)) {
            log(
                LogLevel::Error,
                &format!("mcp-policy: local reply failed: {e:?}"),
            );
        }
        self.state = State::Replied;
        Action::Pause
    }

    /// A refusal made here in the adapter: recorded in the audit trail (with
    /// a decision id) like any other, then sent.
    fn refuse(&mut self, r: LocalReply) -> Action {
        let (Some(plugin), Some(request)) = (self.plugin.clone(), self.request.take()) else {
            return self.reply(r);
        };
        let r = match plugin.try_borrow_mut() {
            Ok(mut p) => {
                let (r, decided) = p.reject(&request, r);
                record(
                    &p,
                    &self.stats,
                    self.outbox.as_deref(),
                    &decided,
                    Some(r.status),
                );
                r
            }
            Err(_) => r,
        };
        self.reply(r)
    }

    /// Carry out an allowed request's changes, then let it go.
    fn forward(&mut self, f: Forward, had_content_length: bool) -> Action {
        if let Some(body) = &f.body {
            if host::set_buffer(BufferType::HttpRequestBody, 0, self.body_size, body).is_err() {
                return self.refuse(error_reply(
                    500,
                    None,
                    mcp_policy_core::pipeline::request::INVALID_REQUEST,
                    "mcp-policy could not rewrite the request body; the request was not forwarded",
                    None,
                ));
            }
            if had_content_length {
                let len = body.len().to_string();
                let _ =
                    host::set_map_value(MapType::HttpRequestHeaders, "content-length", Some(&len));
            }
        }
        for (k, v) in &f.request_headers {
            let _ = host::set_map_value(MapType::HttpRequestHeaders, k, Some(v));
        }
        self.response_headers = f.response_headers;
        self.watch = f.watch;
        self.response_watch = f.response;
        self.bind_on_response = f.bind_on_response;
        self.state = State::Pass;
        Action::Continue
    }

    /// The whole body is here (end of stream, or trailers): decide.
    fn decide(&mut self, body_size: usize) -> Action {
        let (Some(plugin), Some(request)) = (self.plugin.clone(), self.request.take()) else {
            return self.reply(unconfigured());
        };
        let body = if body_size == 0 {
            Vec::new()
        } else {
            match stage!(
                6,
                host::get_buffer(BufferType::HttpRequestBody, 0, body_size)
            ) {
                Ok(Some(b)) => b,
                _ => {
                    self.request = Some(request);
                    return self.refuse(error_reply(
                        500,
                        None,
                        mcp_policy_core::pipeline::request::INVALID_REQUEST,
                        "mcp-policy could not read the request body; the request was not forwarded",
                        None,
                    ));
                }
            }
        };
        let (action, decided) = match plugin.try_borrow_mut() {
            Ok(mut p) => stage!(
                7,
                p.on_request_body_with(&request, &body, Some((&SharedData, now_ms())))
            ),
            Err(_) => return self.reply(unconfigured()),
        };
        stage!(8, log_allowed(&decided));
        if let Ok(p) = plugin.try_borrow() {
            let status = match &action {
                BodyAction::Reply(r) => Some(r.status),
                BodyAction::Forward(_) => None,
            };
            stage!(
                9,
                record(&p, &self.stats, self.outbox.as_deref(), &decided, status)
            );
        }
        match action {
            BodyAction::Forward(f) => stage!(
                10,
                self.forward(f, request.header("content-length").is_some())
            ),
            BodyAction::Reply(r) => self.reply(r),
        }
    }
}

impl Http {
    /// One chunk of an inspected response: decided messages go on at once,
    /// an incomplete trailing SSE event (or a JSON body until its end) is
    /// held back in the stream.
    fn inspect_response(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(stream), Some(plugin)) = (self.stream.as_mut(), self.plugin.clone()) else {
            return Action::Continue;
        };
        let chunk = if body_size == 0 {
            Vec::new()
        } else {
            match host::get_buffer(BufferType::HttpResponseBody, 0, body_size) {
                Ok(Some(b)) => b,
                _ => Vec::new(),
            }
        };
        let Ok(mut p) = plugin.try_borrow_mut() else {
            return Action::Continue;
        };
        let out = stage!(
            13,
            stream.feed(&mut p, &chunk, end_of_stream, Some((&SharedData, now_ms())))
        );
        if out.bytes != chunk
            && stage!(
                15,
                host::set_buffer(BufferType::HttpResponseBody, 0, body_size, &out.bytes)
            )
            .is_err()
        {
            log(
                LogLevel::Error,
                "mcp-policy: could not replace a response chunk",
            );
        }
        if let Some((upstream, n)) = &out.learnt {
            log(
                LogLevel::Debug,
                &format!("mcp-policy: learnt {n} tool definition(s) from {upstream}"),
            );
        }
        if out.tools_changed {
            log(
                LogLevel::Debug,
                "mcp-policy: the server announced notifications/tools/list_changed",
            );
        }
        stage!(
            14,
            record_response(&p, &self.stats, self.outbox.as_deref(), &out.decided)
        );
        if end_of_stream {
            self.close_stream();
        }
        Action::Continue
    }

    /// The inspected answer is over: requests it left unanswered are kept
    /// for a GET that resumes it (core: `ResponseStream::close`).
    fn close_stream(&mut self) {
        if let Some(stream) = self.stream.take() {
            if let Err(e) = stream.close(Some((&SharedData, now_ms()))) {
                log(
                    LogLevel::Warn,
                    &format!(
                        "mcp-policy: could not keep unanswered requests for a resumed stream: {e}"
                    ),
                );
            }
        }
    }
}

fn log_allowed(decided: &[Decided]) {
    for d in decided.iter().filter(|d| d.allowed) {
        if d.labels.is_empty() {
            log(
                LogLevel::Debug,
                &format!("mcp-policy: allowed {}", d.method),
            );
        } else {
            log(
                LogLevel::Debug,
                &format!("mcp-policy: allowed {} labels {:?}", d.method, d.labels),
            );
        }
    }
}

/// The filter has no loaded configuration (it is refused at configure time,
/// so this is a safety net): fail closed.
fn unconfigured() -> LocalReply {
    error_reply(
        503,
        None,
        mcp_policy_core::pipeline::request::INVALID_REQUEST,
        "mcp-policy has no valid configuration; the request was not forwarded",
        None,
    )
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        stage!(0, self.request_headers(num_headers, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        stage!(5, self.request_body(body_size, end_of_stream))
    }

    fn on_http_response_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        stage!(11, self.response_headers(num_headers, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        stage!(12, self.response_body(body_size, end_of_stream))
    }

    fn on_log(&mut self) {
        // An answer stream cut short (the client went away, a reset).
        self.close_stream();
        #[cfg(feature = "stage-timing")]
        if let Some(line) = crate::profiler::request_done() {
            log(LogLevel::Warn, &line);
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match self.state {
            State::Pass => Action::Continue,
            State::Replied => Action::Pause,
            // Trailers end the body (HTTP/2, chunked): it is complete now.
            State::Buffering => self.decide(self.body_size),
        }
    }
}

impl Http {
    fn request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(plugin) = self.plugin.clone() else {
            return self.reply(unconfigured());
        };
        let Ok(headers) = stage!(1, host::get_map_bytes(MapType::HttpRequestHeaders)) else {
            return self.reply(unconfigured());
        };
        let mut request = HttpRequest::from_headers(headers);
        let reserved = mcp_policy_core::pipeline::request::reserved_headers(&request);
        if !reserved.is_empty() {
            for name in &reserved {
                let _ = host::set_map_value(MapType::HttpRequestHeaders, name, None);
            }
            request.headers.retain(|(k, _)| !reserved.contains(k));
        }
        let (needs, hold, trap) = match plugin.try_borrow() {
            Ok(p) => (
                p.needs,
                p.settings.hold_headers,
                p.settings.debug.trap_header.clone(),
            ),
            Err(_) => return self.reply(unconfigured()),
        };
        if let Some(h) = trap {
            if request.header(&h).is_some() {
                // Fault injection (configuration `debug.trap_header`): fail
                // the VM so the host's failure_policy can be observed.
                log(
                    LogLevel::Critical,
                    "mcp-policy: debug.trap_header present: trapping the VM",
                );
                core::arch::wasm32::unreachable();
            }
        }
        request.attributes = stage!(2, read_attributes(needs));
        let (action, decided) = match plugin.try_borrow_mut() {
            Ok(mut p) => stage!(
                3,
                p.on_request_headers_with(&request, end_of_stream, Some((&SharedData, now_ms())))
            ),
            Err(_) => return self.reply(unconfigured()),
        };
        if let Ok(p) = plugin.try_borrow() {
            let status = match &action {
                HeadersAction::Reply(r) => Some(r.status),
                _ => None,
            };
            stage!(
                4,
                record(&p, &self.stats, self.outbox.as_deref(), &decided, status)
            );
        }
        match action {
            HeadersAction::Forward(f) => self.forward(f, false),
            HeadersAction::Reply(r) => self.reply(r),
            HeadersAction::Inspect => {
                self.request = Some(request);
                self.state = State::Buffering;
                if end_of_stream {
                    // A POST without a body: decide on the empty body now.
                    return self.decide(0);
                }
                // Hold the headers until the body is decided (needs
                // `allow_on_headers_stop_iteration: true` in Envoy), or, with
                // `hold_headers: false`, let them go and hold only the body.
                if hold {
                    Action::Pause
                } else {
                    Action::Continue
                }
            }
        }
    }

    fn request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.state {
            State::Pass => return Action::Continue,
            State::Replied => return Action::Pause,
            State::Buffering => {}
        }
        self.body_size = body_size;
        let too_large = self.plugin.as_ref().and_then(|p| {
            p.try_borrow()
                .ok()
                .and_then(|p| p.check_body_size(body_size))
        });
        if let Some(r) = too_large {
            return self.refuse(r);
        }
        if !end_of_stream {
            // Keep buffering; the whole body is decided at once.
            return Action::Pause;
        }
        self.decide(body_size)
    }

    fn response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (k, v) in std::mem::take(&mut self.response_headers) {
            let _ = host::set_map_value(MapType::HttpResponseHeaders, &k, Some(&v));
        }
        if let Some(principal) = self.bind_on_response.take() {
            let minted = host::get_map_value_bytes(MapType::HttpResponseHeaders, "mcp-session-id")
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok());
            if let (Some(id), Some(plugin)) = (minted, self.plugin.as_ref()) {
                if let Ok(p) = plugin.try_borrow() {
                    if let Err(e) = p.bind_session(&SharedData, now_ms(), &id, &principal) {
                        log(
                            LogLevel::Warn,
                            &format!("mcp-policy: could not bind session {id}: {e}"),
                        );
                    }
                }
            }
        }
        let header = |name: &str| {
            host::get_map_value_bytes(MapType::HttpResponseHeaders, name)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        if let Some(rw) = self.response_watch.take() {
            let (max, audit) = self
                .plugin
                .as_ref()
                .and_then(|p| {
                    p.try_borrow().ok().map(|p| {
                        (
                            p.settings.max_response_bytes,
                            p.settings.mode == mcp_policy_core::config::settings::Mode::Audit,
                        )
                    })
                })
                .unwrap_or((
                    mcp_policy_core::config::settings::DEFAULT_MAX_RESPONSE_BYTES,
                    false,
                ));
            let status = header(":status").parse::<u32>().ok();
            let learn = rw.learn.clone();
            match mcp_policy_core::pipeline::response::start(
                rw,
                status,
                &header("content-type"),
                &header("content-encoding"),
                max,
                audit,
            ) {
                mcp_policy_core::pipeline::response::Start::Pass => self.watch = learn,
                mcp_policy_core::pipeline::response::Start::Inspect {
                    stream,
                    strip_encoding,
                } => {
                    // The body may change length: it goes chunked.
                    let _ =
                        host::set_map_value(MapType::HttpResponseHeaders, "content-length", None);
                    if strip_encoding {
                        let _ = host::set_map_value(
                            MapType::HttpResponseHeaders,
                            "content-encoding",
                            None,
                        );
                    }
                    self.stream = Some(stream);
                }
            }
        }
        if let Some(w) = self.watch.take() {
            let ct = header("content-type");
            self.watcher = mcp_policy_core::catalog::tools::Watcher::new(&w.id_raw, &ct)
                .map(|watcher| (watcher, w));
        }
        Action::Continue
    }

    /// Responses pass through untouched; a tools/list answer is read as it
    /// goes by, to learn the tool definitions.
    fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.stream.is_some() {
            return self.inspect_response(body_size, end_of_stream);
        }
        if let Some((watcher, w)) = self.watcher.as_mut() {
            if body_size > 0 {
                if let Ok(Some(chunk)) =
                    host::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                {
                    if let Some(tools) = watcher.feed(&chunk) {
                        learn(w, &tools);
                    }
                }
            }
            if end_of_stream {
                if let Some((watcher, w)) = self.watcher.take() {
                    if let Some(tools) = watcher.finish() {
                        learn(&w, &tools);
                    }
                }
            }
        }
        Action::Continue
    }
}
