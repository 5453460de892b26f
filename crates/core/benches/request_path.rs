//! Native micro-benchmarks of the request path (issue 8; `make bench` runs
//! them and reports them, bench/README.md):
//!
//! - `stages`: parse, routing check, policy input, for one tools/call of
//!   about 1 KiB under the shipped default policy;
//! - `decision`: evaluation alone and the whole request
//!   (`Plugin::on_request_body`) for the default policy, a realistic policy
//!   of about 20 rules (bench/policies/realistic.rego) and a generated
//!   1,000-rule policy, each on the RVM and on the interpreter;
//! - `rules`: the whole request against generated policies of 10 to 1,000
//!   rules (RVM);
//! - `body_size`: the whole request for bodies of 1 KiB to 1 MiB;
//! - `tools_list`: learning the definitions of a tools/list response of 10
//!   to 1,000 tools (what the filter does with the upstream's answer);
//! - `history`: the whole request with session state, for a policy that
//!   reads the session's history, at history lengths of 1 to 1,024.
//!
//!     cargo bench --bench request_path [-- FILTER]
// Benchmarks and examples may unwrap and index: the data-path lints ([workspace.lints]) are
// for the library code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mcp_policy_core::catalog::tools;
use mcp_policy_core::config::settings::Config;
use mcp_policy_core::mcp::jsonrpc::{self, Body};
use mcp_policy_core::mcp::routing;
use mcp_policy_core::observe::audit;
use mcp_policy_core::pipeline::request::Plugin;
use mcp_policy_core::policy::input::{self, HttpRequest};
use mcp_policy_core::state::store::MemoryStore;
use std::path::Path;
use std::time::Duration;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn plugin_from(modules: serde_json::Value, extra: serde_json::Value) -> Plugin {
    let mut cfg = serde_json::json!({"policy": {"modules": modules}});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    Plugin::from(Config::from_json(cfg.to_string().as_bytes()).expect("loads"))
}

fn file_plugin(path: &str) -> Plugin {
    let source = std::fs::read_to_string(repo().join(path)).expect("policy file");
    plugin_from(
        serde_json::json!({ "policy.rego": source }),
        serde_json::json!({}),
    )
}

/// A generated policy of `n` rules: per-tool argument rules of the shapes
/// real policies use (name match, string prefix, numeric bound, set test).
fn generated_source(n: usize) -> String {
    let mut s = String::from("package mcp\n\nimport rego.v1\n\ndefault allow := true\n\n");
    for i in 0..n {
        let rule = match i % 4 {
            0 => format!(
                "deny contains \"r{i}: path\" if {{\n\tinput.mcp.tool.name == \"tool_{i}\"\n\tnot startswith(object.get(input.mcp.tool.arguments, \"path\", \"\"), \"/srv/{i}/\")\n}}\n\n"
            ),
            1 => format!(
                "deny contains \"r{i}: limit\" if {{\n\tinput.mcp.tool.name == \"tool_{i}\"\n\tobject.get(input.mcp.tool.arguments, \"limit\", 0) > {i}\n}}\n\n"
            ),
            2 => format!(
                "deny contains \"r{i}: method\" if {{\n\tinput.mcp.method == \"tools/call\"\n\tinput.mcp.tool.name in {{\"tool_{i}\", \"alias_{i}\"}}\n\tinput.http.headers[\"x-tenant\"] == \"t{i}\"\n}}\n\n"
            ),
            _ => format!(
                "deny contains \"r{i}: encoding\" if {{\n\tinput.mcp.tool.name == \"read_file\"\n\tobject.get(input.mcp.tool.arguments, \"encoding\", \"\") == \"enc-{i}\"\n}}\n\n"
            ),
        };
        s.push_str(&rule);
    }
    s
}

fn generated_plugin(n: usize) -> Plugin {
    plugin_from(
        serde_json::json!({ "generated.rego": generated_source(n) }),
        serde_json::json!({}),
    )
}

