//! The physical floor of any body-inspecting proxy-wasm filter (benchmark
//! scenario (e), bench/README.md): it stops the request at its headers,
//! lets Envoy buffer the whole request body, copies that body into the VM
//! once (what any filter that inspects it must do), and lets the request
//! through unchanged. It does the same for the response body, which
//! mcp-policy reads for tools/list. It decides nothing.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Hold { bytes: 0 }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Hold {
    /// Bytes read from the bodies (kept so the reads are not optimised away).
    bytes: usize,
}

impl Context for Hold {}

impl HttpContext for Hold {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        if let Some(b) = self.get_http_request_body(0, body_size) {
            self.bytes += b.len();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        if let Some(b) = self.get_http_response_body(0, body_size) {
            self.bytes += b.len();
        }
        Action::Continue
    }
}
