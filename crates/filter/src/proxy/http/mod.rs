//! The HTTP context: holds the request headers, buffers the whole body,
//! hands both to the core pipeline, and carries out its answer (forward, or
//! a local reply); feeds an inspected response to the core's stream. What
//! is reported about each decision is the core's (`observe::report`); this
//! context makes the host calls.
//!
//! Every host error is handled: reads that fail count as "unknown", and a
//! request whose body cannot be read is refused.
//!
//! Host calls per request: one for all request headers, one per request
//! attribute the policy mentions (identity, source, connection, route; the
//! identity also whenever a session id is presented), one for the body, a
//! few shared-data reads/writes when the policy keeps session state, up to
//! four filter-state writes for the access log, and one local reply when a
//! message is refused. Audit lines are gathered per VM and written in
//! batches (`capabilities::AuditLines`), not one call per decision.

use crate::proxy::capabilities::{log, new_callback, HostClock, SharedData, Sink, Stats};
use crate::proxy::host::{Action, Buffer, Host, Map};
use mcp_policy_core::catalog::tools::Watcher;
use mcp_policy_core::host::Level;
use mcp_policy_core::mcp::attributes::{self, Attributes, Needs};
use mcp_policy_core::observe::audit::Outbox;
use mcp_policy_core::observe::report::{self, Context, Decision, Path};
use mcp_policy_core::pipeline::request::{
    error_reply, BodyAction, Decided, Forward, HeadersAction, LocalReply, Plugin, ToolsWatch,
    INVALID_REQUEST,
};
use mcp_policy_core::pipeline::response::{ResponseStream, ResponseWatch};
use mcp_policy_core::policy::input::HttpRequest;
use std::cell::RefCell;
use std::rc::Rc;

/// The response side: headers, learning, inspection.
mod response;

/// The dynamic-metadata namespace of Envoy's JWT filter.
const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

#[derive(Debug, PartialEq, Eq)]
pub enum State {
    /// Nothing (more) to do for this request.
    Pass,
    /// Headers held, body being buffered.
    Buffering,
    /// A local reply was sent.
    Replied,
}

pub struct Http<H: Host> {
    host: H,
    plugin: Option<Rc<RefCell<Plugin>>>,
    stats: Rc<RefCell<Stats>>,
    outbox: Option<Rc<RefCell<Outbox>>>,
    request: Option<HttpRequest>,
    pub(super) state: State,
    /// Bytes of body buffered so far.
    body_size: usize,
    /// Headers the policy asked to set on the response.
    response_headers: Vec<(String, String)>,
    /// A forwarded tools/list whose answer is to be learnt from.
    watch: Option<ToolsWatch>,
    watcher: Option<(Watcher, ToolsWatch)>,
    /// The principal of an `initialize`: the session id the server mints is
    /// bound to it.
    bind_on_response: Option<String>,
    /// The response is to be inspected (decided, filtered).
    response_watch: Option<Box<ResponseWatch>>,
    /// The response being inspected.
    stream: Option<Box<ResponseStream>>,
}

/// A decided message as the core's recorder reads it.
fn view(d: &Decided) -> Decision<'_> {
    Decision {
        method: &d.method,
        allowed: d.allowed,
        reasons: &d.reasons,
        labels: &d.labels,
        record: &d.record,
    }
}

/// The filter has no loaded configuration (it is refused at configure time,
/// so this is a safety net): fail closed.
fn unconfigured() -> LocalReply {
    error_reply(
        503,
        None,
        INVALID_REQUEST,
        "mcp-policy has no valid configuration; the request was not forwarded",
        None,
    )
}

impl<H: Host> Http<H> {
    pub fn new(
        host: H,
        plugin: Option<Rc<RefCell<Plugin>>>,
        stats: Rc<RefCell<Stats>>,
        outbox: Option<Rc<RefCell<Outbox>>>,
    ) -> Self {
        Http {
            host,
            plugin,
            stats,
            outbox,
            request: None,
            state: State::Pass,
            body_size: 0,
            response_headers: Vec::new(),
            watch: None,
            watcher: None,
            bind_on_response: None,
            response_watch: None,
            stream: None,
        }
    }

