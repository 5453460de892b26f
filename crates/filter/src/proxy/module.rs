//! The module's entry points: the SDK's root and HTTP context traits,
//! each callback handed to [`Root`] or [`Http`] on the [`Abi`] host.

use super::abi::Abi;
use super::host::Action;
use super::http::Http;
use super::root::Root;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{self, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::new(Abi)) });
}}

fn action(a: Action) -> types::Action {
    match a {
        Action::Continue => types::Action::Continue,
        Action::Pause => types::Action::Pause,
    }
}

impl Context for Root<Abi> {
    fn on_done(&mut self) -> bool {
        Root::on_done(self)
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        Root::on_http_call_response(self, token, body);
    }
}

impl RootContext for Root<Abi> {
    fn on_configure(&mut self, _size: usize) -> bool {
        Root::on_configure(self)
    }

    fn on_tick(&mut self) {
        Root::on_tick(self);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Root::create_http_context(self)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Context for Http<Abi> {}

impl HttpContext for Http<Abi> {
    fn on_http_request_headers(
        &mut self,
        num_headers: usize,
        end_of_stream: bool,
    ) -> types::Action {
        action(Http::on_http_request_headers(
            self,
            num_headers,
            end_of_stream,
        ))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> types::Action {
        action(Http::on_http_request_body(self, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, num_trailers: usize) -> types::Action {
        action(Http::on_http_request_trailers(self, num_trailers))
    }

    fn on_http_response_headers(
        &mut self,
        num_headers: usize,
        end_of_stream: bool,
    ) -> types::Action {
        action(Http::on_http_response_headers(
            self,
            num_headers,
            end_of_stream,
        ))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> types::Action {
        action(Http::on_http_response_body(self, body_size, end_of_stream))
    }

    fn on_log(&mut self) {
        Http::on_log(self);
    }
}
