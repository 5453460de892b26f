//! The request path, host-independent: what the filter does with a request's
//! headers and body, expressed as actions the proxy adapter carries out.
//!
//! ```text
//! headers ──► check encoding / content type / declared length
//!    │            └─ reject (413/415)          no body ─► decide transport request
//!    ▼
//! body (buffered whole, up to max_body_bytes, else 413)
//!    ▼
//! parse ─► 400 (-32700 / -32600)
//!    ▼
//! routing headers vs body ─► 400 (-32020 HeaderMismatch)
//!    ▼
//! policy, once per message ─► all allowed: forward the body unchanged
//!                              any denied: JSON-RPC error(s), nothing forwarded
//! ```

use crate::config::settings::{Config, Mode, Settings};
use crate::mcp::attributes::Needs;
use crate::mcp::jsonrpc::{self, Body, Kind, Message, ParseError};
use crate::mcp::routing::{self, HEADER_MISMATCH};
use crate::observe::audit;
use crate::policy::engine::{Policy, PolicyResult};
use crate::policy::input::{self, BatchPosition, HttpRequest};
use crate::state::store::{Call, Record, States, Store, Update};
use regorus::Value;
use std::collections::BTreeMap;

/// JSON-RPC: invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: internal error (a server response the filter refuses).
pub const INTERNAL_ERROR: i64 = -32603;

/// A response the filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Why, in one line, for the proxy log.
    pub log: String,
}

/// Watch the answer to a forwarded `tools/list` and remember the tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolsWatch {
    /// The request's id, as written.
    pub id_raw: String,
    /// The upstream the definitions belong to.
    pub upstream: String,
    /// A first page (no cursor): the list replaces what was known.
    pub replace: bool,
}

/// What to change on a request that is forwarded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Watch the response for tool definitions.
    pub watch: Option<ToolsWatch>,
    /// An `initialize` by this principal: bind the session id the server
    /// mints in its response to it.
    pub bind_on_response: Option<String>,
    /// The body to send instead (argument rewriting); `None`: unchanged.
    pub body: Option<Vec<u8>>,
    /// Headers to set on the request upstream.
    pub request_headers: Vec<(String, String)>,
    /// Headers to set on the response to the client.
    pub response_headers: Vec<(String, String)>,
    /// Inspect the response (docs/decision.md "Responses").
    pub response: Option<Box<crate::pipeline::response::ResponseWatch>>,
}

impl Forward {
    /// What audit mode forwards of an allowed request: nothing changed,
    /// except that inspected responses (recorded, not changed) are still
    /// asked for uncompressed; the tools/list watch, the session binding and
    /// the response inspection are kept.
    fn audited(self) -> Forward {
        Forward {
            watch: self.watch,
            bind_on_response: self.bind_on_response,
            request_headers: self
                .request_headers
                .into_iter()
                .filter(|(k, v)| k == "accept-encoding" && v == "identity")
                .collect(),
            response: self.response,
            ..Forward::default()
        }
    }
}

/// What to do after the request headers.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadersAction {
    /// Hold the headers and buffer the whole body, then call
    /// [`Plugin::on_request_body`].
    Inspect,
    /// Nothing to inspect and the policy allows it: let it through.
    Forward(Forward),
    /// Answer locally; the upstream sees nothing.
    Reply(LocalReply),
}

/// What to do with a complete body.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyAction {
    /// Forward the request (body unchanged unless rewritten).
    Forward(Forward),
    /// Answer locally; the upstream sees nothing.
    Reply(LocalReply),
}

/// One decided message, for logging and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub method: String,
    pub allowed: bool,
    pub reasons: Vec<String>,
    pub labels: Vec<String>,
    /// The audit record (docs/audit.md).
    pub record: audit::Record,
    /// Refused by the filter itself, not by the policy (session binding):
    /// enforced even in audit mode.
    pub core: bool,
}

impl Decided {
    /// A request refused before any policy ran (not JSON, header mismatch,
    /// too large, wrong encoding…).
    fn rejected(reason: &str) -> Decided {
        Decided {
            method: "rejected".into(),
            allowed: false,
            reasons: vec![reason.to_string()],
            labels: Vec::new(),
            record: audit::Record {
                kind: "rejected".into(),
                reasons: vec![reason.to_string()],
                ..audit::Record::default()
            },
            core: true,
        }
    }
}

/// The policy's outcome for one message.
pub(crate) struct Outcome {
    pub(crate) allowed: bool,
    pub(crate) reasons: Vec<String>,
    pub(crate) result: PolicyResult,
    pub(crate) eval_us: u64,
    /// A refusal of the filter itself (session binding), not the policy's.
    pub(crate) core: bool,
}

impl Outcome {
    /// The policy could not be evaluated (an error denies).
    pub(crate) fn failed(&self) -> bool {
        !self.allowed
            && self
                .reasons
                .first()
                .is_some_and(|r| r.starts_with(EVAL_FAILED))
    }
}

const EVAL_FAILED: &str = "policy evaluation failed";

/// A loaded configuration with its compiled policy: everything needed to
/// decide requests.
#[derive(Debug)]
pub struct Plugin {
    pub settings: Settings,
    pub policy: Policy,
    pub needs: Needs,
    /// Decision ids (the host reseeds it).
    pub ids: audit::Ids,
    /// A microsecond clock for evaluation times (the host replaces it).
    pub clock: fn() -> u64,
    /// Listing verdicts already made by this configuration.
    pub listing: crate::pipeline::response::ListingMemo,
}

/// The native clock: microseconds since the epoch. (In wasm the host
/// supplies its clock: std's can panic on a host without WASI clocks.)
#[cfg(not(target_arch = "wasm32"))]
fn default_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(target_arch = "wasm32")]
fn default_clock() -> u64 {
    0
}

impl From<Config> for Plugin {
    fn from(c: Config) -> Self {
        let mut seed = [0u8; 32];
        let t = default_clock().to_le_bytes();
        for (d, s) in seed
            .iter_mut()
            .zip(t.iter().chain(c.policy.revision().as_bytes()))
        {
            *d = *s;
        }
        Plugin {
            settings: c.settings,
            policy: c.policy,
            needs: c.needs,
            ids: audit::Ids::new(seed),
            clock: default_clock,
            listing: crate::pipeline::response::ListingMemo::default(),
        }
    }
}

/// The response header carrying the decision id back to the client.
pub const DECISION_ID_HEADER: &str = "x-mcp-decision-id";

impl Plugin {
    /// Decide what to do once the request headers are known.
    /// `end_of_stream`: the request has no body.
    pub fn on_request_headers(&mut self, http: &HttpRequest, end_of_stream: bool) -> HeadersAction {
        self.on_request_headers_with(http, end_of_stream, None).0
    }

    /// As [`Plugin::on_request_headers`], with the shared store, so a
    /// transport request (GET stream, DELETE) presenting a session id is
    /// checked against the session's bound principal.
    /// Also returns the audit records of what was decided (a transport
    /// request, or a rejection).
    pub fn on_request_headers_with(
        &mut self,
        http: &HttpRequest,
        end_of_stream: bool,
        store: Option<(&dyn Store, u64)>,
    ) -> (HeadersAction, Vec<Decided>) {
        let (action, mut decided, by_policy) = self.headers_inner(http, end_of_stream, store);
        if let HeadersAction::Reply(r) = &action {
            if decided.is_empty() {
                decided.push(Decided::rejected(&r.log));
            }
        }
        if decided.is_empty() {
            return (action, decided);
        }
        let id = self.ids.next_id();
        for d in decided.iter_mut() {
            d.record.decision_id = id.clone();
            fill_request_fields(&mut d.record, http);
        }
        let action = match action {
            HeadersAction::Reply(_)
                if by_policy
                    && !decided.iter().any(|d| d.core)
                    && self.settings.mode == Mode::Audit =>
            {
                HeadersAction::Forward(Forward::default())
            }
            HeadersAction::Forward(f) if self.settings.mode == Mode::Audit => {
                // The GET stream is still read (decisions recorded, nothing
                // changed), uncompressed.
                HeadersAction::Forward(f.audited())
            }
            other => other,
        };
        let action = match action {
            HeadersAction::Forward(mut f) => {
                f.response_headers.push((DECISION_ID_HEADER.into(), id));
                HeadersAction::Forward(f)
            }
            HeadersAction::Reply(mut r) => {
                r.headers.push((DECISION_ID_HEADER.into(), id));
                HeadersAction::Reply(r)
            }
            other => other,
        };
        (action, decided)
    }