    /// Record decisions (core: `observe::report`): metrics, audit events,
    /// and on the request path the access log's filter state.
    fn record(&self, p: &Plugin, decided: &[Decided], status: Option<u32>, path: Path) {
        if decided.is_empty() {
            return;
        }
        let Ok(mut s) = self.stats.try_borrow_mut() else {
            return;
        };
        let views: Vec<Decision<'_>> = decided.iter().map(view).collect();
        let cx = Context {
            mode: p.settings.mode.as_str(),
            revision: p.policy.revision(),
            audit_log: p.settings.audit.log,
            filter_state: p.settings.audit.filter_state,
        };
        let mut outbox = self.outbox.as_ref().and_then(|o| o.try_borrow_mut().ok());
        let s = &mut *s;
        s.reporter.record(
            &mut Sink {
                host: &self.host,
                metrics: &mut s.metrics,
            },
            &cx,
            outbox.as_deref_mut(),
            &views,
            status,
            &HostClock(&self.host),
            path,
        );
    }

    /// Log through the host with the metrics at hand.
    fn report(&self, f: impl FnOnce(&mut Sink<'_, H>)) {
        if let Ok(mut s) = self.stats.try_borrow_mut() {
            f(&mut Sink {
                host: &self.host,
                metrics: &mut s.metrics,
            });
        }
    }

    fn reply(&mut self, r: LocalReply) -> Action {
        log(
            &self.host,
            Level::Info,
            &format!("mcp-policy: {} -> HTTP {}", r.log, r.status),
        );
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Err(e) = self
            .host
            .send_http_response(r.status, &headers, Some(&r.body))
        {
            log(
                &self.host,
                Level::Error,
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
                self.record(&p, &decided, Some(r.status), Path::Request);
                r
            }
            Err(_) => r,
        };
        self.reply(r)
    }

    /// Carry out an allowed request's changes, then let it go.
    fn forward(&mut self, f: Forward, had_content_length: bool) -> Action {
        if let Some(body) = &f.body {
            if self
                .host
                .set_buffer(Buffer::HttpRequestBody, 0, self.body_size, body)
                .is_err()
            {
                return self.refuse(error_reply(
                    500,
                    None,
                    INVALID_REQUEST,
                    "mcp-policy could not rewrite the request body; the request was not forwarded",
                    None,
                ));
            }
            if had_content_length {
                let len = body.len().to_string();
                let _ =
                    self.host
                        .set_map_value(Map::HttpRequestHeaders, "content-length", Some(&len));
            }
        }
        for (k, v) in &f.request_headers {
            let _ = self.host.set_map_value(Map::HttpRequestHeaders, k, Some(v));
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
                self.host.get_buffer(Buffer::HttpRequestBody, 0, body_size)
            ) {
                Ok(Some(b)) => b,
                _ => {
                    self.request = Some(request);
                    return self.refuse(error_reply(
                        500,
                        None,
                        INVALID_REQUEST,
                        "mcp-policy could not read the request body; the request was not forwarded",
                        None,
                    ));
                }
            }
        };
        let (action, decided) = match plugin.try_borrow_mut() {
            Ok(mut p) => stage!(
                7,
                p.on_request_body_at(
                    &request,
                    &body,
                    Some((&SharedData(&self.host), &HostClock(&self.host)))
                )
            ),
            Err(_) => return self.reply(unconfigured()),
        };
        stage!(
            8,
            self.report(|r| report::allowed(r, &decided.iter().map(view).collect::<Vec<_>>()))
        );
        if let Ok(p) = plugin.try_borrow() {
            let status = match &action {
                BodyAction::Reply(r) => Some(r.status),
                BodyAction::Forward(_) => None,
            };
            stage!(9, self.record(&p, &decided, status, Path::Request));
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

/// The stream callbacks, as the host calls them.
impl<H: Host> Http<H> {
    pub fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        new_callback();
        stage!(0, self.request_headers(end_of_stream))
    }

    pub fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        new_callback();
        stage!(5, self.request_body(body_size, end_of_stream))
    }

    pub fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        new_callback();
        match self.state {
            State::Pass => Action::Continue,
            State::Replied => Action::Pause,
            // Trailers end the body (HTTP/2, chunked): it is complete now.
            State::Buffering => self.decide(self.body_size),
        }
    }

