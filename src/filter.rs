//! The proxy-wasm adapter: the only code that touches the proxy-wasm ABI.
//!
//! - Root context: reads the plugin configuration, compiles the policy once
//!   (a configuration that does not load is refused: `on_configure` returns
//!   false and the reason is logged).
//! - HTTP context: holds the request headers, buffers the whole body, hands
//!   both to the core pipeline, and carries out its answer (forward, or a
//!   local reply). Responses pass through untouched.
//!
//! Host calls per request: one to read all request headers, one to read the
//! body, and one local reply when a message is refused.

use crate::config::Config;
use crate::input::HttpRequest;
use crate::pipeline::{error_reply, BodyAction, Decided, HeadersAction, LocalReply, Plugin};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { plugin: None }) });
}}

fn log(level: LogLevel, message: &str) {
    // Logging is best effort; a failure to log must not affect the request.
    let _ = proxy_wasm::hostcalls::log(level, message);
}

struct Root {
    plugin: Option<Rc<RefCell<Plugin>>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match self.get_plugin_configuration() {
            Some(b) if !b.is_empty() => b,
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
                // In-flight requests keep the plugin they started with.
                self.plugin = Some(Rc::new(RefCell::new(Plugin::from(config))));
                true
            }
            Err(e) => {
                log(LogLevel::Critical, &format!("mcp-policy: {e}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            plugin: self.plugin.clone(),
            request: None,
            state: State::Pass,
            body_size: 0,
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
    request: Option<HttpRequest>,
    state: State,
    /// Bytes of body buffered so far.
    body_size: usize,
}

impl Http {
    fn reply(&mut self, r: LocalReply) -> Action {
        log(LogLevel::Info, &format!("mcp-policy: {} -> HTTP {}", r.log, r.status));
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.send_http_response(r.status, headers, Some(&r.body));
        self.state = State::Replied;
        Action::Pause
    }

    /// The whole body is here (end of stream, or trailers): decide.
    fn decide(&mut self, body_size: usize) -> Action {
        let (Some(plugin), Some(request)) = (self.plugin.clone(), self.request.take()) else {
            return self.reply(unconfigured());
        };
        let body = if body_size == 0 {
            Vec::new()
        } else {
            match self.get_http_request_body(0, body_size) {
                Some(b) => b,
                None => {
                    return self.reply(error_reply(
                        500,
                        None,
                        crate::pipeline::INVALID_REQUEST,
                        "mcp-policy could not read the request body; the request was not forwarded",
                        None,
                    ))
                }
            }
        };
        let (action, decided) = match plugin.try_borrow_mut() {
            Ok(mut p) => p.on_request_body(&request, &body),
            Err(_) => return self.reply(unconfigured()),
        };
        log_allowed(&decided);
        match action {
            BodyAction::Forward => {
                self.state = State::Pass;
                Action::Continue
            }
            BodyAction::Reply(r) => self.reply(r),
        }
    }
}

fn log_allowed(decided: &[Decided]) {
    for d in decided.iter().filter(|d| d.allowed) {
        log(LogLevel::Debug, &format!("mcp-policy: allowed {}", d.method));
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
        let request = HttpRequest::from_headers(self.get_http_request_headers_bytes());
        let action = match plugin.try_borrow_mut() {
            Ok(mut p) => p.on_request_headers(&request, end_of_stream),
            Err(_) => return self.reply(unconfigured()),
        };
        match action {
            HeadersAction::Forward => Action::Continue,
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
                let hold = plugin.try_borrow().map(|p| p.settings.hold_headers).unwrap_or(true);
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
        let too_large = self
            .plugin
            .as_ref()
            .and_then(|p| p.try_borrow().ok().and_then(|p| p.check_body_size(body_size)));
        if let Some(r) = too_large {
            return self.reply(r);
        }
        if !end_of_stream {
            // Keep buffering; the whole body is decided at once.
            return Action::Pause;
        }
        self.decide(body_size)
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
