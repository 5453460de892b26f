//! The shared corpus (tests/corpus/README.md): the web build decides the
//! recorded messages exactly as the native CLI does (tests/corpus/
//! expected.json, checked against the CLI by crates/cli/tests/web_corpus.rs).
//! Natively under `cargo test`, and on wasm32-unknown-unknown under
//! `wasm-bindgen-test-runner` in Node and headless Chromium (`make web-test`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{json, Value};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;

const POLICY: &str = include_str!("../../../policies/default.rego");
const EXPECTED: &str = include_str!("corpus/expected.json");

const FIXTURES: &[(&str, &str)] = &[
    (
        "batch_2025_03_26.json",
        include_str!("../../../tests/fixtures/messages/batch_2025_03_26.json"),
    ),
    (
        "gzip_encoded.json",
        include_str!("../../../tests/fixtures/messages/gzip_encoded.json"),
    ),
    (
        "legacy_cancelled.json",
        include_str!("../../../tests/fixtures/messages/legacy_cancelled.json"),
    ),
    (
        "legacy_delete_session.json",
        include_str!("../../../tests/fixtures/messages/legacy_delete_session.json"),
    ),
    (
        "legacy_elicitation_response.json",
        include_str!("../../../tests/fixtures/messages/legacy_elicitation_response.json"),
    ),
    (
        "legacy_initialize.json",
        include_str!("../../../tests/fixtures/messages/legacy_initialize.json"),
    ),
    (
        "legacy_notification_initialized.json",
        include_str!("../../../tests/fixtures/messages/legacy_notification_initialized.json"),
    ),
    (
        "legacy_read_file_outside_workspace.json",
        include_str!("../../../tests/fixtures/messages/legacy_read_file_outside_workspace.json"),
    ),
    (
        "legacy_tools_call_echo.json",
        include_str!("../../../tests/fixtures/messages/legacy_tools_call_echo.json"),
    ),
    (
        "malformed_truncated.json",
        include_str!("../../../tests/fixtures/messages/malformed_truncated.json"),
    ),
    (
        "modern_header_mismatch.json",
        include_str!("../../../tests/fixtures/messages/modern_header_mismatch.json"),
    ),
    (
        "modern_resources_read_unicode.json",
        include_str!("../../../tests/fixtures/messages/modern_resources_read_unicode.json"),
    ),
    (
        "modern_server_discover.json",
        include_str!("../../../tests/fixtures/messages/modern_server_discover.json"),
    ),
    (
        "modern_tools_call_delete_record.json",
        include_str!("../../../tests/fixtures/messages/modern_tools_call_delete_record.json"),
    ),
    (
        "modern_tools_call_echo.json",
        include_str!("../../../tests/fixtures/messages/modern_tools_call_echo.json"),
    ),
];

const SESSION: &[&str] = &[
    "legacy_initialize.json",
    "legacy_notification_initialized.json",
    "legacy_tools_call_echo.json",
    "legacy_read_file_outside_workspace.json",
];

fn text(name: &str) -> &'static str {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap()
}

/// Decision ids are random per run.
fn normalise(v: &mut Value) {
    match v {
        Value::Array(items) => {
            if items.len() == 2 && items[0] == "x-mcp-decision-id" {
                items[1] = "<id>".into();
            }
            items.iter_mut().for_each(normalise);
        }
        Value::Object(o) => o.values_mut().for_each(normalise),
        _ => {}
    }
}

/// The web build's answer in the CLI's shape: the last result, with the
/// policy block.
fn decide(messages: &[&str]) -> (Value, Vec<Value>) {
    let request = json!({
        "modules": {"default.rego": POLICY},
        "messages": messages,
    });
    let mut out = mcp_policy_web::decide_value(&request);
    assert_eq!(out["ok"], true, "{out}");
    normalise(&mut out);
    let mut results = out["results"].as_array().unwrap().clone();
    let mut last = results.pop().unwrap();
    let o = last.as_object_mut().unwrap();
    o.remove("index");
    o.insert("policy".into(), out["policy"].clone());
    (last, results)
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn every_recorded_message_is_decided_as_the_cli_decides_it() {
    let expected: Value = serde_json::from_str(EXPECTED).unwrap();
    for (name, body) in FIXTURES {
        let (got, _) = decide(&[body]);
        assert_eq!(got, expected[*name], "{name}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_recorded_session_is_decided_as_the_cli_decides_it() {
    let expected: Value = serde_json::from_str(EXPECTED).unwrap();
    let texts: Vec<&str> = SESSION.iter().map(|n| text(n)).collect();
    let (got, earlier) = decide(&texts);
    let mut want = expected["session"].clone();
    let summaries = want.as_object_mut().unwrap().remove("session").unwrap();
    assert_eq!(got, want);
    let decisions: Vec<&Value> = earlier.iter().map(|r| &r["decision"]).collect();
    let cli: Vec<&Value> = summaries
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["decision"])
        .collect();
    assert_eq!(decisions, cli);
}
