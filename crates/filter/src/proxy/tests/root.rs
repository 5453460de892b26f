//! The root context against the emulator.

use super::*;
use std::time::Duration;

#[test]
fn a_policy_that_does_not_compile_is_refused_at_configure_time() {
    let host = Mock::new();
    host.set_buffer_bytes(
        Buffer::PluginConfiguration,
        serde_json::json!({"policy": {"modules": {"main.rego": "package mcp\n\nallow if {\n  input.x ==\n}\n"}}})
            .to_string()
            .as_bytes(),
    );
    let mut root = Root::new(host);
    assert!(!root.on_configure());
    assert_eq!(
        show(&host.take_calls()),
        "log_level
get_buffer PluginConfiguration
log Critical: mcp-policy: policy does not compile: main.rego:5:1: expecting expression
define_metric Counter mcp_policy_config_failures
increment_metric mcp_policy_config_failures +1"
    );
    // No plugin: a request is refused (fail closed).
    let mut http = root.create_http_context();
    assert_eq!(http.on_http_request_headers(0, false), Action::Pause);
    let calls = host.take_calls();
    assert!(calls[1].starts_with("send_http_response 503"), "{calls:#?}");
}

/// CRC-32 (IEEE), for the gzip trailer.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in bytes {
        c ^= u32::from(*b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A bundle: a tar of `files`, gzipped with stored (uncompressed) blocks.
fn targz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (path, content) in files {
        let mut h = [0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(content.as_bytes());
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = tar.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        gz.push(u8::from(i + 1 == chunks.len()));
        let n = chunk.len() as u16;
        gz.extend_from_slice(&n.to_le_bytes());
        gz.extend_from_slice(&(!n).to_le_bytes());
        gz.extend_from_slice(chunk);
    }
    gz.extend_from_slice(&crc32(&tar).to_le_bytes());
    gz.extend_from_slice(&(tar.len() as u32).to_le_bytes());
    gz
}

#[test]
fn a_bundle_poll_answer_is_loaded_kept_and_counted() {
    let host = Mock::new();
    host.set_buffer_bytes(
        Buffer::PluginConfiguration,
        br#"{"bundle": {"cluster": "bundles", "poll_interval_ms": 1000, "poll_jitter_ms": 0}}"#,
    );
    // Envoy at debug level: the poller's debug lines are written.
    host.with(|s| s.log_level = Some(mcp_policy_core::host::Level::Debug));
    let mut root = Root::new(host);
    assert!(root.on_configure());
    let poll = r#"dispatch_http_call bundles [(":method", "GET"), (":path", "/bundle.tar.gz"), (":authority", "bundles"), ("accept", "application/gzip, application/octet-stream")"#;
    assert_eq!(
        show(&host.take_calls()),
        format!(
            r#"log_level
get_buffer PluginConfiguration
log Info: mcp-policy: configured: policy bundle-pending (1 module(s): <bundle pending>; engine rvm), max_body_bytes 1048576
get_current_time
define_metric Counter mcp_policy_bundle_loads
define_metric Counter mcp_policy_bundle_failures
define_metric Counter mcp_policy_bundle_not_modified
set_tick_period 100ms
get_shared_data mcp_policy.bundle.bundles/bundle.tar.gz
log Warn: mcp-policy: no inline policy: every message is denied (503, "policy bundle not loaded yet") until the first bundle loads
{poll}] 0 byte(s), timeout 5000ms
log Debug: mcp-policy: bundle poll 1 sent to bundles/bundle.tar.gz (if-none-match none)
define_metric Counter mcp_policy_config_loads
increment_metric mcp_policy_config_loads +1
define_metric Counter mcp_policy_config_failures
define_metric Histogram mcp_policy_eval_us"#
        )
    );
    let bundle = targz(&[
        (".manifest", r#"{"revision": "v7"}"#),
        ("main.rego", POLICY),
    ]);
    host.set_map(
        Map::HttpCallResponseHeaders,
        &[(":status", "200"), ("etag", "\"e1\"")],
    );
    host.set_buffer_bytes(Buffer::HttpCallResponseBody, &bundle);
    root.on_http_call_response(1, bundle.len());
    assert_eq!(
        show(&host.take_calls()),
        format!(
            r#"get_map_value HttpCallResponseHeaders :status
get_map_value HttpCallResponseHeaders etag
log Debug: mcp-policy: bundle poll answered: status Some(200), etag Some("\"e1\""), {} byte(s)
get_buffer HttpCallResponseBody
get_shared_data mcp_policy.bundle.bundles/bundle.tar.gz.etag
set_shared_data mcp_policy.bundle.bundles/bundle.tar.gz
set_shared_data mcp_policy.bundle.bundles/bundle.tar.gz.etag
get_current_time
log Info: mcp-policy: policy bundle loaded from bundles/bundle.tar.gz: revision v7 (1 module(s): main.rego; engine rvm; etag "e1"), replacing revision bundle-pending
increment_metric mcp_policy_bundle_loads +1
define_metric Gauge mcp_policy_bundle_active.revision.v7
increment_metric mcp_policy_bundle_active.revision.v7 +1"#,
            bundle.len()
        )
    );
    // The new policy decides.
    let mut http = root.create_http_context();
    let body = call(1, "rm");
    post(&host, &body);
    http.on_http_request_headers(6, false);
    http.on_http_request_body(body.len(), true);
    assert!(host
        .take_calls()
        .iter()
        .any(|c| c.starts_with("set_property mcp_policy.reasons = rm is forbidden")));

    // The next poll, an interval later, asks with the ETag: not modified.
    host.with(|s| s.elapsed = Duration::from_millis(1500));
    root.on_tick();
    assert_eq!(
        show(&host.take_calls()),
        format!(
            r#"log_level
log Info: mcp-policy audit <event>
get_current_time
{poll}, ("if-none-match", "\"e1\"")] 0 byte(s), timeout 5000ms
log Debug: mcp-policy: bundle poll 2 sent to bundles/bundle.tar.gz (if-none-match "e1")"#
        )
    );
    host.set_map(Map::HttpCallResponseHeaders, &[(":status", "304")]);
    root.on_http_call_response(2, 0);
    assert_eq!(
        show(&host.take_calls()),
        "get_map_value HttpCallResponseHeaders :status
get_map_value HttpCallResponseHeaders etag
log Debug: mcp-policy: bundle poll answered: status Some(304), etag None, 0 byte(s)
increment_metric mcp_policy_bundle_not_modified +1"
    );
    assert_eq!(host.metric("mcp_policy_bundle_not_modified"), Some(1));

    // A VM that starts later serves the kept bundle at once.
    let mut second = Root::new(host);
    assert!(second.on_configure());
    let calls = show(&host.take_calls());
    assert!(
        calls.contains("log Info: mcp-policy: policy bundle restored from shared data: revision v7 (etag \"e1\"); polling bundles/bundle.tar.gz for a newer one"),
        "{calls}"
    );
    assert!(!calls.contains("no inline policy"), "{calls}");
    // The VM that goes away no longer counts for its revision.
    assert!(root.on_done());
    assert_eq!(
        show(&host.take_calls()),
        "increment_metric mcp_policy_bundle_active.revision.v7 -1"
    );
}

