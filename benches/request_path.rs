//! Native micro-benchmarks of the request path, stage by stage: parse,
//! policy input, policy evaluation, and the whole pipeline for one
//! tools/call of about 1 KiB under the shipped default policy.
//!
//!     cargo bench --bench request_path

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mcp_policy::config::Config;
use mcp_policy::input::{self, HttpRequest};
use mcp_policy::mcp::{self, Body};
use mcp_policy::pipeline::Plugin;
use mcp_policy::routing;

fn default_plugin() -> Plugin {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let source = std::fs::read_to_string(dir.join("default.rego")).expect("default policy");
    let cfg = serde_json::json!({"policy": {"modules": {"default.rego": source}}});
    Plugin::from(Config::from_json(cfg.to_string().as_bytes()).expect("loads"))
}

fn request() -> HttpRequest {
    let mut h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"127.0.0.1:10000".to_vec()),
        (":scheme".into(), b"http".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        (
            "accept".into(),
            b"application/json, text/event-stream".to_vec(),
        ),
        ("mcp-protocol-version".into(), b"2026-07-28".to_vec()),
        ("mcp-method".into(), b"tools/call".to_vec()),
        ("mcp-name".into(), b"read_file".to_vec()),
        ("user-agent".into(), b"python-httpx2/2.16.2".to_vec()),
    ];
    h.push((
        "x-request-id".into(),
        b"3f1c2e4a-0b5d-4e7f-9a8b-1c2d3e4f5a6b".to_vec(),
    ));
    HttpRequest::from_headers(h)
}

fn body() -> Vec<u8> {
    let filler = "lorem ipsum dolor sit amet ".repeat(28);
    serde_json::json!({
        "jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {
            "name": "read_file",
            "arguments": {"path": "/workspace/src/main.rs", "encoding": "utf-8", "note": filler},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    })
    .to_string()
    .into_bytes()
}

fn stages(c: &mut Criterion) {
    let http = request();
    let body = body();
    let mut plugin = default_plugin();
    let mut g = c.benchmark_group("tools_call_1k");
    g.throughput(Throughput::Bytes(body.len() as u64));

    g.bench_function("parse", |b| {
        b.iter(|| black_box(mcp::parse(black_box(&body)).is_ok()))
    });

    let routing = routing::read(&http.headers).expect("headers");
    g.bench_function("routing_check", |b| {
        let parsed = mcp::parse(&body).expect("parses");
        b.iter(|| {
            black_box(routing::read(&http.headers).and_then(|r| routing::check(&r, &parsed)))
                .is_ok()
        })
    });

    g.bench_function("input_build", |b| {
        let parsed = mcp::parse(&body).expect("parses");
        let Body::Single(m) = &parsed else {
            unreachable!()
        };
        b.iter(|| {
            let shared = input::request_values(&http);
            black_box(input::for_message(&shared, &routing, m, None))
        })
    });

    g.bench_function("evaluate", |b| {
        let parsed = mcp::parse(&body).expect("parses");
        let Body::Single(m) = &parsed else {
            unreachable!()
        };
        let value = input::for_message(&input::request_values(&http), &routing, m, None);
        b.iter(|| black_box(plugin.policy.evaluate(value.clone()).is_ok()))
    });

    g.bench_function("whole_request", |b| {
        b.iter(|| black_box(plugin.on_request_body(&http, black_box(&body)).1.len()))
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