    pub fn on_http_response_headers(
        &mut self,
        _num_headers: usize,
        _end_of_stream: bool,
    ) -> Action {
        new_callback();
        stage!(11, self.response_headers())
    }

    pub fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        new_callback();
        stage!(12, self.response_body(body_size, end_of_stream))
    }

    pub fn on_log(&mut self) {
        new_callback();
        // An answer stream cut short (the client went away, a reset).
        self.close_stream();
        #[cfg(feature = "stage-timing")]
        if let Some(line) = crate::proxy::profiler::request_done() {
            log(&self.host, Level::Warn, &line);
        }
    }
}

impl<H: Host> Http<H> {
    fn request_headers(&mut self, end_of_stream: bool) -> Action {
        let Some(plugin) = self.plugin.clone() else {
            return self.reply(unconfigured());
        };
        let Ok(headers) = stage!(1, self.host.get_map_bytes(Map::HttpRequestHeaders)) else {
            return self.reply(unconfigured());
        };
        let mut request = HttpRequest::from_headers(headers);
        let reserved = mcp_policy_core::pipeline::request::reserved_headers(&request);
        if !reserved.is_empty() {
            for name in &reserved {
                let _ = self.host.set_map_value(Map::HttpRequestHeaders, name, None);
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
                    &self.host,
                    Level::Critical,
                    "mcp-policy: debug.trap_header present: trapping the VM",
                );
                self.host.trap();
            }
        }
        request.attributes = stage!(2, self.read_attributes(needs));
        let (action, decided) = match plugin.try_borrow_mut() {
            Ok(mut p) => stage!(
                3,
                p.on_request_headers_at(
                    &request,
                    end_of_stream,
                    Some((&SharedData(&self.host), &HostClock(&self.host)))
                )
            ),
            Err(_) => return self.reply(unconfigured()),
        };
        if let Ok(p) = plugin.try_borrow() {
            let status = match &action {
                HeadersAction::Reply(r) => Some(r.status),
                _ => None,
            };
            stage!(4, self.record(&p, &decided, status, Path::Request));
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

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.host.get_property(path).ok().flatten()
    }

    /// Read the request attributes the policy can use, following
    /// [`Attributes::visible`]: the caller's identity (verified JWT claims,
    /// TLS peer) always — every audit event records it, and session binding
    /// needs it — the rest only when the policy mentions it.
    fn read_attributes(&self, needs: Needs) -> Attributes {
        let mut a = Attributes::default();
        // jwt_authn stores each verified payload in the stream's dynamic
        // metadata under its `payload_in_metadata` name. Envoy hands the
        // whole `metadata` over as a serialized protobuf (deeper paths come
        // in an untyped encoding), so it is read whole and decoded here.
        if let Some(bytes) = stage!(20, self.property(&["metadata"])) {
            match attributes::decode_metadata_namespace(&bytes, JWT_AUTHN) {
                Ok(Some(ns)) => a.jwt_claims = attributes::jwt_payload(&ns),
                Ok(None) => {}
                Err(e) => log(
                    &self.host,
                    Level::Warn,
                    &format!("mcp-policy: unreadable dynamic metadata: {e}"),
                ),
            }
        }
        a.peer_principal = stage!(
            21,
            self.property(&["connection", "uri_san_peer_certificate"])
        )
        .and_then(|b| attributes::decode_string(&b));
        if needs.source {
            a.source_address = self
                .property(&["source", "address"])
                .and_then(|b| attributes::decode_string(&b));
        }
        if needs.connection {
            a.tls_version = self
                .property(&["connection", "tls_version"])
                .and_then(|b| attributes::decode_string(&b));
            a.mtls = self
                .property(&["connection", "mtls"])
                .and_then(|b| attributes::decode_bool(&b));
        }
        if needs.xds {
            a.route_name = self
                .property(&["xds", "route_name"])
                .and_then(|b| attributes::decode_string(&b));
            a.cluster_name = self
                .property(&["xds", "cluster_name"])
                .and_then(|b| attributes::decode_string(&b));
        }
        a
    }
}
