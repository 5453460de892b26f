//! `wasm-loop [call|list|list-warm|both] [iterations]`: run the core's
//! request path (a 1 KiB tools/call, the shipped default policy) and the
//! list path (a tools/list answer of 100 tools filtered per caller; cold,
//! then from reused verdicts; `list-warm` only the latter, for a profile of
//! it) in a loop and print the mean time per message. Built for wasm32-wasip1 and run under Node
//! (`make profile-wasm`), it shows what the module costs inside V8 without
//! Envoy, and `node --cpu-prof` names the functions that cost it.

use mcp_policy_core::config::settings::Config;
use mcp_policy_core::pipeline::request::{BodyAction, Plugin};
use mcp_policy_core::pipeline::response::{start, Start};
use mcp_policy_core::policy::input::HttpRequest;
use mcp_policy_core::state::store::MemoryStore;
use std::time::Instant;

fn plugin() -> Plugin {
    let policy = include_str!("../../../policies/default.rego");
    let cfg = serde_json::json!({"policy": {"modules": {"default.rego": policy}}});
    Plugin::from(Config::from_json(cfg.to_string().as_bytes()).expect("the default policy loads"))
}

fn request(method: &str, name: Option<&str>) -> HttpRequest {
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
        ("mcp-method".into(), method.as_bytes().to_vec()),
        ("user-agent".into(), b"h2load nghttp2/1.52.0".to_vec()),
        ("x-forwarded-proto".into(), b"http".to_vec()),
        (
            "x-request-id".into(),
            b"3f1c2e4a-0b5d-4e7f-9a8b-1c2d3e4f5a6b".to_vec(),
        ),
    ];
    if let Some(n) = name {
        h.push(("mcp-name".into(), n.as_bytes().to_vec()));
    }
    HttpRequest::from_headers(h)
}

fn call_body() -> Vec<u8> {
    let meta = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let base = serde_json::json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"path": "/workspace/src/main.rs", "note": ""}, "_meta": meta}});
    let n = 1024usize.saturating_sub(base.to_string().len());
    let filler: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(n)
        .collect();
    serde_json::json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"path": "/workspace/src/main.rs", "note": filler}, "_meta": meta}})
    .to_string()
    .into_bytes()
}

fn list_answer(n: usize) -> Vec<u8> {
    let tools: Vec<_> = (0..n)
        .map(|i| serde_json::json!({
            "name": format!("tool_{i}"),
            "description": format!("Does thing number {i} for the user, carefully and quickly."),
            "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["path"]},
            "annotations": {"readOnlyHint": i % 2 == 0}
        }))
        .collect();
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}})
        .to_string()
        .into_bytes()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("both");
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let mut p = plugin();
    let store = MemoryStore::default();
    if what == "call" || what == "both" {
        let http = request("tools/call", Some("read_file"));
        let body = call_body();
        let mut run = |n: u32| {
            let t = Instant::now();
            for _ in 0..n {
                let (a, d) = p.on_request_body_with(&http, &body, Some((&store, 1)));
                assert!(matches!(a, BodyAction::Forward(_)) && !d.is_empty());
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        };
        run(n / 4);
        println!("tools/call 1 KiB, whole request: {:.1} us", run(n));
    }
    if what == "list" || what == "list-warm" || what == "both" {
        let http = request("tools/list", None);
        let req = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let answer = list_answer(100);
        let n = (n / 50).max(10);
        let mut run = |n: u32, cold: bool| {
            let t = Instant::now();
            for _ in 0..n {
                if cold {
                    p.listing = Default::default();
                }
                let BodyAction::Forward(f) =
                    p.on_request_body_with(&http, req, Some((&store, 1))).0
                else {
                    panic!("tools/list denied")
                };
                let w = f.response.expect("the list is inspected");
                let Start::Inspect { mut stream, .. } =
                    start(w, Some(200), "application/json", "", 4 << 20, false)
                else {
                    panic!("not inspected")
                };
                let out = stream.feed(&mut p, &answer, true, Some((&store, 2)));
                assert!(!out.bytes.is_empty());
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        };
        if what == "list-warm" {
            // Only the answers from reused verdicts (a profile of that path).
            run(1, true);
        } else {
            run(n / 4, true);
            println!(
                "tools/list of 100 tools, request + answer filtered, cold: {:.1} us",
                run(n, true)
            );
        }
        println!(
            "tools/list of 100 tools, request + answer filtered, same caller again: {:.1} us",
            run(n, false)
        );
    }
}