fn request_with(extra: &[(&str, &str)]) -> HttpRequest {
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
        (
            "x-request-id".into(),
            b"3f1c2e4a-0b5d-4e7f-9a8b-1c2d3e4f5a6b".to_vec(),
        ),
    ];
    for (k, v) in extra {
        h.push((k.to_string(), v.as_bytes().to_vec()));
    }
    HttpRequest::from_headers(h)
}

fn request() -> HttpRequest {
    request_with(&[])
}

/// A tools/call for read_file of about `size` bytes (the `note` argument
/// grows); the same shape bench/run.py sends through Envoy.
fn body_of(size: usize) -> Vec<u8> {
    let render = |filler: &str| {
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
    };
    let base = render("").len();
    let words = "lorem ipsum dolor sit amet ";
    let n = size.saturating_sub(base);
    let filler: String = words.chars().cycle().take(n).collect();
    render(&filler)
}

fn body() -> Vec<u8> {
    body_of(1024)
}

fn stages(c: &mut Criterion) {
    let http = request();
    let body = body();
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(body.len() as u64));

    g.bench_function("parse", |b| {
        b.iter(|| black_box(jsonrpc::parse(black_box(&body)).is_ok()))
    });

    let routing = routing::read(&http.headers).expect("headers");
    g.bench_function("routing_check", |b| {
        let parsed = jsonrpc::parse(&body).expect("parses");
        b.iter(|| {
            black_box(routing::read(&http.headers).and_then(|r| routing::check(&r, &parsed)))
                .is_ok()
        })
    });

    // `input.http` alone (every header): part of input_build, and work a
    // policy that never reads `input.http` would not need.
    g.bench_function("http_value", |b| b.iter(|| black_box(http.to_value())));

    g.bench_function("input_build", |b| {
        let parsed = jsonrpc::parse(&body).expect("parses");
        let Body::Single(m) = &parsed else {
            unreachable!()
        };
        b.iter(|| {
            let shared = input::request_values(&http, true);
            black_box(input::for_message(&shared, &routing, m, None))
        })
    });
    g.finish();
}

/// Builds a fresh plugin (one per engine compared).
type MakePlugin = Box<dyn Fn() -> Plugin>;

fn decision(c: &mut Criterion) {
    let http = request();
    let body = body();
    let parsed = jsonrpc::parse(&body).expect("parses");
    let Body::Single(m) = &parsed else {
        unreachable!()
    };
    let routing = routing::read(&http.headers).expect("headers");
    let value = input::for_message(&input::request_values(&http, true), &routing, m, None);
    let policies: Vec<(&str, MakePlugin)> = vec![
        ("default", Box::new(|| file_plugin("policies/default.rego"))),
        (
            "realistic20",
            Box::new(|| file_plugin("bench/policies/realistic.rego")),
        ),
        ("generated1000", Box::new(|| generated_plugin(1000))),
    ];
    let mut g = c.benchmark_group("decision");
    for (name, make) in &policies {
        for engine in ["rvm", "interpreter"] {
            let mut plugin = make();
            if engine == "interpreter" {
                plugin.policy.use_interpreter();
            }
            // Sanity: the benchmark request is allowed by every policy.
            let r = plugin.policy.evaluate(value.clone()).expect("evaluates");
            assert!(r.permits(), "{name}: {:?}", r.deny);
            g.bench_function(BenchmarkId::new(format!("evaluate/{engine}"), name), |b| {
                b.iter(|| black_box(plugin.policy.evaluate(value.clone()).is_ok()))
            });
            g.bench_function(BenchmarkId::new(format!("whole/{engine}"), name), |b| {
                b.iter(|| black_box(plugin.on_request_body(&http, black_box(&body)).1.len()))
            });
        }
    }
    g.finish();
}

fn rules(c: &mut Criterion) {
    let http = request();
    let body = body();
    let mut g = c.benchmark_group("rules");
    for n in [10usize, 100, 1000] {
        let mut plugin = generated_plugin(n);
        g.bench_with_input(BenchmarkId::new("whole", n), &n, |b, _| {
            b.iter(|| black_box(plugin.on_request_body(&http, black_box(&body)).1.len()))
        });
    }
    g.finish();
}

