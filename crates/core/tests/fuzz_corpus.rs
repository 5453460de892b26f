//! The fuzz targets' seed corpus (fuzz/corpus/<target>/) as a regression
//! test on stable Rust: every file goes through the same entry function the
//! cargo-fuzz target calls (crates/core/src/fuzzing.rs), which panics on a finding.
//! Inputs the fuzzer found and that were fixed are added to the corpus, so
//! they stay fixed.
// Tests may unwrap and index: the data-path lints ([workspace.lints]) are
// for the library code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// Not in the browser build's test run (`make web-test`): the corpus is read
// from disk (read_dir), which wasm32-unknown-unknown has not.
#![cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("fuzz/corpus");
    let mut total = 0;
    for (name, run) in mcp_policy_core::fuzzing::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seed corpus for target {name}");
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "target {name} fails on {}", f.display());
        }
        total += files.len();
    }
    assert!(total > 100, "only {total} corpus files");
}

#[test]
fn request_headers_parse_as_documented() {
    let (h, body) =
        mcp_policy_core::fuzzing::split_request(b":method: POST\r\nx-a: 1\nnovalue\n\n{\"x\":1}\n");
    assert_eq!(
        h,
        vec![
            (":method".to_string(), b"POST".to_vec()),
            ("x-a".to_string(), b"1".to_vec()),
            ("novalue".to_string(), Vec::new()),
        ]
    );
    assert_eq!(body, b"{\"x\":1}\n");
    assert_eq!(mcp_policy_core::fuzzing::split_request(b"a: b").1, b"");
}
