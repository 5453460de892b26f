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

use crate::attributes::{self, Attributes, Needs};
use crate::audit::Outbox;
use crate::config::CollectorSettings;
use crate::config::Config;
use crate::input::HttpRequest;
use crate::pipeline::{
    error_reply, BodyAction, Decided, Forward, HeadersAction, LocalReply, Plugin,
};
use crate::state::{Store, StoreError};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};
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
    }) });
}}

/// The dynamic-metadata namespace of Envoy's JWT filter.
const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

fn log(level: LogLevel, message: &str) {
    // Logging is best effort; a failure to log must not affect the request.
    let _ = hostcalls::log(level, message);
}

fn property(path: Vec<&str>) -> Option<Vec<u8>> {
    hostcalls::get_property(path).ok().flatten()
}

/// Session state lives in the host's shared data: one store per Envoy
/// process, shared by every worker's VM, updated with compare-and-swap.
struct SharedData;

impl Store for SharedData {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(v), Some(cas))) => Some((v, cas)),
            Ok((None, Some(cas))) => Some((Vec::new(), cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|s| match s {
            Status::CasMismatch => StoreError::CasMismatch,
            other => StoreError::Failed(format!("shared data: {other:?}")),
        })
    }
}

/// The host's clock, since the epoch (zero if the host cannot tell).
fn host_time() -> std::time::Duration {
    hostcalls::get_current_time()
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
    cardinality: crate::metrics::Cardinality,
}

impl Stats {
    fn id(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let id = hostcalls::define_metric(kind, name).ok()?;
        self.ids.insert(name.to_string(), id);
        Some(id)
    }

    fn inc(&mut self, name: &str) {
        self.add(name, 1);
    }

    fn add(&mut self, name: &str, n: u64) {
        if let Some(id) = self.id(MetricType::Counter, name) {
            let _ = hostcalls::increment_metric(id, n as i64);
        }
    }

