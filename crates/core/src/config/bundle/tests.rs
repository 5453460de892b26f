//! The bundle tests: unpacking, keeping, polling.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::config::limits::Limits;
use crate::config::settings::{Config, Settings};

/// A gzipped tar of (path, content) pairs.
pub(crate) fn targz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // Raw names (the builder refuses `..`, which the tests need).
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, content.as_bytes()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

const MAIN: &str = "package mcp\nimport rego.v1\ndefault allow := true\ndeny contains \"killed\" if input.mcp.tool.name in data.k.tools\n";

#[test]
fn unpacks_modules_data_and_manifest() {
    let b = unpack(
        &targz(&[
            (
                "./.manifest",
                r#"{"revision": "r1", "roots": ["mcp", "k", "library"]}"#,
            ),
            ("./policy/main.rego", MAIN),
            ("./policy/main_test.rego", "package mcp\ntest_x if true\n"),
            ("./k/data.json", r#"{"tools": ["rm"]}"#),
            ("./library/x/data.json", r#"{"a": 1}"#),
            ("./library/data.json", r#"{"y": {"b": 2}}"#),
            ("./README.md", "ignored"),
        ]),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(b.revision.as_deref(), Some("r1"));
    assert_eq!(b.modules.len(), 1);
    assert_eq!(b.modules[0].0, "policy/main.rego");
    assert_eq!(
        b.data,
        serde_json::json!({"k": {"tools": ["rm"]}, "library": {"x": {"a": 1}, "y": {"b": 2}}})
    );
    let c = b.compile(&Settings::default()).unwrap();
    assert_eq!(c.policy.revision(), "r1");
}

#[test]
fn revision_defaults_to_the_content_digest() {
    let b = unpack(&targz(&[("main.rego", MAIN)]), &Limits::default()).unwrap();
    let c = b.compile(&Settings::default()).unwrap();
    assert!(c.policy.revision().starts_with("sha256:"));
}

fn err(files: &[(&str, &str)]) -> String {
    match load(&targz(files), &Limits::default(), &Settings::default()) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_file_and_line() {
    let e = err(&[("p/main.rego", "package mcp\n\nallow if {\n")]);
    assert!(
        e.starts_with("bundle does not compile: p/main.rego:"),
        "{e}"
    );
    let e = err(&[("main.rego", MAIN), ("a/data.json", "{\n \"x\": [1,\n}")]);
    assert!(e.contains("a/data.json:3:"), "{e}");
    let e = err(&[("main.rego", MAIN), ("data.json", "[1]")]);
    assert!(
        e.contains("data.json: a data file must hold a JSON object"),
        "{e}"
    );
    let e = err(&[("main.rego", MAIN), (".manifest", "{\"revision\": 3}")]);
    assert!(e.contains(".manifest:1:"), "{e}");
    let e = err(&[("main.rego", MAIN), ("x/data.yaml", "a: 1")]);
    assert!(e.contains("x/data.yaml: YAML"), "{e}");
    let e = err(&[("../main.rego", MAIN)]);
    assert!(e.contains("`..`"), "{e}");
    let e = err(&[("README", "x")]);
    assert!(e.contains("no Rego modules"), "{e}");
    let e = err(&[
        ("main.rego", MAIN),
        ("data.json", r#"{"k": 1}"#),
        ("k/data.json", "{}"),
    ]);
    assert!(e.contains("k/data.json"), "{e}");
    let e = err(&[
        ("main.rego", MAIN),
        ("a/data.json", r#"{"x": 1}"#),
        ("data.json", r#"{"a": {"x": 2}}"#),
    ]);
    assert!(e.contains("data.a.x is also set"), "{e}");
    let e = err(&[
        (".manifest", r#"{"roots": ["other"]}"#),
        ("main.rego", MAIN),
    ]);
    assert!(
        e.contains("main.rego: package mcp is outside the manifest roots"),
        "{e}"
    );
    let e = err(&[
        (".manifest", r#"{"roots": ["mcp"]}"#),
        ("main.rego", MAIN),
        ("data.json", r#"{"k": {}}"#),
    ]);
    assert!(e.contains("data path k is outside"), "{e}");
}

#[test]
fn multi_member_gzip_is_read_whole() {
    // A tar split over two gzip members.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(MAIN.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "main.rego", MAIN.as_bytes()).unwrap();
    let tar = b.into_inner().unwrap();
    let (a, rest) = tar.split_at(700);
    let mut out = Vec::new();
    for part in [a, rest] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, part).unwrap();
        out.extend(gz.finish().unwrap());
    }
    let got = unpack(&out, &Limits::default()).unwrap();
    assert_eq!(got.modules.len(), 1);
}

#[test]
fn garbage_is_refused() {
    let e = load(b"not gzip at all", &Limits::default(), &Settings::default()).unwrap_err();
    assert_eq!(e.kind(), "unpack");
    assert!(e.to_string().contains("not a gzipped tar"), "{e}");
    // gzip of something that is not a tar
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &[7u8; 2000]).unwrap();
    let e = load(
        &gz.finish().unwrap(),
        &Limits::default(),
        &Settings::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), "unpack", "{e}");
    // truncated
    let full = targz(&[("main.rego", MAIN)]);
    let e = load(
        &full[..full.len() / 2],
        &Limits::default(),
        &Settings::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), "unpack", "{e}");
}

fn bundle_settings() -> crate::config::settings::BundleSettings {
    let c = Config::from_json(
        br#"{"bundle": {"cluster": "b", "poll_interval_ms": 1000, "poll_jitter_ms": 100}}"#,
    )
    .unwrap();
    assert!(c.bundle_pending);
    c.settings.bundle.unwrap()
}

#[test]
fn poller_schedules_sends_etags_and_reads_answers() {
    let mut p = Poller::new(bundle_settings(), 42);
    let s = Settings::default();
    assert!(p.due(0));
    let h = p.request(0);
    assert!(h.contains(&(":path".into(), "/bundle.tar.gz".into())));
    assert!(h.contains(&(":authority".into(), "b".into())));
    assert!(!h.iter().any(|(k, _)| k == "if-none-match"));
    p.sent(7);
    assert!(!p.due(5000), "one call at a time");
    assert!(!p.due(5999));
    assert!(p.owns(7) && !p.owns(8));
    let body = targz(&[("main.rego", MAIN)]);
    let o = p.on_response(
        Some(200),
        Some("\"e1\"".into()),
        body.len(),
        || Some(body.clone()),
        &s,
    );
    assert!(matches!(o, Outcome::Loaded { .. }), "{o:?}");
    assert!(!p.due(999));
    assert!(p.due(1100));
    let h = p.request(1100);
    assert!(h.contains(&("if-none-match".into(), "\"e1\"".into())));
    p.sent(8);
    assert!(matches!(
        p.on_response(Some(304), None, 0, || None, &s),
        Outcome::NotModified
    ));
    p.request(3000);
    p.sent(9);
    let o = p.on_response(Some(500), None, 0, || None, &s);
    assert!(
        matches!(&o, Outcome::Failed(e) if e.to_string() == "bundle download failed: HTTP 500"),
        "{o:?}"
    );
    p.request(5000);
    p.sent(10);
    let o = p.on_response(None, None, 0, || None, &s);
    assert!(
        matches!(&o, Outcome::Failed(e) if e.kind() == "download"),
        "{o:?}"
    );
    // A broken bundle fails once, and its ETag is remembered.
    p.request(7000);
    p.sent(11);
    let bad = targz(&[("main.rego", "package mcp\nallow if {\n")]);
    let o = p.on_response(
        Some(200),
        Some("\"e2\"".into()),
        bad.len(),
        || Some(bad.clone()),
        &s,
    );
    assert!(
        matches!(&o, Outcome::Failed(e) if e.kind() == "compile" && e.to_string().contains("main.rego:")),
        "{o:?}"
    );
    assert_eq!(p.etag(), Some("\"e2\""));
    // An answer that never comes is given up after timeout_ms + 1 s.
    p.request(8000);
    p.sent(13);
    assert!(!p.due(8000 + 5000 + 1000));
    assert!(p.due(8000 + 5000 + 1001));
    assert!(!p.owns(13));
    // A source without ETags: the same bytes are not compiled again.
    let mut q = Poller::new(bundle_settings(), 1);
    q.request(0);
    q.sent(1);
    let o = q.on_response(Some(200), None, body.len(), || Some(body.clone()), &s);
    assert!(matches!(o, Outcome::Loaded { .. }), "{o:?}");
    q.request(2000);
    q.sent(2);
    let o = q.on_response(Some(200), None, body.len(), || Some(body.clone()), &s);
    assert!(matches!(o, Outcome::NotModified), "{o:?}");
    q.request(4000);
    q.sent(3);
    let o = q.on_response(Some(200), None, bad.len(), || Some(bad.clone()), &s);
    assert!(matches!(o, Outcome::Failed(_)), "{o:?}");
    q.request(6000);
    q.sent(4);
    let o = q.on_response(Some(200), None, bad.len(), || Some(bad.clone()), &s);
    assert!(
        matches!(o, Outcome::NotModified),
        "a broken bundle fails once: {o:?}"
    );
    // Jitter stays within its bound.
    for i in 0..100 {
        let now = 10_000 + i * 2000;
        p.request(now);
        assert!(p.next_poll_ms >= now + 1000 && p.next_poll_ms <= now + 1100);
    }
}

fn call(p: &mut crate::pipeline::request::Plugin, tool: &str) -> Result<(), (u32, String)> {
    let h = crate::policy::input::HttpRequest::from_headers(vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/mcp".to_vec()),
        (":authority".into(), b"x".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ]);
    let body =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#);
    match p.on_request_body(&h, body.as_bytes()).0 {
        crate::pipeline::request::BodyAction::Forward(_) => Ok(()),
        crate::pipeline::request::BodyAction::Reply(r) => {
            Err((r.status, String::from_utf8_lossy(&r.body).into_owned()))
        }
    }
}

#[test]
fn pending_denies_until_a_bundle_is_swapped_in() {
    let c = Config::from_json(br#"{"bundle": {"cluster": "b"}}"#).unwrap();
    let settings = c.settings.clone();
    let mut p = crate::pipeline::request::Plugin::from(c);
    assert_eq!(p.policy.revision(), "bundle-pending");
    let (status, body) = call(&mut p, "echo").unwrap_err();
    assert_eq!(status, 503);
    assert!(body.contains("policy bundle not loaded yet"), "{body}");
    let b = targz(&[
        ("main.rego", MAIN),
        ("k/data.json", r#"{"tools": ["rm"]}"#),
        (".manifest", r#"{"revision": "v7"}"#),
    ]);
    let mut p =
        crate::pipeline::request::Plugin::from(load(&b, &Limits::default(), &settings).unwrap());
    assert_eq!(p.policy.revision(), "v7");
    assert!(call(&mut p, "echo").is_ok());
    assert!(call(&mut p, "rm").unwrap_err().1.contains("killed"));
}

#[test]
fn bundle_settings_are_checked() {
    for (json, needle) in [
        (r#"{"bundle": {}}"#, "missing field `cluster`"),
        (
            r#"{"bundle": {"cluster": "b", "path": "x"}}"#,
            "must start with /",
        ),
        (
            r#"{"bundle": {"cluster": "b", "poll_interval_ms": 5}}"#,
            "poll_interval_ms",
        ),
        (
            r#"{"bundle": {"cluster": "b", "poll_interval_ms": 1000, "poll_jitter_ms": 2000}}"#,
            "poll_jitter_ms",
        ),
        (
            r#"{"bundle": {"cluster": "b", "max_bytes": 0}}"#,
            "max_bytes",
        ),
        (
            r#"{"bundle": {"cluster": "b", "max_files": 0}}"#,
            "max_files",
        ),
        (
            r#"{"bundle": {"cluster": "b", "colour": 1}}"#,
            "unknown field `colour`",
        ),
        (r#"{}"#, "missing field `policy`"),
    ] {
        let e = Config::from_json(json.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(needle), "{json}: {e}");
    }
    // Inline modules with a bundle: the inline policy serves until then.
    let c = Config::from_json(
        br#"{"policy": {"modules": {"a.rego": "package mcp\nallow := true\n"}}, "bundle": {"cluster": "b"}}"#,
    )
    .unwrap();
    assert!(!c.bundle_pending);
    assert!(c.policy.revision().starts_with("sha256:"));
}

#[test]
fn kept_bundles_round_trip() {
    let v = encode_kept(Some("\"e\""), b"abc");
    assert_eq!(
        decode_kept(&v),
        Some((Some("\"e\"".to_string()), &b"abc"[..]))
    );
    let v = encode_kept(None, b"");
    assert_eq!(decode_kept(&v), Some((None, &b""[..])));
    assert_eq!(decode_kept(b"\xff\xff\xff\xffab"), None);
    assert_eq!(decode_kept(b"ab"), None);
}

#[test]
fn limits_hold() {
    let big = "#".repeat(200_000);
    let bytes = targz(&[("main.rego", MAIN), ("pad.txt", &big)]);
    let l = Limits {
        max_uncompressed_bytes: 100_000,
        ..Limits::default()
    };
    let e = unpack(&bytes, &l).unwrap_err();
    assert_eq!(e.kind(), "too_large", "{e}");
    assert!(e.to_string().contains("max_uncompressed_bytes"), "{e}");
    let l = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    assert_eq!(unpack(&bytes, &l).unwrap_err().kind(), "too_large");
    let l = Limits {
        max_files: 1,
        ..Limits::default()
    };
    let e = unpack(&bytes, &l).unwrap_err();
    assert!(e.to_string().contains("max_files"), "{e}");
}
