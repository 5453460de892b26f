//! Native micro-benchmarks of the response-side detectors: scan_result on a
//! tools/call result of about 4 KiB of ordinary text (code and prose, a few
//! findings), redact_result on it, scan_tool on a typical tool definition,
//! and tool_hash.
//!
//!     cargo bench --bench detect
// Benchmarks and examples may unwrap and index: the data-path lints ([workspace.lints]) are
// for the library code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mcp_policy_core::catalog::{pins, poison};
use mcp_policy_core::detect;

fn result_4k() -> serde_json::Value {
    let chunk = "fn handler(req: Request) -> Response {\n    let user = db.find(req.id)?; // contact jane.doe@acme-corp.com\n    \
                 log::info!(\"served {} in {}ms\", req.id, 35);\n}\n\
                 The quarterly report lists 1,234 orders between 2024-01-01 and 2024-03-31; see \
                 https://docs.example.org/reports for the methodology, version 1.2.3.\n";
    let mut text = String::new();
    while text.len() < 4096 {
        text.push_str(chunk);
    }
    text.push_str("token ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R\n");
    serde_json::json!({"content": [{"type": "text", "text": text}], "isError": false})
}

fn tool() -> serde_json::Value {
    serde_json::json!({
        "name": "read_text_file", "title": "Read file",
        "description": "Read the complete contents of a file from the file system as text. Handles various text encodings and provides detailed error messages if the file cannot be read. Use the 'head' parameter to read only the first N lines of a file. Only works within allowed directories.",
        "inputSchema": {"type": "object", "properties": {
            "path": {"type": "string", "description": "Path of the file"},
            "head": {"type": "number", "description": "If provided, returns only the first N lines of the file"},
            "tail": {"type": "number", "description": "If provided, returns only the last N lines of the file"}},
            "required": ["path"]},
        "annotations": {"readOnlyHint": true}
    })
}

fn detectors(c: &mut Criterion) {
    detect::init().expect("patterns compile");
    poison::init().expect("patterns compile");
    let result = result_4k();
    let len = result["content"][0]["text"].as_str().map_or(0, str::len);
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("scan_result_4k", |b| {
        b.iter(|| black_box(detect::scan_result(black_box(&result))).len())
    });
    let rows: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!({"id": i, "name": format!("Widget {i}"), "sku": format!("W-{i:05}"), "status": "in stock", "updated": "2024-03-01T12:00:00Z"}))
        .collect();
    let structured = serde_json::json!({"content": [], "structuredContent": {"rows": rows}});
    g.bench_function("scan_result_400_short_strings", |b| {
        b.iter(|| black_box(detect::scan_result(black_box(&structured))).len())
    });
    let findings = detect::scan_result(&result);
    g.bench_function("redact_result_4k", |b| {
        b.iter(|| {
            let mut r = result.clone();
            black_box(detect::redact_result(&mut r, &findings, &|f| {
                f.kind != "injection"
            }))
        })
    });
    g.finish();

    let def = tool();
    let others = [
        "write_file",
        "search",
        "fetch",
        "send_email",
        "query",
        "list_directory",
    ];
    let mut g = c.benchmark_group("tool");
    g.bench_function("scan_tool", |b| {
        b.iter(|| black_box(poison::scan_tool(black_box(&def), &others)).len())
    });
    g.bench_function("tool_hash", |b| {
        b.iter(|| black_box(pins::tool_hash(black_box(&def))))
    });
    g.finish();
}

criterion_group!(benches, detectors);
criterion_main!(benches);
