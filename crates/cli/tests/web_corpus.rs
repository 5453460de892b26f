//! The shared corpus (crates/web/tests/corpus/README.md): the CLI's answers
//! for the recorded messages, which the web build must give too
//! (crates/web/tests/corpus.rs). `MCP_POLICY_UPDATE_CORPUS=1` rewrites
//! crates/web/tests/corpus/expected.json.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-policy");

const FIXTURES: &[&str] = &[
    "batch_2025_03_26.json",
    "gzip_encoded.json",
    "legacy_cancelled.json",
    "legacy_delete_session.json",
    "legacy_elicitation_response.json",
    "legacy_initialize.json",
    "legacy_notification_initialized.json",
    "legacy_read_file_outside_workspace.json",
    "legacy_tools_call_echo.json",
    "malformed_truncated.json",
    "modern_header_mismatch.json",
    "modern_resources_read_unicode.json",
    "modern_server_discover.json",
    "modern_tools_call_delete_record.json",
    "modern_tools_call_echo.json",
];

const SESSION: &[&str] = &[
    "legacy_initialize.json",
    "legacy_notification_initialized.json",
    "legacy_tools_call_echo.json",
];
const SESSION_LAST: &str = "legacy_read_file_outside_workspace.json";

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).to_path_buf()
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/messages").join(name)
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

fn eval(extra: &[&str], message: &Path) -> Value {
    let out = Command::new(BIN)
        .args(["eval", "--format", "json", "--print-input"])
        .args(extra)
        .arg("default.rego")
        .arg(message)
        .current_dir(root().join("policies"))
        .output()
        .unwrap();
    let mut v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    normalise(&mut v);
    v
}

#[test]
fn the_cli_answers_the_shared_corpus() {
    let mut cases = serde_json::Map::new();
    for f in FIXTURES {
        let mut v = eval(&[], &fixture(f));
        v.as_object_mut().unwrap().remove("session");
        cases.insert((*f).into(), v);
    }
    let session: Vec<Value> = SESSION
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(fixture(f)).unwrap()).unwrap())
        .collect();
    let dir = std::env::temp_dir().join(format!("mcp-policy-web-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let session_file = dir.join("session.json");
    std::fs::write(&session_file, serde_json::to_vec(&session).unwrap()).unwrap();
    let v = eval(
        &["--session", session_file.to_str().unwrap()],
        &fixture(SESSION_LAST),
    );
    let _ = std::fs::remove_dir_all(&dir);
    cases.insert("session".into(), v);
    let got = Value::Object(cases);
    let path = root().join("crates/web/tests/corpus/expected.json");
    if std::env::var_os("MCP_POLICY_UPDATE_CORPUS").is_some() {
        let text = serde_json::to_string_pretty(&got).unwrap();
        std::fs::write(&path, format!("{text}\n")).unwrap();
    }
    let expected: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        got,
        expected,
        "the CLI's answers changed; if deliberately, MCP_POLICY_UPDATE_CORPUS=1 rewrites {}",
        path.display()
    );
}