fn body_size(c: &mut Criterion) {
    let http = request();
    let mut plugin = file_plugin("policies/default.rego");
    let mut g = c.benchmark_group("body_size");
    g.sample_size(20);
    for size in [1024usize, 16 * 1024, 128 * 1024, 1024 * 1024] {
        let body = body_of(size);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("whole", size), &size, |b, _| {
            b.iter(|| black_box(plugin.on_request_body(&http, black_box(&body)).1.len()))
        });
        g.bench_with_input(BenchmarkId::new("parse", size), &size, |b, _| {
            b.iter(|| black_box(jsonrpc::parse(black_box(&body)).is_ok()))
        });
        let parsed = jsonrpc::parse(&body).expect("parses");
        let Body::Single(m) = &parsed else {
            unreachable!()
        };
        let routing = routing::read(&http.headers).expect("headers");
        let value = input::for_message(&input::request_values(&http, true), &routing, m, None);
        g.bench_with_input(BenchmarkId::new("evaluate", size), &size, |b, _| {
            b.iter(|| black_box(plugin.policy.evaluate(value.clone()).is_ok()))
        });
        let args = &m.params["arguments"];
        g.bench_with_input(BenchmarkId::new("audit_digest", size), &size, |b, _| {
            b.iter(|| black_box(audit::digest(black_box(args))))
        });
    }
    g.finish();
}

fn tool_list_response(n: usize) -> Vec<u8> {
    let tools: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "name": format!("tool_{i:04}"),
                "title": format!("Tool {i}"),
                "description": format!("Does thing number {i} with a path and a limit."),
                "inputSchema": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
                    "required": ["path"]
                }
            })
        })
        .collect();
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}})
        .to_string()
        .into_bytes()
}

fn tools_list(c: &mut Criterion) {
    let mut g = c.benchmark_group("tools_list");
    g.sample_size(20);
    for n in [10usize, 100, 1000] {
        let resp = tool_list_response(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("learn", n), &n, |b, _| {
            b.iter(|| {
                let store = MemoryStore::default();
                let mut w = tools::Watcher::new("1", "application/json").expect("watcher");
                let _ = w.feed(&resp);
                let t = w.finish().expect("tools");
                tools::remember(&store, "127.0.0.1:8000", &t, true);
                black_box(t.len())
            })
        });
    }
    g.finish();
}

const HISTORY_POLICY: &str = r#"package mcp

import rego.v1

default allow := true

# A flow rule over the session's history: no send_email after a read of a
# secret, and at most 500 calls of one tool in the history.
deny contains "exfiltration" if {
	input.mcp.tool.name == "send_email"
	some c in input.session.calls
	"secret" in c.labels
}

deny contains "too many calls" if {
	count([c | some c in input.session.calls; c.tool == input.mcp.tool.name]) > 5000
}

labels contains "read" if input.mcp.tool.name == "read_file"
"#;

fn history(c: &mut Criterion) {
    let http = request_with(&[("mcp-session-id", "bench-session-1")]);
    let body = body();
    let mut g = c.benchmark_group("history");
    g.sample_size(20);
    for n in [1usize, 64, 256, 1024] {
        let mut plugin = plugin_from(
            serde_json::json!({ "history.rego": HISTORY_POLICY }),
            serde_json::json!({"sessions": {"max_calls": n}}),
        );
        let store = MemoryStore::default();
        let mut now = 1_000_000u64;
        for _ in 0..n {
            now += 1;
            plugin.on_request_body_with(&http, &body, Some((&store, now)));
        }
        g.bench_with_input(BenchmarkId::new("whole", n), &n, |b, _| {
            b.iter(|| {
                now += 1;
                black_box(
                    plugin
                        .on_request_body_with(&http, black_box(&body), Some((&store, now)))
                        .1
                        .len(),
                )
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    let secs = std::env::var("BENCH_CRITERION_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs_f64(secs))
}

criterion_group! {
    name = benches;
    config = config();
    targets = stages, decision, rules, body_size, tools_list, history
}
criterion_main!(benches);