#[test]
fn a_broken_bundle_is_counted_and_the_policy_kept() {
    let (host, mut root) = configured(&config(
        serde_json::json!({"bundle": {"cluster": "bundles"}}),
    ));
    host.set_map(Map::HttpCallResponseHeaders, &[(":status", "200")]);
    host.set_buffer_bytes(Buffer::HttpCallResponseBody, b"not gzip");
    root.on_http_call_response(1, 8);
    let calls = show(&host.take_calls());
    assert!(
        calls.ends_with("increment_metric mcp_policy_bundle_failures +1"),
        "{calls}"
    );
    assert!(
        calls.contains("log Error: mcp-policy: policy bundle from bundles/bundle.tar.gz not used: bundle unreadable: not a gzipped tar:"),
        "{calls}"
    );
    assert!(
        calls.contains("; still serving revision sha256:"),
        "{calls}"
    );
}

#[test]
fn audit_events_are_flushed_to_the_collector_and_failures_counted() {
    let (host, mut root) = configured(&config(serde_json::json!({
        "audit": {"collector": {"cluster": "audit", "flush_interval_ms": 1000, "max_retries": 0}}
    })));
    let mut http = root.create_http_context();
    let body = call(1, "echo");
    post(&host, &body);
    http.on_http_request_headers(6, false);
    http.on_http_request_body(body.len(), true);
    host.take_calls();
    root.on_tick();
    let calls = show(&host.take_calls());
    assert!(
        calls.starts_with(
            r#"log_level
log Info: mcp-policy audit <event>
get_current_time
dispatch_http_call audit [(":method", "POST"), (":path", "/"#
        ),
        "{calls}"
    );
    assert!(
        calls.contains(r#"("content-type", "application/x-ndjson")]"#),
        "{calls}"
    );
    // The collector fails: with no retries, the batch is dropped.
    host.set_map(Map::HttpCallResponseHeaders, &[(":status", "503")]);
    root.on_http_call_response(1, 0);
    assert_eq!(
        show(&host.take_calls()),
        "get_map_value HttpCallResponseHeaders :status
increment_metric mcp_policy_audit_dropped +1
log Error: mcp-policy: audit collector failed (HTTP 503); 1 event(s) dropped after retries (counted in mcp_policy_audit_dropped)"
    );
    assert_eq!(host.metric("mcp_policy_audit_dropped"), Some(1));
    assert_eq!(host.metric("mcp_policy_audit_sent"), Some(0));
    // A collector that cannot be called at all.
    host.with(|s| s.unknown_clusters.push("audit".into()));
    http = root.create_http_context();
    post(&host, &body);
    http.on_http_request_headers(6, false);
    http.on_http_request_body(body.len(), true);
    host.take_calls();
    host.with(|s| s.elapsed = Duration::from_millis(2000));
    root.on_tick();
    let calls = show(&host.take_calls());
    assert!(
        calls.ends_with(
            "log Warn: mcp-policy: audit collector call to audit failed: BadArgument
log Error: mcp-policy: 1 audit event(s) dropped after retries (counted in mcp_policy_audit_dropped)
increment_metric mcp_policy_audit_dropped +1"
        ),
        "{calls}"
    );
}

/// Audit lines are gathered per VM: written together when `log_batch` of
/// them wait, and whatever waits when the plugin stops (nothing is lost on
/// shutdown) or is configured again. The tick is at most `log_flush_ms`.
#[test]
fn audit_lines_are_written_in_batches_and_none_is_left_behind() {
    let host = Mock::new();
    host.set_buffer_bytes(
        Buffer::PluginConfiguration,
        &config(serde_json::json!({"audit": {"log_batch": 2, "log_flush_ms": 100}})),
    );
    let mut root = Root::new(host);
    assert!(root.on_configure());
    let calls = host.take_calls();
    assert!(
        calls.contains(&"set_tick_period 100ms".to_string()),
        "{calls:#?}"
    );
    let request = |n: u32| {
        let mut http = root.create_http_context();
        let body = call(n, "echo");
        post(&host, &body);
        http.on_http_request_headers(6, false);
        http.on_http_request_body(body.len(), true);
        host.take_calls()
            .into_iter()
            .filter(|c| c.starts_with("log Info: mcp-policy audit "))
            .collect::<Vec<_>>()
    };
    assert!(request(1).is_empty(), "the first line waits");
    let written = request(2);
    assert_eq!(written.len(), 1, "two lines, one write: {written:#?}");
    assert_eq!(written[0].lines().count(), 2, "{written:#?}");
    assert!(request(3).is_empty());
    // The plugin stops: the waiting line is written.
    assert!(root.on_done());
    let calls = host.take_calls();
    let last: Vec<&String> = calls
        .iter()
        .filter(|c| c.contains("mcp-policy audit {"))
        .collect();
    assert_eq!(last.len(), 1, "{calls:#?}");
    assert!(last[0].contains(r#""decision_id""#), "{calls:#?}");
    assert_eq!(last[0].lines().count(), 1);
}
