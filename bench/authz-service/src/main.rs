//! An Envoy `ext_authz` HTTP authorization service built on mcp-policy's
//! host-independent core: the sidecar design (one more hop, one more
//! process) that benchmark scenario (d) compares the in-proxy module with.
//!
//!     authz-service --config plugin.json --listen 127.0.0.1:9191 [--threads 2]
//!
//! `plugin.json` is the same JSON plugin configuration the module reads.
//! Envoy sends each request's headers and (with `with_request_body`) its
//! body; the service answers 200 to let it through, or the module's own
//! local reply (status, headers, JSON-RPC body) to deny it.

use mcp_policy_core::config::settings::Config;
use mcp_policy_core::policy::input::HttpRequest;
use mcp_policy_core::pipeline::request::{BodyAction, HeadersAction, LocalReply, Plugin};
use std::sync::Arc;

fn main() {
    let mut config = None;
    let mut listen = "127.0.0.1:9191".to_string();
    let mut threads = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next(),
            "--listen" => listen = args.next().unwrap_or(listen),
            "--threads" => threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(threads),
            _ => {
                eprintln!("usage: authz-service --config FILE [--listen ADDR] [--threads N]");
                std::process::exit(2);
            }
        }
    }
    let Some(config) = config else {
        eprintln!("authz-service: --config is required");
        std::process::exit(2);
    };
    let bytes = std::fs::read(&config).unwrap_or_else(|e| {
        eprintln!("authz-service: {config}: {e}");
        std::process::exit(1);
    });
    // Checked once here, so the workers' own loads cannot fail.
    if let Err(e) = Config::from_json(&bytes) {
        eprintln!("authz-service: {config}: {e}");
        std::process::exit(1);
    }
    let server = Arc::new(tiny_http::Server::http(&listen).unwrap_or_else(|e| {
        eprintln!("authz-service: listen {listen}: {e}");
        std::process::exit(1);
    }));
    eprintln!("authz-service: listening on {listen} with {threads} threads");
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let server = Arc::clone(&server);
            let bytes = bytes.clone();
            std::thread::spawn(move || {
                let Ok(config) = Config::from_json(&bytes) else {
                    return;
                };
                // One compiled policy per thread (a Plugin is not shared).
                let mut plugin = Plugin::from(config);
                while let Ok(req) = server.recv() {
                    serve(&mut plugin, req);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

fn serve(plugin: &mut Plugin, mut req: tiny_http::Request) {
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), req.method().as_str().as_bytes().to_vec()),
        (":path".into(), req.url().as_bytes().to_vec()),
        (":scheme".into(), b"http".to_vec()),
    ];
    for h in req.headers() {
        let name = h.field.as_str().as_str().to_ascii_lowercase();
        let name = if name == "host" {
            ":authority".to_string()
        } else {
            name
        };
        headers.push((name, h.value.as_str().as_bytes().to_vec()));
    }
    let http = HttpRequest::from_headers(headers);
    let mut body = Vec::new();
    if req.as_reader().read_to_end(&mut body).is_err() {
        let _ = req.respond(tiny_http::Response::empty(400));
        return;
    }
    let eos = body.is_empty();
    let reply = match plugin.on_request_headers(&http, eos) {
        HeadersAction::Reply(r) => Some(r),
        HeadersAction::Inspect => match plugin.on_request_body(&http, &body).0 {
            BodyAction::Reply(r) => Some(r),
            BodyAction::Forward(_) => None,
        },
        _ => None,
    };
    let _ = match reply {
        None => req.respond(tiny_http::Response::empty(200)),
        Some(r) => req.respond(denial(r)),
    };
}

fn denial(r: LocalReply) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    // ext_authz takes any 200 as "allowed": a denial the module answers with
    // HTTP 200 (a JSON-RPC error) goes back as 403 with the same body.
    let status = if r.status == 200 {
        403
    } else {
        r.status as u16
    };
    let mut resp = tiny_http::Response::from_data(r.body).with_status_code(status);
    for (k, v) in r.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    resp
}