    /// `(action, records, whether a reply is the policy's denial)`.
    fn headers_inner(
        &mut self,
        http: &HttpRequest,
        end_of_stream: bool,
        store: Option<(&dyn Store, u64)>,
    ) -> (HeadersAction, Vec<Decided>, bool) {
        if self.passes_through(http) {
            return (
                HeadersAction::Forward(Forward::default()),
                Vec::new(),
                false,
            );
        }
        if let Some(reply) = check_encoding(http) {
            return (HeadersAction::Reply(reply), Vec::new(), false);
        }
        let declared_length = http
            .header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
            // Digits only (`+0` is not a length: RFC 9110 §8.6).
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok());
        if !http.method.eq_ignore_ascii_case("POST") {
            // GET (SSE stream), DELETE (end of session), OPTIONS, HEAD…: no
            // MCP message; the policy decides on the HTTP request alone.
            // One with a body is refused, never decided as its body: the MCP
            // servers do not read it as a message.
            if end_of_stream || declared_length == Some(0) {
                return self.transport_inner(http, store);
            }
            if declared_length.is_some() {
                return (
                    HeadersAction::Reply(body_on_non_post(http)),
                    Vec::new(),
                    false,
                );
            }
            if !self.settings.hold_headers {
                // The headers would reach the server before the body shows
                // whether it is empty, and a DELETE needs no body to act.
                return (
                    HeadersAction::Reply(unheld_non_post(http)),
                    Vec::new(),
                    false,
                );
            }
            // Length unknown (chunked, HTTP/2 without content-length): the
            // body decides; an empty one keeps it a transport request.
            return (HeadersAction::Inspect, Vec::new(), false);
        }
        if let Some(reply) = check_content_type(http) {
            return (HeadersAction::Reply(reply), Vec::new(), false);
        }
        if let Some(len) = declared_length {
            if len > self.settings.max_body_bytes as u64 {
                return (HeadersAction::Reply(self.too_large()), Vec::new(), false);
            }
        }
        (HeadersAction::Inspect, Vec::new(), false)
    }

    /// A request without a message (see [`Plugin::headers_inner`]): the
    /// session binding, then the policy.
    fn transport_inner(
        &mut self,
        http: &HttpRequest,
        store: Option<(&dyn Store, u64)>,
    ) -> (HeadersAction, Vec<Decided>, bool) {
        if let Err(msg) = routing::read(&http.headers) {
            let reply = error_reply(
                400,
                None,
                HEADER_MISMATCH,
                &format!("Header mismatch: {msg}"),
                None,
            );
            return (HeadersAction::Reply(reply), Vec::new(), false);
        }
        if let Some((reply, d)) = self.check_transport_binding(http, store) {
            return (HeadersAction::Reply(reply), vec![d], true);
        }
        let (result, d) = self.decide_transport(http);
        match result {
            Ok(mut fwd) => {
                if http.method.eq_ignore_ascii_case("GET") {
                    let routing = routing::read(&http.headers).unwrap_or_default();
                    let resumed = resumed_origins(http, &routing, store);
                    self.watch_response(http, &routing, &[], resumed, &mut fwd);
                }
                (HeadersAction::Forward(fwd), vec![d], false)
            }
            Err(reply) => (HeadersAction::Reply(reply), vec![d], true),
        }
    }

    /// A request to a path configured as not an MCP endpoint
    /// (`passthrough_paths`): exact match on the path without its query,
    /// so any other spelling of it is decided as usual.
    pub fn passes_through(&self, http: &HttpRequest) -> bool {
        if self.settings.passthrough_paths.is_empty() {
            return false;
        }
        let path = http.path.split('?').next().unwrap_or_default();
        self.settings.passthrough_paths.iter().any(|p| p == path)
    }

    /// Called as the body grows (`size`: bytes buffered so far). A body
    /// past the limit is rejected without being decided on a prefix.
    pub fn check_body_size(&self, size: usize) -> Option<LocalReply> {
        (size > self.settings.max_body_bytes).then(|| self.too_large())
    }

    fn too_large(&self) -> LocalReply {
        error_reply(
            413,
            None,
            INVALID_REQUEST,
            &format!(
                "request body exceeds the {} byte limit (max_body_bytes) and was not forwarded",
                self.settings.max_body_bytes
            ),
            None,
        )
    }

    /// Decide a complete request body, without session state.
    pub fn on_request_body(
        &mut self,
        http: &HttpRequest,
        body: &[u8],
    ) -> (BodyAction, Vec<Decided>) {
        self.on_request_body_with(http, body, None)
    }

    /// Decide a complete request body, with the host's shared store for
    /// session history, binding, rates and kills (`store`, and the time in
    /// milliseconds since the epoch).
    pub fn on_request_body_with(
        &mut self,
        http: &HttpRequest,
        body: &[u8],
        store: Option<(&dyn Store, u64)>,
    ) -> (BodyAction, Vec<Decided>) {
        let (action, mut decided) = self.body_inner(http, body, store);
        // Audit mode lifts the policy's denials only: not protocol
        // rejections (an invalid batch element included) nor the filter's
        // own refusals (session binding, unavailable state).
        let by_policy = !decided.is_empty()
            && decided
                .iter()
                .all(|d| !d.core && d.record.kind != "invalid");
        if let BodyAction::Reply(r) = &action {
            if decided.is_empty() {
                decided.push(Decided::rejected(&r.log));
            }
        }
        let id = self.ids.next_id();
        let many = decided.len() > 1;
        for (i, d) in decided.iter_mut().enumerate() {
            d.record.decision_id = if many {
                format!("{id}-{i}")
            } else {
                id.clone()
            };
            fill_request_fields(&mut d.record, http);
        }
        // Audit mode: every policy decision is made and recorded, none is
        // carried out (protocol rejections still apply).
        let action = match action {
            BodyAction::Reply(_) if by_policy && self.settings.mode == Mode::Audit => {
                BodyAction::Forward(Forward::default())
            }
            BodyAction::Forward(f) if self.settings.mode == Mode::Audit => {
                BodyAction::Forward(f.audited())
            }
            other => other,
        };
        let action = match action {
            BodyAction::Forward(mut f) => {
                f.response_headers.push((DECISION_ID_HEADER.into(), id));
                BodyAction::Forward(f)
            }
            BodyAction::Reply(mut r) => {
                r.headers.push((DECISION_ID_HEADER.into(), id));
                BodyAction::Reply(r)
            }
        };
        (action, decided)
    }

    fn body_inner(
        &mut self,
        http: &HttpRequest,
        body: &[u8],
        store: Option<(&dyn Store, u64)>,
    ) -> (BodyAction, Vec<Decided>) {
        if let Some(reply) = self.check_body_size(body.len()) {
            return (BodyAction::Reply(reply), Vec::new());
        }
        if !http.method.eq_ignore_ascii_case("POST") {
            if !body.is_empty() {
                return (BodyAction::Reply(body_on_non_post(http)), Vec::new());
            }
            // An empty body (END_STREAM on an empty DATA frame, or an empty
            // chunked body): a transport request after all.
            let (action, decided, _) = self.transport_inner(http, store);
            let action = match action {
                HeadersAction::Forward(f) => BodyAction::Forward(f),
                HeadersAction::Reply(r) => BodyAction::Reply(r),
                HeadersAction::Inspect => BodyAction::Reply(body_on_non_post(http)),
            };
            return (action, decided);
        }
        let parsed = match jsonrpc::parse(body) {
            Ok(b) => b,
            Err(e) => return (BodyAction::Reply(parse_error_reply(&e)), Vec::new()),
        };
        let routing = match routing::read(&http.headers).and_then(|r| {
            routing::check(&r, &parsed)?;
            Ok(r)
        }) {
            Ok(r) => r,
            Err(msg) => {
                let id = match &parsed {
                    Body::Single(m) => m.id_raw.map(|r| r.get()),
                    Body::Batch(_) => None,
                };
                let reply = error_reply(
                    400,
                    id,
                    HEADER_MISMATCH,
                    &format!("Header mismatch: {msg}"),
                    None,
                );
                return (BodyAction::Reply(reply), Vec::new());
            }
        };
        let shared = input::request_values(http, self.needs.http);
        let settings = self.settings.sessions.clone();
        let keys = StateKeys::new(http, &routing);
        let state = store
            .filter(|_| self.needs.state || keys.bindable())
            .map(|(store, now)| {
                (
                    States {
                        store,
                        settings: &settings,
                        now,
                    },
                    keys,
                )
            });
        let state = state.as_ref().map(|(st, k)| (st, k));
        let defs = store
            .filter(|_| self.needs.definition)
            .map(|(s, _)| (s, upstream_of(http)));
        let defs = defs.as_ref().map(|(s, u)| (*s, u.as_str()));
        match &parsed {
            Body::Single(m) => {
                let mut o = self.decide(&shared, &routing, m, None, state, defs);
                let mut fwd = Forward::default();
                if o.allowed {
                    if let Err(reason) = self.mutations(m, body, &o.result, &mut fwd) {
                        o.allowed = false;
                        o.reasons = vec![reason];
                    }
                }
                if o.allowed && m.method() == Some("initialize") && routing.session_id.is_none() {
                    fwd.bind_on_response = http.attributes.principal();
                }
                if o.allowed && m.method() == Some("tools/list") {
                    if let (Some((_, upstream)), Some(id)) = (defs, m.id_raw) {
                        fwd.watch = Some(ToolsWatch {
                            id_raw: id.get().to_string(),
                            upstream: upstream.to_string(),
                            replace: m.params[&crate::mcp::keys::key("cursor")] == Value::Undefined,
                        });
                    }
                }
                if o.allowed {
                    self.watch_response(http, &routing, &[m], Vec::new(), &mut fwd);
                }
                let d = decided_for(m, &o);
                let modern = m
                    .meta_protocol_version()
                    .or(routing.protocol_version.as_deref())
                    .is_some_and(routing::is_modern);
                let action = if o.allowed {
                    BodyAction::Forward(fwd)
                } else {
                    BodyAction::Reply(self.denial_reply(m, &o, modern))
                };
                (action, vec![d])
            }
            Body::Batch(items) => self.decide_batch(http, &shared, &routing, items, state, defs),
        }
    }

    fn decide(
        &mut self,
        http: &[(&'static str, Value)],
        routing: &routing::Routing,
        m: &Message<'_>,
        batch: Option<BatchPosition>,
        state: Option<(&States<'_>, &StateKeys)>,
        defs: Option<(&dyn Store, &str)>,
    ) -> Outcome {
        let definition = match (defs, m.method(), m.routing_name()) {
            (Some((store, upstream)), Some("tools/call"), Some(name)) => {
                crate::catalog::tools::definition(store, upstream, name)
            }
            _ => None,
        };
        let Some((st, keys)) = state else {
            return self.evaluate(input::for_message_with(http, routing, m, batch, definition));
        };
        let now = st.now;
        let session = keys.session.as_ref().and_then(|k| st.get(k));
        let principal_rec = match (&keys.principal, &keys.session) {
            (Some(p), Some(s)) if p == s => None,
            (Some(p), _) => st.get(p),
            _ => None,
        };
        // A session is bound to the principal that first used it: anyone
        // else presenting its id is refused (session hijacking).
        if let (Some(id), Some(rec)) = (&keys.session_id, &session) {
            if let Some(bound) = &rec.principal {
                if keys.principal_raw.as_deref() != Some(bound.as_str()) {
                    return Outcome {
                        allowed: false,
                        reasons: vec![format!(
                            "session {id} belongs to another principal (Mcp-Session-Id presented by {})",
                            keys.principal_shown()
                        )],
                        result: PolicyResult::default(),
                        eval_us: 0,
                        core: true,
                    };
                }
            }
        }
        let mut shared: Vec<(&'static str, Value)> = http.to_vec();
        if self.needs.state {
            let empty = Record::fresh(now);
            let srec = session.as_ref().unwrap_or(&empty);
            let prec = if keys.principal == keys.session {
                srec
            } else {
                principal_rec.as_ref().unwrap_or(&empty)
            };
            let window = st.settings.rate_window_seconds * 1000;
            let tool = match m.method() {
                Some("tools/call") => m.routing_name(),
                _ => None,
            };
            if let Some(id) = keys.session_display() {
                shared.push(("session", srec.session_value(&id, now)));
            }
            let mut rate = BTreeMap::new();
            if keys.session.is_some() {
                rate.insert(Value::from("session"), srec.rate_value(tool, now, window));
            }
            if keys.principal.is_some() {
                rate.insert(Value::from("identity"), prec.rate_value(tool, now, window));
            }
            shared.push(("rate", Value::from(rate)));
        }
        let mut o = self.evaluate(input::for_message_with(
            &shared, routing, m, batch, definition,
        ));
        let killed = session
            .as_ref()
            .and_then(|r| r.kill(now).cloned())
            .or_else(|| principal_rec.as_ref().and_then(|r| r.kill(now).cloned()));
        if let Some(k) = &killed {
            if !o.result.clear_kill {
                o.allowed = false;
                o.reasons = vec![format!("session killed: {}", k.reason)];
            }
        }
        if let Some(order) = &o.result.kill {
            o.allowed = false;
            let already = killed.is_some() && !o.result.clear_kill;
            if !already && !o.reasons.contains(&order.reason) {
                o.reasons.push(order.reason.clone());
            }
        }
        // Record the call (and any kill) under compare-and-swap.
        let call = Call {
            t: now,
            method: m.method().unwrap_or(m.kind.as_str()).to_string(),
            name: m.routing_name().map(str::to_string),
            labels: o.result.labels.clone(),
            allowed: o.allowed,
        };
        let ttl_ms = |order: &crate::policy::engine::KillOrder| {
            order
                .ttl_seconds
                .unwrap_or(st.settings.kill_ttl_seconds)
                .saturating_mul(1000)
        };
        let kill_for = |principal: bool| {
            o.result
                .kill
                .as_ref()
                .filter(|k| k.principal == principal)
                .map(|k| (k.reason.clone(), ttl_ms(k)))
        };
        let mut result = Ok(());
        if let Some(key) = &keys.session {
            let is_principal_key = keys.session == keys.principal;
            result = st.update(
                key,
                &Update {
                    call: Some(call.clone()),
                    bind: keys
                        .principal_raw
                        .as_deref()
                        .filter(|_| keys.session_id.is_some()),
                    kill: if is_principal_key {
                        o.result
                            .kill
                            .as_ref()
                            .map(|k| (k.reason.clone(), ttl_ms(k)))
                    } else {
                        kill_for(false)
                    },
                    clear_kill: o.result.clear_kill,
                },
            );
        }
        if let (Some(pkey), true) = (&keys.principal, keys.principal != keys.session) {
            if result.is_ok() {
                result = st.update(
                    pkey,
                    &Update {
                        call: Some(call),
                        bind: None,
                        kill: kill_for(true),
                        clear_kill: o.result.clear_kill,
                    },
                );
            }
        }
        if let Err(e) = result {
            o.allowed = false;
            o.reasons = vec![format!("session state unavailable: {e}")];
            o.core = true;
        }
        o
    }

    /// Evaluate; a policy error denies with the error as the reason.
    pub(crate) fn evaluate(&mut self, input: Value) -> Outcome {
        let start = (self.clock)();
        let result = self.policy.evaluate(input);
        let eval_us = (self.clock)().saturating_sub(start);
        let mut o = self.outcome(result);
        o.eval_us = eval_us;
        o
    }

    fn outcome(&self, result: Result<PolicyResult, crate::policy::engine::PolicyError>) -> Outcome {
        match result {
            Ok(r) if r.permits() => Outcome {
                allowed: true,
                reasons: Vec::new(),
                result: r,
                eval_us: 0,
                core: false,
            },
            Ok(r) => Outcome {
                allowed: false,
                reasons: if r.deny.is_empty() {
                    vec!["no policy rule allows this message".into()]
                } else {
                    r.deny.clone()
                },
                result: r,
                eval_us: 0,
                core: false,
            },
            Err(e) => Outcome {
                allowed: false,
                reasons: vec![format!("{EVAL_FAILED}: {e}")],
                result: PolicyResult::default(),
                eval_us: 0,
                core: false,
            },
        }
    }

    /// The changes an allowed message asks for; `Err` (a reason) when they
    /// cannot be carried out, which denies the message (fail closed).
    fn mutations(
        &self,
        m: &Message<'_>,
        body: &[u8],
        r: &PolicyResult,
        fwd: &mut Forward,
    ) -> Result<(), String> {
        if !self.settings.hold_headers
            && (!r.rewrite.is_empty() || !r.request_headers.is_empty() || r.rate_limit.is_some())
        {
            return Err(
                "the policy changes the request (rewrite/request_headers/rate_limit), which needs hold_headers: true"
                    .into(),
            );
        }
        if !r.rewrite.is_empty() {
            if !matches!(m.method(), Some("tools/call" | "prompts/get")) {
                return Err(format!(
                    "`rewrite` applies to tools/call and prompts/get arguments, not {}",
                    m.method().unwrap_or(m.kind.as_str())
                ));
            }
            fwd.body =
                Some(crate::mcp::rewrite::arguments(body, &r.rewrite).map_err(|e| e.to_string())?);
        }
        fwd.request_headers = r.request_headers.clone();
        if let Some(rl) = &r.rate_limit {
            fwd.request_headers.extend(rl.headers());
        }
        fwd.response_headers = r.response_headers.clone();
        Ok(())
    }

    /// A transport request (no body) on a session bound to someone else.
    fn check_transport_binding(
        &self,
        http: &HttpRequest,
        store: Option<(&dyn Store, u64)>,
    ) -> Option<(LocalReply, Decided)> {
        let (store, now) = store?;
        let routing = routing::read(&http.headers).ok()?;
        let keys = StateKeys::new(http, &routing);
        let (id, key) = (keys.session_id.as_ref()?, keys.session.as_ref()?);
        let settings = &self.settings.sessions;
        let rec = States {
            store,
            settings,
            now,
        }
        .get(key)?;
        let bound = rec.principal.as_ref()?;
        if keys.principal_raw.as_deref() == Some(bound.as_str()) {
            return None;
        }
        let reason = format!(
            "session {id} belongs to another principal (Mcp-Session-Id presented by {})",
            keys.principal_shown()
        );
        let reasons = [reason];
        let mut reply = error_reply(
            403,
            None,
            self.settings.deny_code,
            &denial_message(&reasons),
            Some(&reasons),
        );
        reply.log = format!(
            "denied {} {}: {}",
            http.method,
            http.path,
            reasons.join("; ")
        );
        let mut d = transport_decided(http, false, reasons.to_vec(), Vec::new(), 0, &[]);
        d.core = true;
        Some((reply, d))
    }

    /// Whether (and how) the response to a forwarded request is inspected:
    /// server-to-client messages are evaluated when the policy rules on
    /// them ([`Needs::responses`]), list results filtered when
    /// `filter_lists` is on. An inspected response must come uncompressed:
    /// the request asks for `accept-encoding: identity`.
    fn watch_response(
        &self,
        http: &HttpRequest,
        routing: &routing::Routing,
        msgs: &[&Message<'_>],
        resumed: Vec<input::Origin>,
        fwd: &mut Forward,
    ) {
        let from_store = !resumed.is_empty();
        let mut origins: Vec<input::Origin> = msgs
            .iter()
            .filter(|m| m.kind == Kind::Request)
            .filter_map(|m| {
                Some(input::Origin {
                    method: m.method()?.to_string(),
                    id_raw: m.id_raw?.get().to_string(),
                    params: m.params.clone(),
                    modern: m
                        .meta_protocol_version()
                        .or(routing.protocol_version.as_deref())
                        .is_some_and(routing::is_modern),
                })
            })
            .collect();
        origins.extend(resumed);
        let is_stream = msgs.is_empty();
        if !is_stream && origins.is_empty() {
            // Notifications and client responses: answered by 202 only.
            return;
        }
        let evaluate = self.needs.responses;
        let filter_lists = self.settings.filter_lists
            && origins
                .iter()
                .any(|o| crate::pipeline::response::is_list(&o.method));
        if !evaluate && !filter_lists {
            return;
        }
        // A tools/list answer on a resumed stream teaches definitions as it
        // would have on its own stream.
        let learn = fwd.watch.take().or_else(|| {
            if !(from_store && self.needs.definition) {
                return None;
            }
            origins
                .iter()
                .find(|o| o.method == "tools/list")
                .map(|o| ToolsWatch {
                    id_raw: o.id_raw.clone(),
                    upstream: upstream_of(http),
                    replace: o.params[&crate::mcp::keys::key("cursor")] == Value::Undefined,
                })
        });
        fwd.response = Some(Box::new(crate::pipeline::response::ResponseWatch {
            http: http.clone(),
            origins,
            upstream: upstream_of(http),
            evaluate,
            filter_lists,
            learn,
            definitions: self.needs.definition,
            findings: self.needs.findings,
            http_input: self.needs.http,
            resumed: from_store,
        }));
        if self.settings.hold_headers || is_stream {
            fwd.request_headers
                .push(("accept-encoding".into(), "identity".into()));
        }
    }

    /// Record and label a refusal the host adapter makes itself (a body
    /// that grew past the limit while streaming, an unreadable body, no
    /// configuration): the reply gets a decision id, the audit trail a
    /// `rejected` event.
    pub fn reject(
        &mut self,
        http: &HttpRequest,
        mut reply: LocalReply,
    ) -> (LocalReply, Vec<Decided>) {
        let id = self.ids.next_id();
        let mut d = Decided::rejected(&reply.log);
        d.record.decision_id = id.clone();
        fill_request_fields(&mut d.record, http);
        reply.headers.push((DECISION_ID_HEADER.into(), id));
        (reply, vec![d])
    }

    /// Bind a session id the server just minted (in its answer to an
    /// `initialize`) to the principal that asked.
    pub fn bind_session(
        &self,
        store: &dyn Store,
        now: u64,
        session_id: &str,
        principal: &str,
    ) -> Result<(), String> {
        let settings = &self.settings.sessions;
        States {
            store,
            settings,
            now,
        }
        .update(
            &format!("s:{session_id}"),
            &Update {
                call: None,
                bind: Some(principal),
                kill: None,
                clear_kill: false,
            },
        )
        .map_err(|e| e.to_string())
    }

    fn decide_transport(&mut self, http: &HttpRequest) -> (Result<Forward, LocalReply>, Decided) {
        let o = self.evaluate(input::for_transport(&input::request_values(
            http,
            self.needs.http,
        )));
        let d = transport_decided(
            http,
            o.allowed,
            o.reasons.clone(),
            o.result.labels.clone(),
            o.eval_us,
            &o.result.dry_run,
        );
        (self.transport_action(http, o), d)
    }

    fn transport_action(&self, http: &HttpRequest, o: Outcome) -> Result<Forward, LocalReply> {
        if o.allowed {
            // A bodyless request's headers are still held at this point, so
            // request headers can be set in either hold_headers mode.
            return Ok(Forward {
                watch: None,
                bind_on_response: None,
                body: None,
                request_headers: o.result.request_headers,
                response_headers: o.result.response_headers,
                response: None,
            });
        }
        let d = &o.result.denial;
        let message = d
            .message
            .clone()
            .unwrap_or_else(|| denial_message(&o.reasons));
        let mut reply = error_reply(
            d.http_status.unwrap_or(403),
            None,
            d.code.unwrap_or(self.settings.deny_code),
            &message,
            Some(&o.reasons),
        );
        reply
            .headers
            .extend(o.result.response_headers.iter().cloned());
        reply.log = format!(
            "denied {} {}: {}",
            http.method,
            http.path,
            o.reasons.join("; ")
        );
        Err(reply)
    }

    /// A denied single message: a request gets HTTP 200 and a JSON-RPC
    /// error with its id (the client's session carries on) — or, when the
    /// policy asks for it, a tools/call result with `isError: true`; a
    /// notification or a client response has no id to answer, so it gets
    /// HTTP 403.
    fn denial_reply(&self, m: &Message<'_>, o: &Outcome, modern: bool) -> LocalReply {
        let d = &o.result.denial;
        let reasons = &o.reasons;
        let message = d.message.clone().unwrap_or_else(|| denial_message(reasons));
        let code = d.code.unwrap_or(self.settings.deny_code);
        let mut reply = match (m.kind, m.id_raw) {
            (Kind::Request, Some(id)) if d.as_tool_result && m.method() == Some("tools/call") => {
                tool_error_reply(d.http_status.unwrap_or(200), id.get(), &message, modern)
            }
            (Kind::Request, Some(id)) => error_reply(
                d.http_status.unwrap_or(200),
                Some(id.get()),
                code,
                &message,
                Some(reasons),
            ),
            _ => error_reply(
                d.http_status.unwrap_or(403),
                None,
                code,
                &message,
                Some(reasons),
            ),
        };
        reply
            .headers
            .extend(o.result.response_headers.iter().cloned());
        reply.log = format!(
            "denied {}{}: {}",
            m.method().unwrap_or(m.kind.as_str()),
            subject_suffix(m),
            reasons.join("; ")
        );
        reply
    }

    /// Every element is decided. If all are allowed the batch is forwarded
    /// whole; otherwise nothing is forwarded and every request in it gets an
    /// error: the denied ones their reasons, the others a note that the batch
    /// was held back.
    #[allow(clippy::too_many_arguments)]
    fn decide_batch(
        &mut self,
        http_req: &HttpRequest,
        http: &[(&'static str, Value)],
        routing: &routing::Routing,
        items: &[Result<Message<'_>, jsonrpc::Invalid>],
        state: Option<(&States<'_>, &StateKeys)>,
        defs: Option<(&dyn Store, &str)>,
    ) -> (BodyAction, Vec<Decided>) {
        let size = items.len();
        let mut decided = Vec::with_capacity(size);
        let mut outcomes: Vec<Option<Vec<String>>> = Vec::with_capacity(size);
        let mut fwd = Forward::default();
        // One descriptor for the whole batch: the first element's entries,
        // the allowed elements' costs summed.
        let mut rate_limit: Option<crate::policy::engine::RateLimitOrder> = None;
        for (index, item) in items.iter().enumerate() {
            match item {
                Ok(m) => {
                    let mut o = self.decide(
                        http,
                        routing,
                        m,
                        Some(BatchPosition { index, size }),
                        state,
                        defs,
                    );
                    if o.allowed && !o.result.rewrite.is_empty() {
                        o.allowed = false;
                        o.reasons =
                            vec!["`rewrite` is not supported inside a JSON-RPC batch".into()];
                    }
                    if o.allowed {
                        fwd.request_headers
                            .extend(o.result.request_headers.iter().cloned());
                        fwd.response_headers
                            .extend(o.result.response_headers.iter().cloned());
                        if let Some(rl) = &o.result.rate_limit {
                            match rate_limit.as_mut() {
                                Some(acc) => acc.cost = acc.cost.saturating_add(rl.cost),
                                None => rate_limit = Some(rl.clone()),
                            }
                        }
                    }
                    outcomes.push((!o.allowed).then(|| o.reasons.clone()));
                    decided.push(decided_for(m, &o));
                }
                Err(inv) => {
                    outcomes.push(Some(vec![format!(
                        "invalid JSON-RPC message: {}",
                        inv.reason
                    )]));
                    let mut d = Decided::rejected(&inv.reason);
                    d.method = "invalid".into();
                    d.record.kind = "invalid".into();
                    d.core = false;
                    decided.push(d);
                }
            }
        }
        if let Some(rl) = rate_limit {
            fwd.request_headers.extend(rl.headers());
        }
        if outcomes.iter().all(Option::is_none) {
            if !self.settings.hold_headers && !fwd.request_headers.is_empty() {
                fwd.request_headers.clear();
            }
            let msgs: Vec<&Message<'_>> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
            self.watch_response(http_req, routing, &msgs, Vec::new(), &mut fwd);
            return (BodyAction::Forward(fwd), decided);
        }
        let denied: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.as_ref().map(|_| i))
            .collect();
        let mut errors: Vec<String> = Vec::new();
        for (item, outcome) in items.iter().zip(&outcomes) {
            let (id, code, message, reasons) = match (item, outcome) {
                (Ok(m), Some(r)) => (
                    m.id_raw.map(|x| x.get()),
                    self.settings.deny_code,
                    denial_message(r),
                    Some(r.as_slice()),
                ),
                (Ok(m), None) => (
                    m.id_raw.map(|x| x.get()),
                    self.settings.deny_code,
                    format!(
                        "Not forwarded: the batch contains a denied message (element {})",
                        list(&denied)
                    ),
                    None,
                ),
                (Err(inv), r) => (
                    inv.id_raw.as_deref(),
                    INVALID_REQUEST,
                    r.as_ref()
                        .and_then(|r| r.first().cloned())
                        .unwrap_or_default(),
                    None,
                ),
            };
            // Notifications and client responses get no response object.
            let is_request = matches!(item, Ok(m) if m.kind == Kind::Request) || item.is_err();
            if is_request {
                errors.push(error_object(id, code, &message, reasons));
            }
        }
        let log = format!(
            "denied batch of {size}: {}",
            decided
                .iter()
                .filter(|d| !d.allowed)
                .map(|d| format!("{}: {}", d.method, d.reasons.join("; ")))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let reply = if errors.is_empty() {
            let reasons: Vec<String> = outcomes.into_iter().flatten().flatten().collect();
            let mut r = error_reply(
                403,
                None,
                self.settings.deny_code,
                &denial_message(&reasons),
                Some(&reasons),
            );
            r.log = log;
            r
        } else {
            LocalReply {
                status: 200,
                headers: json_headers(),
                body: format!("[{}]", errors.join(",")).into_bytes(),
                log,
            }
        };
        (BodyAction::Reply(reply), decided)
    }
}

/// Which records a message touches: its session (`s:<Mcp-Session-Id>`, or
/// for session-less traffic such as 2026-07-28, the principal's) and its
/// principal's (`p:<principal>`, for per-identity rates and kills).
pub struct StateKeys {
    session_id: Option<String>,
    session: Option<String>,
    principal: Option<String>,
    principal_raw: Option<String>,
}

impl StateKeys {
    fn new(http: &HttpRequest, routing: &routing::Routing) -> StateKeys {
        let principal_raw = http.attributes.principal();
        let principal = principal_raw.as_ref().map(|p| format!("p:{p}"));
        let session_id = routing.session_id.clone();
        let session = session_id
            .as_ref()
            .map(|s| format!("s:{s}"))
            .or_else(|| principal.clone());
        StateKeys {
            session_id,
            session,
            principal,
            principal_raw,
        }
    }

    /// Session binding applies: a session id is presented (a session bound
    /// to a principal refuses anyone else, including no one).
    fn bindable(&self) -> bool {
        self.session_id.is_some()
    }

    fn principal_shown(&self) -> String {
        self.principal_raw
            .clone()
            .unwrap_or_else(|| "an unauthenticated caller".into())
    }

    /// `input.session.id`: the Mcp-Session-Id, else the principal.
    fn session_display(&self) -> Option<String> {
        self.session_id
            .clone()
            .or_else(|| self.principal_raw.clone())
    }
}

/// Headers a client may not send: the `x-mcp-ratelimit-*` headers carry the
/// policy's rate-limit descriptor to Envoy's rate-limit filters, so a
/// client's own must not reach them (it could spend another principal's
/// budget). The filter removes these from every request before deciding.
pub fn reserved_headers(http: &HttpRequest) -> Vec<String> {
    http.headers
        .iter()
        .filter(|(k, _)| {
            k.len() >= crate::policy::engine::RATE_LIMIT_HEADER_PREFIX.len()
                && k.as_bytes()
                    .iter()
                    .zip(crate::policy::engine::RATE_LIMIT_HEADER_PREFIX.as_bytes())
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// The upstream a request goes to: its cluster, else its authority.
/// A GET that resumes an interrupted stream of a session (`Last-Event-ID`):
/// the requests that stream left unanswered ([`crate::state::resume`]).
fn resumed_origins(
    http: &HttpRequest,
    routing: &routing::Routing,
    store: Option<(&dyn Store, u64)>,
) -> Vec<input::Origin> {
    let (Some((store, now)), Some(_), Some(session)) = (
        store,
        http.header("last-event-id"),
        routing.session_id.as_deref(),
    ) else {
        return Vec::new();
    };
    crate::state::resume::recall(store, now, &upstream_of(http), session)
}

pub fn upstream_of(http: &HttpRequest) -> String {
    http.attributes
        .cluster_name
        .clone()
        .unwrap_or_else(|| http.host.clone())
}

fn decided_for(m: &Message<'_>, o: &Outcome) -> Decided {
    let method = m.method().unwrap_or(m.kind.as_str()).to_string();
    let p = &m.params;
    let (tool, prompt, resource) = match m.method() {
        Some("tools/call") => (m.routing_name().map(str::to_string), None, None),
        Some("prompts/get") => (None, m.routing_name().map(str::to_string), None),
        Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
            (None, None, m.routing_name().map(str::to_string))
        }
        _ => (None, None, None),
    };
    let args = &p[&crate::mcp::keys::key("arguments")];
    let (arguments_digest, arguments_revealed) = match (m.method(), args) {
        (Some("tools/call" | "prompts/get"), a) => {
            let empty = Value::new_object();
            let a = if *a == Value::Undefined { &empty } else { a };
            (audit::digest(a), audit::revealed(a, &o.result.reveal))
        }
        _ => (None, None),
    };
    Decided {
        method: method.clone(),
        allowed: o.allowed,
        reasons: o.reasons.clone(),
        labels: o.result.labels.clone(),
        core: o.core,
        record: audit::Record {
            kill: o.result.kill.as_ref().map(|k| k.reason.clone()),
            clear_kill: o.result.clear_kill,
            kind: m.kind.as_str().into(),
            method,
            tool,
            prompt,
            resource,
            allowed: o.allowed,
            reasons: o.reasons.clone(),
            dry_run: o.result.dry_run.clone(),
            labels: o.result.labels.clone(),
            arguments_digest,
            arguments_revealed,
            protocol_version: m.meta_protocol_version().map(str::to_string),
            eval_us: o.eval_us,
            ..audit::Record::default()
        },
    }
}

fn transport_decided(
    http: &HttpRequest,
    allowed: bool,
    reasons: Vec<String>,
    labels: Vec<String>,
    eval_us: u64,
    dry_run: &[String],
) -> Decided {
    Decided {
        method: http.method.clone(),
        allowed,
        reasons: reasons.clone(),
        labels: labels.clone(),
        core: false,
        record: audit::Record {
            kind: "transport".into(),
            method: http.method.clone(),
            allowed,
            reasons,
            labels,
            dry_run: dry_run.to_vec(),
            eval_us,
            ..audit::Record::default()
        },
    }
}

/// The fields every record of a request shares.
pub(crate) fn fill_request_fields(r: &mut audit::Record, http: &HttpRequest) {
    let a = &http.attributes;
    r.subject = a.jwt_claims.as_ref().and_then(|c| {
        c[&crate::mcp::keys::key("sub")]
            .as_string()
            .ok()
            .map(|s| s.to_string())
    });
    r.principal = a.peer_principal.clone();
    r.session_id = http
        .header("mcp-session-id")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    if r.protocol_version.is_none() {
        r.protocol_version = http
            .header("mcp-protocol-version")
            .map(|v| String::from_utf8_lossy(v).into_owned());
    }
    r.upstream = Some(upstream_of(http));
}

fn list(indices: &[usize]) -> String {
    indices
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn subject_suffix(m: &Message<'_>) -> String {
    match m.routing_name() {
        Some(n) => format!(" {n:?}"),
        None => String::new(),
    }
}

/// The error message a client (and the model behind it) reads.
pub fn denial_message(reasons: &[String]) -> String {
    format!("Denied by policy: {}", reasons.join("; "))
}

fn check_encoding(http: &HttpRequest) -> Option<LocalReply> {
    for (k, v) in &http.headers {
        if !k.eq_ignore_ascii_case("content-encoding") {
            continue;
        }
        let v = String::from_utf8_lossy(v);
        let bad = v
            .split(',')
            .map(str::trim)
            .find(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
        if let Some(enc) = bad {
            return Some(error_reply(
                415,
                None,
                INVALID_REQUEST,
                &format!(
                    "request Content-Encoding '{enc}' is not accepted: the policy must read the body as sent (send it uncompressed)"
                ),
                None,
            ));
        }
    }
    None
}

/// A GET, DELETE or any other non-POST request that carries a body: the
/// MCP servers never read that body as a message, so it is not decided as
/// one (it would decide a DELETE by a `ping` it carries).
fn body_on_non_post(http: &HttpRequest) -> LocalReply {
    let method = &http.method;
    let mut reply = error_reply(
        400,
        None,
        INVALID_REQUEST,
        &format!(
            "a {method} request cannot carry a body: MCP messages are sent with POST; the request was not forwarded"
        ),
        None,
    );
    reply.log = format!(
        "refused {method} {}: a body on a {method} request",
        http.path
    );
    reply
}

/// A non-POST request that may carry a body of unknown length, with
/// `hold_headers: false`: its headers cannot be held until the body is in.
fn unheld_non_post(http: &HttpRequest) -> LocalReply {
    let method = &http.method;
    let mut reply = error_reply(
        400,
        None,
        INVALID_REQUEST,
        &format!(
            "a {method} request must end with its headers (or declare Content-Length: 0): with hold_headers: false a body of unknown length cannot be checked before the server acts; the request was not forwarded"
        ),
        None,
    );
    reply.log = format!(
        "refused {method} {}: a body of unknown length with hold_headers: false",
        http.path
    );
    reply
}

fn check_content_type(http: &HttpRequest) -> Option<LocalReply> {
    let ct = http.header("content-type").map(String::from_utf8_lossy);
    let media = ct.as_deref().map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match media.as_deref() {
        Some("application/json") => None,
        other => Some(error_reply(
            415,
            None,
            INVALID_REQUEST,
            &match other {
                None => "request has no Content-Type: MCP messages must be sent as application/json".to_string(),
                Some(t) => format!("request Content-Type '{t}' is not accepted: MCP messages must be sent as application/json"),
            },
            None,
        )),
    }
}

fn parse_error_reply(e: &ParseError) -> LocalReply {
    match e {
        ParseError::NotJson(_) => error_reply(400, None, PARSE_ERROR, &e.to_string(), None),
        ParseError::Invalid(inv) => error_reply(
            400,
            inv.id_raw.as_deref(),
            INVALID_REQUEST,
            &e.to_string(),
            None,
        ),
        ParseError::EmptyBatch => error_reply(400, None, INVALID_REQUEST, &e.to_string(), None),
    }
}

fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json".into())]
}

/// A denied tools/call answered as a tool result the model can read:
/// `{"result":{"content":[{"type":"text","text":…}],"isError":true}}`, with
/// `"resultType":"complete"` for protocol versions that require it
/// (2026-07-28 on).
pub fn tool_error_reply(status: u32, id_raw: &str, message: &str, modern: bool) -> LocalReply {
    LocalReply {
        status,
        headers: json_headers(),
        body: tool_error_body(id_raw, message, modern).into_bytes(),
        log: message.to_string(),
    }
}

/// The JSON-RPC response of [`tool_error_reply`].
pub fn tool_error_body(id_raw: &str, message: &str, modern: bool) -> String {
    let mut result = serde_json::json!({
        "content": [{"type": "text", "text": message}],
        "isError": true,
    });
    if let (true, Some(o)) = (modern, result.as_object_mut()) {
        o.insert("resultType".into(), serde_json::Value::from("complete"));
    }
    format!(r#"{{"jsonrpc":"2.0","id":{id_raw},"result":{result}}}"#)
}

/// A local reply carrying one JSON-RPC error response.
pub fn error_reply(
    status: u32,
    id_raw: Option<&str>,
    code: i64,
    message: &str,
    reasons: Option<&[String]>,
) -> LocalReply {
    LocalReply {
        status,
        headers: json_headers(),
        body: error_object(id_raw, code, message, reasons).into_bytes(),
        log: message.to_string(),
    }
}

/// `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…,"data":{"reasons":[…]}}}`
/// with the id copied byte for byte from the request (or `null`).
pub fn error_object(
    id_raw: Option<&str>,
    code: i64,
    message: &str,
    reasons: Option<&[String]>,
) -> String {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), serde_json::Value::from(code));
    error.insert("message".into(), serde_json::Value::from(message));
    if let Some(r) = reasons {
        error.insert("data".into(), serde_json::json!({ "reasons": r }));
    }
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{}}}"#,
        id_raw.unwrap_or("null"),
        serde_json::Value::Object(error)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(policy: &str) -> Plugin {
        let cfg =
            serde_json::json!({"policy": {"modules": {"p.rego": policy}}, "max_body_bytes": 2048});
        Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap())
    }

    const POLICY: &str = r#"package mcp
default allow := false
allow if input.mcp
allow if input.http.method == "GET"
deny contains "tool forbidden" if input.mcp.tool.name == "rm"
deny contains "no pings" if input.mcp.method == "ping"
"#;

    fn req(method: &str, extra: &[(&str, &str)]) -> HttpRequest {
        let mut h: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), method.as_bytes().to_vec()),
            (":path".into(), b"/mcp".to_vec()),
            (":authority".into(), b"127.0.0.1".to_vec()),
        ];
        for (k, v) in extra {
            h.push((k.to_string(), v.as_bytes().to_vec()));
        }
        HttpRequest::from_headers(h)
    }

    fn post() -> HttpRequest {
        req("POST", &[("content-type", "application/json")])
    }

    #[test]
    fn passthrough_paths_are_exact_and_everything_else_is_decided() {
        let cfg = serde_json::json!({"policy": {"modules": {"p.rego": POLICY}},
            "passthrough_paths": ["/token", "/register"]});
        let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
        let at = |path: &str| {
            HttpRequest::from_headers(vec![
                (":method".into(), b"POST".to_vec()),
                (":path".into(), path.as_bytes().to_vec()),
                (":authority".into(), b"127.0.0.1".to_vec()),
                (
                    "content-type".into(),
                    b"application/x-www-form-urlencoded".to_vec(),
                ),
            ])
        };
        for path in ["/token", "/token?x=1", "/register"] {
            let (action, decided) = p.on_request_headers_with(&at(path), false, None);
            assert!(
                matches!(action, HeadersAction::Forward(ref f) if f.response.is_none()),
                "{path}: {action:?}"
            );
            assert!(decided.is_empty(), "{path}: not decided, not recorded");
        }
        // Any other spelling, and the MCP endpoint, are decided as usual.
        for path in ["/token/", "/TOKEN", "//token", "/tok%65n", "/mcp"] {
            let (action, _) = p.on_request_headers_with(&at(path), false, None);
            assert!(
                matches!(action, HeadersAction::Reply(ref r) if r.status == 415),
                "{path}: {action:?}"
            );
        }
        for bad in [
            serde_json::json!(["token"]),
            serde_json::json!(["/t?x"]),
            serde_json::json!("/token"),
        ] {
            let cfg = serde_json::json!({"policy": {"modules": {"p.rego": POLICY}},
                "passthrough_paths": bad});
            assert!(
                Config::from_json(cfg.to_string().as_bytes()).is_err(),
                "{bad}"
            );
        }
    }

    fn body_json(r: &LocalReply) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    fn reply(a: BodyAction) -> LocalReply {
        match a {
            BodyAction::Reply(r) => r,
            BodyAction::Forward(_) => panic!("expected a reply"),
        }
    }

    #[test]
    fn allowed_request_is_forwarded() {
        let mut p = plugin(POLICY);
        assert_eq!(p.on_request_headers(&post(), false), HeadersAction::Inspect);
        let (a, d) = p.on_request_body(
            &post(),
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls"}}"#,
        );
        let BodyAction::Forward(f) = a else {
            panic!("forwarded")
        };
        assert!(f.body.is_none() && f.request_headers.is_empty());
        assert_eq!(f.response_headers.len(), 1);
        assert_eq!(f.response_headers[0].0, DECISION_ID_HEADER);
        assert_eq!(d[0].record.decision_id, f.response_headers[0].1);
        assert!(d[0].allowed);
    }

    #[test]
    fn denied_request_gets_200_and_error_with_id() {
        let mut p = plugin(POLICY);
        let (a, d) = p.on_request_body(
            &post(),
            br#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"rm"}}"#,
        );
        assert!(!d[0].allowed);
        let r = reply(a);
        assert_eq!(r.status, 200);
        let j = body_json(&r);
        assert_eq!(j["id"], "abc");
        assert_eq!(j["error"]["code"], -31403);
        assert_eq!(j["error"]["message"], "Denied by policy: tool forbidden");
        assert_eq!(j["error"]["data"]["reasons"][0], "tool forbidden");
        assert!(r.log.contains("\"rm\""), "{}", r.log);
    }

    #[test]
    fn big_ids_are_echoed_exactly() {
        let mut p = plugin(POLICY);
        let (a, _) = p.on_request_body(
            &post(),
            br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#,
        );
        let r = reply(a);
        assert!(String::from_utf8_lossy(&r.body).contains(r#""id":123456789012345678901234567890"#));
    }

    #[test]
    fn denied_notification_gets_403() {
        let mut p = plugin("package mcp\nallow if input.mcp.kind == \"request\"\n");
        let (a, _) = p.on_request_body(
            &post(),
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        );
        let r = reply(a);
        assert_eq!(r.status, 403);
        assert_eq!(body_json(&r)["id"], serde_json::Value::Null);
        assert!(body_json(&r)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no policy rule allows"));
    }

    #[test]
    fn transport_requests_are_decided_by_the_policy() {
        let mut p = plugin(POLICY);
        assert!(
            matches!(p.on_request_headers(&req("GET", &[]), true), HeadersAction::Forward(ref f) if f.body.is_none())
        );
        match p.on_request_headers(&req("DELETE", &[]), true) {
            HeadersAction::Reply(r) => assert_eq!(r.status, 403),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_non_post_request_with_a_body_is_refused_not_decided_as_its_body() {
        // The policy denies a DELETE without a body and allows any message.
        let policy = "package mcp\ndefault allow := false\nallow if input.mcp\nallow if input.http.method == \"GET\"\n";
        let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let json = ("content-type", "application/json");
        for audit in [false, true] {
            let mut p = plugin(policy);
            if audit {
                p.settings.mode = Mode::Audit;
            }
            // Declared length: refused at the headers.
            for method in ["DELETE", "GET", "PUT", "PATCH"] {
                let len = ping.len().to_string();
                let (action, decided) = p.on_request_headers_with(
                    &req(method, &[json, ("content-length", &len)]),
                    false,
                    None,
                );
                let HeadersAction::Reply(r) = action else {
                    panic!("{method}: {action:?}")
                };
                assert_eq!(r.status, 400, "{method}");
                let v = body_json(&r);
                assert_eq!(v["error"]["code"], -32600);
                assert_eq!(
                    v["error"]["message"],
                    format!("a {method} request cannot carry a body: MCP messages are sent with POST; the request was not forwarded")
                );
                assert_eq!(decided.len(), 1);
                assert!(!decided[0].allowed);
            }
            // Length unknown (chunked, HTTP/2): the body decides.
            let delete = req("DELETE", &[json]);
            assert_eq!(
                p.on_request_headers_with(&delete, false, None).0,
                HeadersAction::Inspect
            );
            let (action, decided) = p.on_request_body_with(&delete, ping, None);
            let BodyAction::Reply(r) = action else {
                panic!("{action:?}")
            };
            assert_eq!(r.status, 400);
            assert!(body_json(&r)["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("a DELETE request cannot carry a body"));
            assert_eq!(decided.len(), 1);
            assert!(!decided[0].allowed);
            // Without a Content-Type, too (not 415: the body is the fault).
            let get = req("GET", &[]);
            assert_eq!(
                p.on_request_headers_with(&get, false, None).0,
                HeadersAction::Inspect
            );
            assert!(matches!(
                p.on_request_body_with(&get, b"x", None).0,
                BodyAction::Reply(ref r) if r.status == 400
            ));
            // An empty body keeps it a transport request, decided as such:
            // the DELETE is denied (403; forwarded in audit mode), the GET
            // allowed.
            let (action, decided) = p.on_request_body_with(&delete, b"", None);
            match (&action, audit) {
                (BodyAction::Reply(r), false) => assert_eq!(r.status, 403),
                (BodyAction::Forward(_), true) => {}
                other => panic!("{other:?}"),
            }
            assert_eq!(decided[0].record.kind, "transport");
            assert_eq!(decided[0].record.method, "DELETE");
            assert!(!decided[0].allowed);
            assert!(matches!(
                p.on_request_body_with(&get, b"", None).0,
                BodyAction::Forward(_)
            ));
            // Content-Length: 0 is decided at the headers.
            let zero = ("content-length", "0");
            assert!(matches!(
                p.on_request_headers_with(&req("GET", &[zero]), false, None)
                    .0,
                HeadersAction::Forward(_)
            ));
            match p
                .on_request_headers_with(&req("DELETE", &[zero]), false, None)
                .0
            {
                HeadersAction::Reply(r) => assert!(!audit && r.status == 403),
                HeadersAction::Forward(_) => assert!(audit),
                other => panic!("{other:?}"),
            }
            // A POST is a message, as before.
            let (action, _) = p.on_request_body_with(&post(), ping, None);
            assert!(matches!(action, BodyAction::Forward(_)));
        }
        // hold_headers: false lets headers go before the body: a DELETE of
        // unknown length would reach the server (which acts on the headers
        // alone) before its body is checked, so it is refused at once.
        let mut p = plugin(policy);
        p.settings.hold_headers = false;
        match p.on_request_headers(&req("DELETE", &[json]), false) {
            HeadersAction::Reply(r) => {
                assert_eq!(r.status, 400);
                assert!(body_json(&r)["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("hold_headers: false"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p.on_request_headers(&req("GET", &[("content-length", "0")]), false),
            HeadersAction::Forward(_)
        ));
    }

    #[test]
    fn transport_checks() {
        let mut p = plugin(POLICY);
        let status = |a: HeadersAction| match a {
            HeadersAction::Reply(r) => r.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            status(p.on_request_headers(&req("POST", &[("content-type", "text/plain")]), false)),
            415
        );
        assert_eq!(status(p.on_request_headers(&req("POST", &[]), false)), 415);
        assert_eq!(
            status(p.on_request_headers(
                &req(
                    "POST",
                    &[
                        ("content-type", "application/json"),
                        ("content-encoding", "gzip")
                    ]
                ),
                false
            )),
            415
        );
        assert_eq!(
            status(p.on_request_headers(
                &req(
                    "POST",
                    &[
                        ("content-type", "application/json"),
                        ("content-length", "4096")
                    ]
                ),
                false
            )),
            413
        );
        assert_eq!(
            p.on_request_headers(
                &req(
                    "POST",
                    &[
                        ("content-type", "Application/JSON; charset=utf-8"),
                        ("content-encoding", "identity")
                    ]
                ),
                false
            ),
            HeadersAction::Inspect
        );
        assert!(p.check_body_size(2049).is_some());
        assert!(p.check_body_size(2048).is_none());
    }

    #[test]
    fn parse_errors_and_header_mismatch() {
        let mut p = plugin(POLICY);
        let r = reply(p.on_request_body(&post(), b"{nope").0);
        assert_eq!(
            (r.status, body_json(&r)["error"]["code"].as_i64()),
            (400, Some(-32700))
        );
        let r = reply(p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":5}"#).0);
        assert_eq!(
            (r.status, body_json(&r)["error"]["code"].as_i64()),
            (400, Some(-32600))
        );
        assert_eq!(body_json(&r)["id"], 5);
        let h = req(
            "POST",
            &[
                ("content-type", "application/json"),
                ("mcp-method", "tools/list"),
            ],
        );
        let r = reply(
            p.on_request_body(
                &h,
                br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"ls"}}"#,
            )
            .0,
        );
        assert_eq!(
            (r.status, body_json(&r)["error"]["code"].as_i64()),
            (400, Some(-32020))
        );
        assert_eq!(body_json(&r)["id"], 9);
    }

    #[test]
    fn batch_with_a_denied_element_is_not_forwarded() {
        let mut p = plugin(POLICY);
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls"}},
                        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm"}},
                        {"jsonrpc":"2.0","method":"notifications/initialized"},
                        {"jsonrpc":"2.0","id":3,"method":"ping"}]"#;
        let (a, decided) = p.on_request_body(&post(), body);
        assert_eq!(decided.len(), 4);
        let r = reply(a);
        assert_eq!(r.status, 200);
        let j = body_json(&r);
        let arr = j.as_array().unwrap();
        assert_eq!(arr.len(), 3, "{j}");
        assert_eq!(arr[0]["id"], 1);
        assert!(arr[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Not forwarded"));
        assert_eq!(arr[1]["id"], 2);
        assert_eq!(
            arr[1]["error"]["message"],
            "Denied by policy: tool forbidden"
        );
        assert_eq!(arr[2]["id"], 3);
        assert_eq!(arr[2]["error"]["message"], "Denied by policy: no pings");
    }

    const RATE_LIMITED: &str = r#"package mcp
allow := true
rate_limit := {"entries": {"principal": "p1", "tool": input.mcp.tool.name}, "cost": 2} if input.mcp.method == "tools/call"
"#;

    #[test]
    fn rate_limit_descriptor_becomes_request_headers() {
        let mut p = plugin(RATE_LIMITED);
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query"}}"#;
        let BodyAction::Forward(f) = p.on_request_body(&post(), call).0 else {
            panic!("forwarded")
        };
        assert_eq!(
            f.request_headers,
            vec![
                ("x-mcp-ratelimit-principal".to_string(), "p1".to_string()),
                ("x-mcp-ratelimit-tool".to_string(), "query".to_string()),
                ("x-mcp-ratelimit-cost".to_string(), "2".to_string()),
            ]
        );
        // A batch: one descriptor, the costs summed.
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"other"}},{"jsonrpc":"2.0","id":3,"method":"ping"}]"#;
        let BodyAction::Forward(f) = p.on_request_body(&post(), batch).0 else {
            panic!("forwarded")
        };
        assert!(f
            .request_headers
            .contains(&("x-mcp-ratelimit-tool".to_string(), "query".to_string())));
        assert!(f
            .request_headers
            .contains(&("x-mcp-ratelimit-cost".to_string(), "4".to_string())));
        // Without held headers it cannot be carried out: denied.
        let mut p = plugin(RATE_LIMITED);
        p.settings.hold_headers = false;
        assert!(matches!(
            p.on_request_body(&post(), call).0,
            BodyAction::Reply(_)
        ));
    }

    #[test]
    fn client_rate_limit_headers_are_reserved() {
        let http = req(
            "POST",
            &[
                ("x-mcp-ratelimit-principal", "victim"),
                ("X-MCP-RateLimit-Cost", "1000"),
                ("x-mcp-other", "ok"),
            ],
        );
        assert_eq!(
            reserved_headers(&http),
            vec![
                "x-mcp-ratelimit-principal".to_string(),
                "X-MCP-RateLimit-Cost".to_string()
            ]
        );
    }

    #[test]
    fn allowed_batch_is_forwarded() {
        let mut p = plugin(POLICY);
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        assert!(
            matches!(p.on_request_body(&post(), body).0, BodyAction::Forward(ref f) if f.body.is_none())
        );
    }

    #[test]
    fn batch_of_only_notifications_denied_gets_403() {
        let mut p = plugin("package mcp\nallow := false\n");
        let body = br#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        assert_eq!(reply(p.on_request_body(&post(), body).0).status, 403);
    }

    const FULL: &str = r#"package mcp
import rego.v1
default allow := true
deny contains "no deletes" if input.mcp.tool.name == "delete_record"
denial := {"as": "tool_result", "message": "deleting is not allowed here; ask an operator"} if input.mcp.tool.name == "delete_record"
deny contains "no pings" if input.mcp.method == "ping"
denial := {"code": 4003, "http_status": 403} if input.mcp.method == "ping"
rewrite["limit"] := 100 if input.mcp.tool.arguments.limit > 100
request_headers["x-mcp-tool"] := input.mcp.tool.name
response_headers["x-policy"] := "full"
labels contains "query" if input.mcp.tool.name == "query"
"#;

    #[test]
    fn denial_as_a_tool_result() {
        let mut p = plugin(FULL);
        let r = reply(p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"delete_record"}}"#).0);
        assert_eq!(r.status, 200);
        let j = body_json(&r);
        assert_eq!(j["id"], 8);
        assert_eq!(j["result"]["isError"], true);
        assert_eq!(
            j["result"]["content"][0]["text"],
            "deleting is not allowed here; ask an operator"
        );
        assert!(r
            .headers
            .contains(&("x-policy".to_string(), "full".to_string())));
    }

    #[test]
    fn denial_with_code_and_status() {
        let mut p = plugin(FULL);
        let r = reply(
            p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#)
                .0,
        );
        assert_eq!(r.status, 403);
        let j = body_json(&r);
        assert_eq!(
            (j["id"].as_i64(), j["error"]["code"].as_i64()),
            (Some(9), Some(4003))
        );
        assert_eq!(j["error"]["message"], "Denied by policy: no pings");
    }

    #[test]
    fn rewrite_headers_and_labels_on_allowed_calls() {
        let mut p = plugin(FULL);
        let (a, d) = p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"query","arguments":{"limit":5000,"q":"x"}}}"#);
        let BodyAction::Forward(f) = a else {
            panic!("forwarded")
        };
        let body: serde_json::Value = serde_json::from_slice(f.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["params"]["arguments"]["limit"], 100);
        assert_eq!(body["params"]["arguments"]["q"], "x");
        assert_eq!(
            f.request_headers,
            vec![("x-mcp-tool".to_string(), "query".to_string())]
        );
        assert_eq!(
            f.response_headers[0],
            ("x-policy".to_string(), "full".to_string())
        );
        assert_eq!(f.response_headers[1].0, DECISION_ID_HEADER);
        assert_eq!(d[0].labels, vec!["query".to_string()]);
        // Within the limit: no rewrite, the body goes as it came.
        let (a, _) = p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"query","arguments":{"limit":5}}}"#);
        let BodyAction::Forward(f) = a else {
            panic!("forwarded")
        };
        assert!(f.body.is_none());
    }

    #[test]
    fn changes_need_held_headers() {
        let cfg =
            serde_json::json!({"policy": {"modules": {"p.rego": FULL}}, "hold_headers": false});
        let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
        let r = reply(p.on_request_body(&post(), br#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"query","arguments":{"limit":5}}}"#).0);
        assert!(body_json(&r)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hold_headers"));
    }

    fn with_identity(sub: &str, session: Option<&str>) -> HttpRequest {
        let mut h = vec![("content-type", "application/json")];
        if let Some(s) = session {
            h.push(("mcp-session-id", s));
        }
        let mut r = req("POST", &h);
        r.attributes.jwt_claims =
            Some(Value::from_json_str(&format!(r#"{{"sub":"{sub}"}}"#)).unwrap());
        r
    }

    fn call_body(id: u32, tool: &str) -> Vec<u8> {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}"}}}}"#
        )
        .into_bytes()
    }

    fn run(
        p: &mut Plugin,
        store: &crate::state::store::MemoryStore,
        now: u64,
        http: &HttpRequest,
        body: &[u8],
    ) -> Decided {
        p.on_request_body_with(http, body, Some((store, now)))
            .1
            .remove(0)
    }

    const FLOWS: &str = r#"package mcp
import rego.v1
default allow := true
labels contains "sensitive_read" if input.mcp.tool.name == "read_db"
labels contains "external_send" if input.mcp.tool.name == "send_email"
deny contains "no external send after a sensitive read in this session" if {
    "external_send" in labels
    "sensitive_read" in input.session.labels
}
deny contains "too many get_record calls" if input.rate.identity.tools.get_record > 3
kill := "runaway agent" if input.rate.identity.tools.get_record > 5
clear_kill if input.mcp.tool.name == "operator_clear"
"#;

    #[test]
    fn toxic_flow_across_a_session() {
        let mut p = plugin(FLOWS);
        let store = crate::state::store::MemoryStore::default();
        let alice = with_identity("alice", Some("S1"));
        assert!(run(&mut p, &store, 1000, &alice, &call_body(1, "send_email")).allowed);
        assert!(run(&mut p, &store, 1001, &alice, &call_body(2, "read_db")).allowed);
        let d = run(&mut p, &store, 1002, &alice, &call_body(3, "send_email"));
        assert!(!d.allowed);
        assert_eq!(
            d.reasons,
            vec!["no external send after a sensitive read in this session".to_string()]
        );
        // Another session of the same person starts clean.
        let other = with_identity("alice", Some("S2"));
        assert!(run(&mut p, &store, 1003, &other, &call_body(4, "send_email")).allowed);
    }

    #[test]
    fn sessions_are_bound_to_their_principal() {
        let mut p = plugin(FLOWS);
        let store = crate::state::store::MemoryStore::default();
        assert!(
            run(
                &mut p,
                &store,
                10,
                &with_identity("alice", Some("S9")),
                &call_body(1, "echo")
            )
            .allowed
        );
        let d = run(
            &mut p,
            &store,
            11,
            &with_identity("mallory", Some("S9")),
            &call_body(2, "echo"),
        );
        assert!(!d.allowed);
        assert!(
            d.reasons[0].contains("belongs to another principal"),
            "{:?}",
            d.reasons
        );
        // Binding holds even for a policy that never mentions sessions.
        let mut plain = plugin("package mcp\nallow := true\n");
        assert!(
            run(
                &mut plain,
                &store,
                12,
                &with_identity("bob", Some("S10")),
                &call_body(3, "echo")
            )
            .allowed
        );
        assert!(
            !run(
                &mut plain,
                &store,
                13,
                &with_identity("eve", Some("S10")),
                &call_body(4, "echo")
            )
            .allowed
        );
    }

    #[test]
    fn binding_at_initialize_and_on_transport_requests() {
        let mut p = plugin("package mcp\nallow := true\n");
        let store = crate::state::store::MemoryStore::default();
        let init = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#;
        let (a, _) = p.on_request_body_with(&with_identity("alice", None), init, Some((&store, 1)));
        let BodyAction::Forward(f) = a else {
            panic!("forwarded")
        };
        let principal = f.bind_on_response.expect("bind on response");
        // The server minted S20 for alice; mallory's GET stream on it is refused.
        p.bind_session(&store, 2, "S20", &principal).unwrap();
        let mut get = req("GET", &[("mcp-session-id", "S20")]);
        get.attributes.jwt_claims = Some(Value::from_json_str(r#"{"sub":"mallory"}"#).unwrap());
        match p.on_request_headers_with(&get, true, Some((&store, 3))).0 {
            HeadersAction::Reply(r) => {
                assert_eq!(r.status, 403);
                assert!(String::from_utf8_lossy(&r.body).contains("belongs to another principal"));
            }
            other => panic!("{other:?}"),
        }
        get.attributes.jwt_claims = Some(Value::from_json_str(r#"{"sub":"alice"}"#).unwrap());
        assert!(matches!(
            p.on_request_headers_with(&get, true, Some((&store, 4))).0,
            HeadersAction::Forward(_)
        ));
        // And her first message on the session is hers.
        assert!(
            run(
                &mut p,
                &store,
                5,
                &with_identity("alice", Some("S20")),
                &call_body(1, "echo")
            )
            .allowed
        );
        assert!(
            !run(
                &mut p,
                &store,
                6,
                &with_identity("mallory", Some("S20")),
                &call_body(2, "echo")
            )
            .allowed
        );
    }

    #[test]
    fn a_bound_session_refuses_callers_without_identity_whatever_the_policy() {
        let mut plain = plugin("package mcp\nallow := true\n");
        let store = crate::state::store::MemoryStore::default();
        assert!(
            run(
                &mut plain,
                &store,
                1,
                &with_identity("bob", Some("S30")),
                &call_body(1, "echo")
            )
            .allowed
        );
        let anon = req(
            "POST",
            &[
                ("content-type", "application/json"),
                ("mcp-session-id", "S30"),
            ],
        );
        let d = run(&mut plain, &store, 2, &anon, &call_body(2, "echo"));
        assert!(!d.allowed);
        assert!(
            d.reasons[0].contains("an unauthenticated caller"),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn malformed_routing_headers_on_transport_requests_fail_closed() {
        let mut p = plugin(POLICY);
        let get = req(
            "GET",
            &[
                ("mcp-session-id", "S"),
                ("mcp-method", "a"),
                ("mcp-method", "b"),
            ],
        );
        match p.on_request_headers(&get, true) {
            HeadersAction::Reply(r) => assert_eq!(r.status, 400),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flow_labels_outlive_the_history_window() {
        let cfg = serde_json::json!({"policy": {"modules": {"p.rego": FLOWS}}, "sessions": {"max_calls": 3}});
        let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
        let store = crate::state::store::MemoryStore::default();
        let alice = with_identity("alice", Some("S40"));
        assert!(run(&mut p, &store, 1, &alice, &call_body(1, "read_db")).allowed);
        for i in 0..10 {
            assert!(
                run(
                    &mut p,
                    &store,
                    2 + i,
                    &alice,
                    &call_body(10 + i as u32, "echo")
                )
                .allowed
            );
        }
        assert!(!run(&mut p, &store, 20, &alice, &call_body(30, "send_email")).allowed);
    }

    #[test]
    fn rates_then_kill_then_operator_clear() {
        let mut p = plugin(FLOWS);
        let store = crate::state::store::MemoryStore::default();
        let bot = with_identity("bot", None);
        let mut outcomes = Vec::new();
        for i in 0..7u32 {
            outcomes.push(
                run(
                    &mut p,
                    &store,
                    5000 + u64::from(i),
                    &bot,
                    &call_body(i, "get_record"),
                )
                .allowed,
            );
        }
        assert_eq!(outcomes, [true, true, true, false, false, false, false]);
        // Killed: even an innocent call is refused, with the reason.
        let d = run(&mut p, &store, 5100, &bot, &call_body(10, "echo"));
        assert!(!d.allowed);
        assert_eq!(d.reasons, vec!["session killed: runaway agent".to_string()]);
        // The kill outlives the rate window...
        assert!(!run(&mut p, &store, 200_000, &bot, &call_body(11, "echo")).allowed);
        // ...until the operator's clear lifts it.
        assert!(
            run(
                &mut p,
                &store,
                200_001,
                &bot,
                &call_body(12, "operator_clear")
            )
            .allowed
        );
        assert!(run(&mut p, &store, 200_002, &bot, &call_body(13, "echo")).allowed);
    }

    #[test]
    fn audit_records_and_audit_mode() {
        let policy = r#"package mcp
import rego.v1
default allow := true
deny contains "no deletes" if input.mcp.tool.name == "delete_record"
dry_run contains "would block send_email" if input.mcp.tool.name == "send_email"
reveal contains "id" if input.mcp.tool.name == "delete_record"
"#;
        let mut p = plugin(policy);
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_record","arguments":{"id":7,"secret":"x"}}}"#;
        let (a, d) = p.on_request_body(&post(), body);
        assert!(matches!(a, BodyAction::Reply(_)));
        let r = &d[0].record;
        assert_eq!(
            (r.kind.as_str(), r.tool.as_deref(), r.allowed),
            ("request", Some("delete_record"), false)
        );
        assert_eq!(r.arguments_revealed.as_deref(), Some(r#"{"id":7}"#));
        assert!(r
            .arguments_digest
            .as_deref()
            .unwrap()
            .starts_with("sha256:"));
        let e: serde_json::Value =
            serde_json::from_str(&audit::event(r, 0, "enforce", p.policy.revision(), None))
                .unwrap();
        assert!(e["arguments"]
            .get("revealed")
            .unwrap()
            .get("secret")
            .is_none());
        // Per-rule dry run: recorded, not enforced.
        let (a, d) = p.on_request_body(
            &post(),
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"send_email"}}"#,
        );
        assert!(matches!(a, BodyAction::Forward(_)));
        assert_eq!(
            d[0].record.dry_run,
            vec!["would block send_email".to_string()]
        );
        // Audit mode: decided and recorded as a denial, forwarded unchanged.
        let cfg = serde_json::json!({"policy": {"modules": {"p.rego": policy}}, "mode": "audit"});
        let mut p = Plugin::from(Config::from_json(cfg.to_string().as_bytes()).unwrap());
        let (a, d) = p.on_request_body(&post(), body);
        let BodyAction::Forward(f) = a else {
            panic!("audit mode forwards")
        };
        assert!(f.body.is_none());
        assert!(!d[0].allowed && d[0].reasons == vec!["no deletes".to_string()]);
        // Protocol rejections still apply in audit mode, and are recorded.
        let (a, d) = p.on_request_body(&post(), b"{nope");
        assert!(matches!(a, BodyAction::Reply(_)));
        assert_eq!(d[0].record.kind, "rejected");
        // So does an invalid element in a batch.
        let (a, _) = p.on_request_body(
            &post(),
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2}]"#,
        );
        assert!(matches!(a, BodyAction::Reply(_)));
        // And session binding: a security check, not a policy decision.
        let store = crate::state::store::MemoryStore::default();
        assert!(
            run(
                &mut p,
                &store,
                1,
                &with_identity("ann", Some("S50")),
                &call_body(1, "echo")
            )
            .allowed
        );
        let (a, d) = p.on_request_body_with(
            &with_identity("eve", Some("S50")),
            &call_body(2, "echo"),
            Some((&store, 2)),
        );
        assert!(matches!(a, BodyAction::Reply(_)));
        assert!(d[0].core);
    }

    #[test]
    fn policy_errors_deny() {
        let mut p = plugin("package mcp\nallow if 1 / input.mcp.params.zero == 1\n");
        let r = reply(
            p.on_request_body(
                &post(),
                br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"zero":0}}"#,
            )
            .0,
        );
        let j = body_json(&r);
        assert_eq!(r.status, 200);
        assert_eq!(j["id"], 1);
        assert!(
            j["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Denied by policy"),
            "{j}"
        );
    }
}