    fn observe(&mut self, name: &str, value: u64) {
        if let Some(id) = self.id(MetricType::Histogram, name) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    fn decisions(&mut self, decided: &[Decided]) {
        for d in decided {
            for name in self.cardinality.counters(&d.record) {
                self.inc(&name);
            }
            if d.record.kind != "rejected" {
                self.observe(crate::metrics::EVAL_US, d.record.eval_us);
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
        s.decisions(decided);
    }
    let now = now_ms();
    let mode = plugin.settings.mode.as_str();
    let revision = plugin.policy.revision();
    let mut events = Vec::with_capacity(decided.len());
    let mut full = 0u64;
    for d in decided {
        let e = crate::audit::event(&d.record, now, mode, revision, status);
        if plugin.settings.audit.log {
            log(LogLevel::Info, &format!("mcp-policy audit {e}"));
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
            s.add(crate::metrics::AUDIT_DROPPED, full);
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
        let _ = hostcalls::set_property(vec![key], Some(value.as_bytes()));
    };
    set(
        "mcp_policy.decision",
        if allowed { "allow" } else { "deny" },
    );
    set("mcp_policy.decision_id", &ids.join(","));
    set("mcp_policy.reasons", &reasons.join("; "));
    set("mcp_policy.audit", &events.join("\n"));
}

/// Remember the tool definitions of a watched tools/list answer.
fn learn(w: &crate::pipeline::ToolsWatch, tools: &[serde_json::Value]) {
    crate::tools::remember_at(&SharedData, &w.upstream, tools, w.replace, now_ms());
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
}

impl Context for Root {
    /// The collector answered a batch (or the call failed or timed out).
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
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
                s.add(crate::metrics::AUDIT_SENT, sent);
            }
            if dropped > 0 {
                s.add(crate::metrics::AUDIT_DROPPED, dropped);
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

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
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
                self.collector = config.settings.audit.collector.clone();
                if let Some(c) = &self.collector {
                    if self.outbox.is_none() {
                        self.outbox = Some(Rc::new(RefCell::new(Outbox::new(
                            c.queue_limit,
                            c.batch_size,
                            c.max_retries,
                        ))));
                    }
                    let _ = hostcalls::set_tick_period(std::time::Duration::from_millis(
                        c.flush_interval_ms,
                    ));
                    if let Ok(mut s) = self.stats.try_borrow_mut() {
                        let _ = s.id(MetricType::Counter, crate::metrics::AUDIT_DROPPED);
                        let _ = s.id(MetricType::Counter, crate::metrics::AUDIT_SENT);
                    }
                }
                // In-flight requests keep the plugin they started with.
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
                plugin.ids = crate::audit::Ids::new(seed);
                self.plugin = Some(Rc::new(RefCell::new(plugin)));
                if let Ok(mut s) = self.stats.try_borrow_mut() {
                    s.inc(crate::metrics::CONFIG_LOADS);
                    // Defined up front so they are exported (as 0) before
                    // anything happens.
                    let _ = s.id(MetricType::Counter, crate::metrics::CONFIG_FAILURES);
                    let _ = s.id(MetricType::Histogram, crate::metrics::EVAL_US);
                }
                true
            }
            Err(e) => {
                log(LogLevel::Critical, &format!("mcp-policy: {e}"));
                if let Ok(mut s) = self.stats.try_borrow_mut() {
                    s.inc(crate::metrics::CONFIG_FAILURES);
                }
                false
            }
        }
    }

    /// Send the next batch of audit events to the collector.
    fn on_tick(&mut self) {
        let (Some(outbox), Some(c)) = (&self.outbox, &self.collector) else {
            return;
        };
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
                    s.add(crate::metrics::AUDIT_DROPPED, dropped);
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
    watch: Option<crate::pipeline::ToolsWatch>,
    watcher: Option<(crate::tools::Watcher, crate::pipeline::ToolsWatch)>,
    /// The principal of an `initialize`: the session id the server mints is
    /// bound to it.
    bind_on_response: Option<String>,
    /// The response is to be inspected (decided, filtered).
    response_watch: Option<Box<crate::response::ResponseWatch>>,
    /// The response being inspected.
    stream: Option<Box<crate::response::ResponseStream>>,
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
        if let Some(bytes) = property(vec!["metadata"]) {
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
        a.peer_principal = property(vec!["connection", "uri_san_peer_certificate"])
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
        if let Err(e) = hostcalls::send_http_response(r.status, headers, Some(&r.body)) {
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
            if hostcalls::set_buffer(BufferType::HttpRequestBody, 0, self.body_size, body).is_err()
            {
                return self.refuse(error_reply(
                    500,
                    None,
                    crate::pipeline::INVALID_REQUEST,
                    "mcp-policy could not rewrite the request body; the request was not forwarded",
                    None,
                ));
            }
            if had_content_length {
                let len = body.len().to_string();
                let _ = hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    "content-length",
                    Some(&len),
                );
            }
        }
        for (k, v) in &f.request_headers {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, k, Some(v));
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
            match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
                Ok(Some(b)) => b,
                _ => {
                    self.request = Some(request);
                    return self.refuse(error_reply(
                        500,
                        None,
                        crate::pipeline::INVALID_REQUEST,
                        "mcp-policy could not read the request body; the request was not forwarded",
                        None,
                    ));
                }
            }
        };
        let (action, decided) = match plugin.try_borrow_mut() {
            Ok(mut p) => p.on_request_body_with(&request, &body, Some((&SharedData, now_ms()))),
            Err(_) => return self.reply(unconfigured()),
        };
        log_allowed(&decided);
        if let Ok(p) = plugin.try_borrow() {
            let status = match &action {
                BodyAction::Reply(r) => Some(r.status),
                BodyAction::Forward(_) => None,
            };
            record(&p, &self.stats, self.outbox.as_deref(), &decided, status);
        }
        match action {
            BodyAction::Forward(f) => self.forward(f, request.header("content-length").is_some()),
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
            match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size) {
                Ok(Some(b)) => b,
                _ => Vec::new(),
            }
        };
        let Ok(mut p) = plugin.try_borrow_mut() else {
            return Action::Continue;
        };
        let out = stream.feed(&mut p, &chunk, end_of_stream, Some((&SharedData, now_ms())));
        if out.bytes != chunk
            && hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &out.bytes)
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
        record_response(&p, &self.stats, self.outbox.as_deref(), &out.decided);
        if end_of_stream {
            self.stream = None;
        }
        Action::Continue
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
        crate::pipeline::INVALID_REQUEST,
        "mcp-policy has no valid configuration; the request was not forwarded",
        None,
    )
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(plugin) = self.plugin.clone() else {
            return self.reply(unconfigured());
        };
        let Ok(headers) = hostcalls::get_map_bytes(MapType::HttpRequestHeaders) else {
            return self.reply(unconfigured());
        };
        let mut request = HttpRequest::from_headers(headers);
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
        request.attributes = read_attributes(needs);
        let (action, decided) = match plugin.try_borrow_mut() {
            Ok(mut p) => {
                p.on_request_headers_with(&request, end_of_stream, Some((&SharedData, now_ms())))
            }
            Err(_) => return self.reply(unconfigured()),
        };
        if let Ok(p) = plugin.try_borrow() {
            let status = match &action {
                HeadersAction::Reply(r) => Some(r.status),
                _ => None,
            };
            record(&p, &self.stats, self.outbox.as_deref(), &decided, status);
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

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
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

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (k, v) in std::mem::take(&mut self.response_headers) {
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, &k, Some(&v));
        }
        if let Some(principal) = self.bind_on_response.take() {
            let minted =
                hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, "mcp-session-id")
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
            hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
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
                            p.settings.mode == crate::config::Mode::Audit,
                        )
                    })
                })
                .unwrap_or((crate::config::DEFAULT_MAX_RESPONSE_BYTES, false));
            let status = header(":status").parse::<u32>().ok();
            let learn = rw.learn.clone();
            match crate::response::start(
                rw,
                status,
                &header("content-type"),
                &header("content-encoding"),
                max,
                audit,
            ) {
                crate::response::Start::Pass => self.watch = learn,
                crate::response::Start::Inspect {
                    stream,
                    strip_encoding,
                } => {
                    // The body may change length: it goes chunked.
                    let _ = hostcalls::set_map_value(
                        MapType::HttpResponseHeaders,
                        "content-length",
                        None,
                    );
                    if strip_encoding {
                        let _ = hostcalls::set_map_value(
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
            self.watcher = crate::tools::Watcher::new(&w.id_raw, &ct).map(|watcher| (watcher, w));
        }
        Action::Continue
    }

    /// Responses pass through untouched; a tools/list answer is read as it
    /// goes by, to learn the tool definitions.
    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.stream.is_some() {
            return self.inspect_response(body_size, end_of_stream);
        }
        if let Some((watcher, w)) = self.watcher.as_mut() {
            if body_size > 0 {
                if let Ok(Some(chunk)) =
                    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
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

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match self.state {
            State::Pass => Action::Continue,
            State::Replied => Action::Pause,
            // Trailers end the body (HTTP/2, chunked): it is complete now.
            State::Buffering => self.decide(self.body_size),
        }
    }
}
