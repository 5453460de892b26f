//! Native micro-benchmarks of the response path: what deciding what the
//! server sends costs, per message.
//!
//!     cargo bench --bench response_path
//!
//! - `json_result_4k`: a 4 KiB tools/call result in a JSON body, decided
//!   with the results library policy (detectors, redaction);
//! - `sse_100_notifications`: an SSE stream of 100 progress notifications
//!   plus the result, fed in 1 KiB chunks, each event decided;
//! - `tools_list_50`: a tools/list result of 50 tools filtered per caller
//!   (50 listing evaluations) with the pins and poisoning facts learnt;
//! - `tools_list_100_default_policy` (warm memo, `_cold` without): 100
//!   tools, the default policy, a 2025-11-25 caller (nothing is edited);
//! - `tools_list_100_modern`: the same in the 2026-07-28 form `make bench`
//!   sends (the answer is marked private: always edited), and
//!   `tools_list_100_modern_3_hidden` with three tools hidden;
//! - `passthrough_list_50`: the same list with a request-only policy and
//!   `filter_lists: false` (not inspected at all: the baseline).
// Benchmarks and examples may unwrap and index: the data-path lints ([workspace.lints]) are
// for the library code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mcp_policy_core::config::settings::Config;
use mcp_policy_core::pipeline::request::{BodyAction, Plugin};
use mcp_policy_core::pipeline::response::{start, Start};
use mcp_policy_core::policy::input::HttpRequest;
use mcp_policy_core::state::store::MemoryStore;

fn plugin(modules: serde_json::Value, data: serde_json::Value, extra: serde_json::Value) -> Plugin {
    let mut cfg = serde_json::json!({"policy": {"modules": modules, "data": data}});
    if let (Some(c), serde_json::Value::Object(e)) = (cfg.as_object_mut(), extra) {
        c.extend(e);
    }
    Plugin::from(Config::from_json(cfg.to_string().as_bytes()).expect("loads"))
}

fn library(name: &str) -> String {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("policies/library");
    std::fs::read_to_string(dir.join(format!("{name}.rego"))).expect("library file")
}

fn response_plugin() -> Plugin {
    plugin(
        serde_json::json!({
            "main.rego": "package mcp\nimport rego.v1\ndefault allow := true\n",
            "library/results.rego": library("results"),
            "library/pins.rego": library("pins"),
            "library/poisoning.rego": library("poisoning"),
        }),
        serde_json::json!({"library": {"results": {}, "pins": {}, "poisoning": {}}}),
        serde_json::json!({}),
    )
}

fn post() -> HttpRequest {
    HttpRequest::from_headers(vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"127.0.0.1:10000".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("mcp-protocol-version".into(), b"2025-11-25".to_vec()),
        ("mcp-session-id".into(), b"bench-session".to_vec()),
    ])
}

fn modern_post() -> HttpRequest {
    HttpRequest::from_headers(vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"127.0.0.1:10000".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("mcp-protocol-version".into(), b"2026-07-28".to_vec()),
        ("mcp-method".into(), b"tools/list".to_vec()),
    ])
}

/// Forward `request` and read `response` through the response path.
fn run(p: &mut Plugin, store: &MemoryStore, request: &[u8], ct: &str, chunks: &[&[u8]]) -> usize {
    let f = match p.on_request_body_with(&post(), request, Some((store, 1))).0 {
        BodyAction::Forward(f) => f,
        BodyAction::Reply(_) => panic!("request denied"),
    };
    feed(p, store, f, ct, chunks)
}

/// A JSON tools/list through the request path with `http`, then its answer.
fn run_with(
    p: &mut Plugin,
    store: &MemoryStore,
    http: &HttpRequest,
    request: &[u8],
    chunks: &[&[u8]],
) -> usize {
    let f = match p.on_request_body_with(http, request, Some((store, 1))).0 {
        BodyAction::Forward(f) => f,
        BodyAction::Reply(_) => panic!("request denied"),
    };
    feed(p, store, f, "application/json", chunks)
}

fn feed(
    p: &mut Plugin,
    store: &MemoryStore,
    f: mcp_policy_core::pipeline::actions::Forward,
    ct: &str,
    chunks: &[&[u8]],
) -> usize {
    let Some(w) = f.response else {
        return chunks.iter().map(|c| c.len()).sum();
    };
    let Start::Inspect { mut stream, .. } = start(w, Some(200), ct, "", 4 << 20, false) else {
        panic!("not inspected")
    };
    let mut n = 0;
    for (i, c) in chunks.iter().enumerate() {
        n += stream
            .feed(p, c, i + 1 == chunks.len(), Some((store, 2)))
            .bytes
            .len();
    }
    n
}

fn tools(n: usize) -> serde_json::Value {
    let tools: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "name": format!("tool_{i}"),
                "description": format!("Does thing number {i} for the user, carefully and quickly."),
                "inputSchema": {"type": "object", "properties": {"path": {"type": "string", "description": "A file path"}, "limit": {"type": "integer"}}, "required": ["path"]},
                "annotations": {"readOnlyHint": i % 2 == 0}
            })
        })
        .collect();
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}})
}

fn benches(c: &mut Criterion) {
    let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/srv/a"}}}"#;
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

    let text = "The quick brown fox jumps over the lazy dog; nothing secret here. ".repeat(62);
    let result = serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}})
        .to_string();
    let mut g = c.benchmark_group("responses");
    g.throughput(Throughput::Bytes(result.len() as u64));
    let mut p = response_plugin();
    let store = MemoryStore::default();
    g.bench_function("json_result_4k", |b| {
        b.iter(|| {
            run(
                &mut p,
                &store,
                call,
                "application/json",
                &[black_box(result.as_bytes())],
            )
        })
    });

    let mut sse = String::new();
    for i in 0..100 {
        sse.push_str(&format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":1,\"progress\":{i},\"total\":100}}}}\n\n"
        ));
    }
    sse.push_str(&format!("event: message\ndata: {result}\n\n"));
    let chunks: Vec<&[u8]> = sse.as_bytes().chunks(1024).collect();
    g.throughput(Throughput::Bytes(sse.len() as u64));
    g.bench_function("sse_100_notifications", |b| {
        b.iter(|| {
            run(
                &mut p,
                &store,
                call,
                "text/event-stream",
                black_box(&chunks),
            )
        })
    });

    let listed = tools(50).to_string();
    g.throughput(Throughput::Elements(50));
    g.bench_function("tools_list_50", |b| {
        b.iter(|| {
            run(
                &mut p,
                &store,
                list,
                "application/json",
                &[black_box(listed.as_bytes())],
            )
        })
    });
    // The shipped default policy (no response rules, no definitions read):
    // the list is filtered per caller only, 100 tools, the 2026-07-28 wire
    // form (what `make bench` sends through Envoy).
    let default_policy = std::fs::read_to_string(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("policies/default.rego"),
    )
    .expect("default policy");
    let mut shipped = plugin(
        serde_json::json!({"default.rego": default_policy}),
        serde_json::json!({}),
        serde_json::json!({}),
    );
    let listed100 = tools(100).to_string();
    g.throughput(Throughput::Elements(100));
    let list100 = |p: &mut Plugin| {
        run(
            p,
            &store,
            list,
            "application/json",
            &[black_box(listed100.as_bytes())],
        )
    };
    // Warm: the same caller lists again, verdicts come from the memo.
    g.bench_function("tools_list_100_default_policy", |b| {
        b.iter(|| list100(&mut shipped))
    });
    // Cold: every item evaluated (a caller the memo has not seen).
    g.bench_function("tools_list_100_default_policy_cold", |b| {
        b.iter(|| {
            shipped.listing = Default::default();
            list100(&mut shipped)
        })
    });
    // The 2026-07-28 wire form `make bench` sends through Envoy: the list
    // is marked private to the caller (`cacheScope`), so the answer is
    // always edited; then the same with three tools hidden.
    let modern_request = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let modern = |p: &mut Plugin| {
        run_with(
            p,
            &store,
            &modern_post(),
            modern_request,
            &[black_box(listed100.as_bytes())],
        )
    };
    g.bench_function("tools_list_100_modern", |b| b.iter(|| modern(&mut shipped)));
    let mut hiding = plugin(
        serde_json::json!({"main.rego": "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains \"hidden\" if input.mcp.tool.name in {\"tool_3\", \"tool_50\", \"tool_99\"}\n"}),
        serde_json::json!({}),
        serde_json::json!({}),
    );
    assert!(
        modern(&mut hiding) < listed100.len(),
        "three tools are hidden"
    );
    g.bench_function("tools_list_100_modern_3_hidden", |b| {
        b.iter(|| modern(&mut hiding))
    });
    let mut quiet = plugin(
        serde_json::json!({"main.rego": "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains \"no\" if input.mcp.tool.name == \"rm\"\n"}),
        serde_json::json!({}),
        serde_json::json!({"filter_lists": false}),
    );
    g.bench_function("passthrough_list_50", |b| {
        b.iter(|| {
            run(
                &mut quiet,
                &store,
                list,
                "application/json",
                &[black_box(listed.as_bytes())],
            )
        })
    });
    g.finish();
}

criterion_group!(response_benches, benches);
criterion_main!(response_benches);
