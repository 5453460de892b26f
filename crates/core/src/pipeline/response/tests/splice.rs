//! List answers edited in their own bytes: hidden items cut out, the rest
//! forwarded exactly as the server wrote it.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

const RM: &str =
    "package mcp\ndefault allow := true\ndeny contains \"no\" if input.mcp.tool.name == \"rm\"\n";

const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

const MODERN_LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

/// What a JSON tools/list answer `body` becomes under `policy`.
fn filtered(p: &mut Plugin, request: &str, body: &str) -> Output {
    let modern = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let headers: &[(&str, &str)] = if request == MODERN_LIST { &modern } else { &[] };
    let f = forwarded(p, &post(headers), request);
    let mut s = open(f, "application/json", "");
    s.feed(p, body.as_bytes(), true, None)
}

fn text(out: &Output) -> &str {
    std::str::from_utf8(&out.bytes).unwrap()
}

fn hidden(out: &Output) -> Vec<String> {
    out.decided
        .iter()
        .flat_map(|d| d.record.hidden.clone())
        .collect()
}

#[test]
fn a_hidden_item_is_cut_out_wherever_it_is() {
    let mut p = plugin_with(RM, serde_json::json!({}));
    let cases = [
        // middle, pretty-printed: the separators and layout are the server's
        (
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\": [\n  {\"name\":\"a\"},\n  {\"name\":\"rm\"},\n  {\"name\":\"b\"}\n]}}",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\": [\n  {\"name\":\"a\"},\n  {\"name\":\"b\"}\n]}}",
        ),
        // first
        (
            r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"rm"},{"name":"a"},{"name":"b"}],"nextCursor":"c"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"},{"name":"b"}],"nextCursor":"c"}}"#,
        ),
        // last, and twice
        (
            r#"{"result":{"tools":[{"name":"a"} , {"name":"rm","x":1} , {"name":"rm"}]},"id":2,"jsonrpc":"2.0"}"#,
            r#"{"result":{"tools":[{"name":"a"}]},"id":2,"jsonrpc":"2.0"}"#,
        ),
        // all
        (
            r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[ {"name":"rm"} ]}}"#,
            r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[  ]}}"#,
        ),
    ];
    for (body, want) in cases {
        let out = filtered(&mut p, LIST, body);
        assert_eq!(text(&out), want);
        assert!(hidden(&out).iter().all(|h| h == "rm"));
        serde_json::from_slice::<serde_json::Value>(&out.bytes).unwrap();
    }
}

#[test]
fn nothing_hidden_nothing_changed() {
    let mut p = plugin_with(RM, serde_json::json!({}));
    let body = "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[ {\"name\":\"a\"},\n{\"name\":\"b\"} ]}}";
    let out = filtered(&mut p, LIST, body);
    assert_eq!(text(&out), body);
    assert!(hidden(&out).is_empty());
    assert_eq!(out.decided.len(), 1, "the list is still recorded");
}

#[test]
fn kept_items_are_byte_identical_with_unicode_and_escapes() {
    let mut p = plugin_with(RM, serde_json::json!({}));
    let kept = r#"{"name":"caf\u00e9","description":"Ünïcödé 😀 \"quoted\" \\ back\/slash \n\t","inputSchema":{"type":"object","x":1.50,"y":1e3}}"#;
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":2,"result":{{"tools":[{kept},{{"name":"\u0072m"}},{{"name":"日本"}}]}}}}"#
    );
    let out = filtered(&mut p, LIST, &body);
    assert_eq!(
        text(&out),
        format!(r#"{{"jsonrpc":"2.0","id":2,"result":{{"tools":[{kept},{{"name":"日本"}}]}}}}"#),
        "an escaped name is read as the policy sees it; the kept items are untouched"
    );
    assert_eq!(hidden(&out), ["rm"]);
}

#[test]
fn duplicate_items_are_evaluated_once() {
    let mut p = plugin_with(RM, serde_json::json!({}));
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"},{"name":"rm"},{"name":"a"},{"name":"rm"}]}}"#;
    let out = filtered(&mut p, LIST, body);
    assert_eq!(
        text(&out),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"},{"name":"a"}]}}"#
    );
    assert_eq!(hidden(&out), ["rm", "rm"]);
    assert_eq!(
        p.listing.hits, 2,
        "the second of each is the first's verdict"
    );
}

#[test]
fn a_modern_list_is_marked_private_in_place() {
    let mut p = plugin_with(RM, serde_json::json!({}));
    // No cacheScope: added after the items.
    let out = filtered(
        &mut p,
        MODERN_LIST,
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"},{"name":"rm"}],"ttlMs":5}}"#,
    );
    assert_eq!(
        text(&out),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}],"cacheScope":"private","ttlMs":5}}"#
    );
    // Another scope, before or after the items: its value replaced.
    for (body, want) in [
        (
            r#"{"jsonrpc":"2.0","id":2,"result":{"cacheScope" : "public","tools":[{"name":"a"}]}}"#,
            r#"{"jsonrpc":"2.0","id":2,"result":{"cacheScope" : "private","tools":[{"name":"a"}]}}"#,
        ),
        (
            r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"rm"},{"name":"a"}],"cacheScope":"public"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}],"cacheScope":"private"}}"#,
        ),
    ] {
        assert_eq!(text(&filtered(&mut p, MODERN_LIST, body)), want);
    }
    // Already private, nothing hidden: untouched.
    let body =
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}],"cacheScope":"private"}}"#;
    assert_eq!(text(&filtered(&mut p, MODERN_LIST, body)), body);
    // An empty list: re-serialised (no item gives a place to write).
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[ ]}}"#;
    assert_eq!(
        text(&filtered(&mut p, MODERN_LIST, body)),
        r#"{"id":2,"jsonrpc":"2.0","result":{"cacheScope":"private","tools":[]}}"#
    );
    // A 2025 list with a caching hint is marked too.
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}],"ttlMs":1}}"#;
    assert_eq!(
        text(&filtered(&mut p, LIST, body)),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}],"cacheScope":"private","ttlMs":1}}"#
    );
}

#[test]
fn repeated_members_are_read_as_serde_json_reads_them() {
    let mut p = plugin_with(RM, serde_json::json!({}));
    // `tools` twice in the result: the last counts, and the answer is
    // re-serialised with it alone.
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}],"tools":[{"name":"rm"},{"name":"b"}]}}"#;
    let out = filtered(&mut p, LIST, body);
    assert_eq!(
        text(&out),
        r#"{"id":2,"jsonrpc":"2.0","result":{"tools":[{"name":"b"}]}}"#
    );
    assert_eq!(hidden(&out), ["rm"]);
    // A name twice in an item: the last counts; a name that is not a
    // string is no name (the item is kept: no rule names it).
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a","name":"rm"},{"name":"rm","name":"b"},{"name":"rm","name":7}]}}"#;
    let out = filtered(&mut p, LIST, body);
    assert_eq!(
        text(&out),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"rm","name":"b"},{"name":"rm","name":7}]}}"#
    );
    assert_eq!(hidden(&out), ["rm"]);
}

/// Items that are not objects with members, or whose keys are escaped,
/// are left to the re-serialising path: the same items hidden, the answer
/// written again by serde_json.
#[test]
fn items_the_one_pass_reading_leaves_aside_are_decided_the_same() {
    use crate::pipeline::response::splice::ListSpans;
    let mut p = plugin_with(RM, serde_json::json!({}));
    for odd in [
        r#"7"#,
        r#"{}"#,
        r#""rm""#,
        r#"{"n\u0061me":"x"}"#,
        r#"[{"name":"rm"}]"#,
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0", "id":2, "result":{{"tools":[{{"name":"rm"}}, {odd}, {{"name":"a"}}]}}}}"#
        );
        assert!(ListSpans::read_answer(&body, "tools").is_none(), "{body}");
        let out = filtered(&mut p, LIST, &body);
        assert_eq!(hidden(&out), ["rm"], "{body}");
        let want: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"jsonrpc":"2.0","id":2,"result":{{"tools":[{odd},{{"name":"a"}}]}}}}"#
        ))
        .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out.bytes).unwrap(),
            want,
            "{body}"
        );
    }
    // Spacing inside and around items, nested objects and escaped values:
    // each item is found to its exact bytes.
    let body = "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[\n {\n  \"name\" : \"r\\u006d\" ,\"x\":{\"a\":[1,{\"b\":\"}\"}]} \n} ,\r\n\t{ \"name\":\"a\", \"d\":\"\\\"{\" }\n]}}";
    let (spans, _, _) = ListSpans::read_answer(body, "tools").unwrap();
    assert_eq!(
        spans.items,
        [
            "{\n  \"name\" : \"r\\u006d\" ,\"x\":{\"a\":[1,{\"b\":\"}\"}]} \n}",
            "{ \"name\":\"a\", \"d\":\"\\\"{\" }"
        ]
    );
    assert_eq!(spans.names[0].name.as_deref(), Some("rm"));
    let out = filtered(&mut p, LIST, body);
    assert_eq!(hidden(&out), ["rm"]);
    assert_eq!(
        text(&out),
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[\n { \"name\":\"a\", \"d\":\"\\\"{\" }\n]}}"
    );
}

#[test]
fn resources_are_named_by_uri() {
    let policy = "package mcp\ndefault allow := true\ndeny contains \"no\" if startswith(input.mcp.resource.uri, \"file:///secret\")\n";
    let mut p = plugin_with(policy, serde_json::json!({}));
    let request = r#"{"jsonrpc":"2.0","id":2,"method":"resources/list"}"#;
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"resources":[{"uri":"file:///secret/a","name":"a"},{"uri":"file:///pub/b","name":"b"}]}}"#;
    let out = filtered(&mut p, request, body);
    assert_eq!(
        text(&out),
        r#"{"jsonrpc":"2.0","id":2,"result":{"resources":[{"uri":"file:///pub/b","name":"b"}]}}"#
    );
    assert_eq!(hidden(&out), ["file:///secret/a"]);
}

#[test]
fn an_sse_list_answer_is_spliced_line_for_line() {
    let mut p = plugin_with(RM, serde_json::json!({}));
    let f = forwarded(&mut p, &post(&[]), LIST);
    let mut s = open(f, "text/event-stream", "");
    // The message over three data lines.
    let stream = "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[\ndata: {\"name\":\"rm\"},\ndata: {\"name\":\"a\"}]}}\n\n";
    let out = s.feed(&mut p, stream.as_bytes(), true, None);
    assert_eq!(
        text(&out),
        "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[\ndata: {\"name\":\"a\"}]}}\n\n"
    );
    assert_eq!(hidden(&out), ["rm"]);
    // Nothing hidden: the event as it came.
    let f = forwarded(&mut p, &post(&[]), LIST);
    let mut s = open(f, "text/event-stream", "");
    let stream = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[\ndata: {\"name\":\"a\"}]}}\n\n";
    assert_eq!(text(&s.feed(&mut p, stream.as_bytes(), true, None)), stream);
}

#[test]
fn audit_mode_cuts_nothing_but_records_the_hidden() {
    let mut p = plugin_with(RM, serde_json::json!({"mode": "audit"}));
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"rm"},{"name":"a"}]}}"#;
    let out = filtered(&mut p, MODERN_LIST, body);
    assert_eq!(text(&out), body);
    assert_eq!(hidden(&out), ["rm"]);
}

/// The one-pass reading of a plain list answer (`ListSpans::read_answer`)
/// takes only what the full reading (`jsonrpc::parse_shallow`) reads as a
/// response with that id and nothing else; everything else is left to the
/// full reading, which says what is wrong.
#[test]
fn the_one_pass_reading_takes_only_plain_answers() {
    use crate::mcp::jsonrpc::{parse_shallow, Body, Kind};
    use crate::pipeline::response::splice::ListSpans;
    let items = r#"{"tools":[{"name":"a"},{"name":"rm"}]}"#;
    let taken = [
        format!(r#"{{"jsonrpc":"2.0","id":2,"result":{items}}}"#),
        format!(r#"{{"result":{items},"id":"x-1","jsonrpc":"2.0"}}"#),
        format!(r#" {{ "jsonrpc" : "2.0" , "id" : -7 , "result" : {items} , "extra" : [1] }} "#),
        format!(r#"{{"jsonrpc":"2.0","\u0069d":2,"res\u0075lt":{items}}}"#),
    ];
    let left = [
        format!(r#"{{"jsonrpc":"1.0","id":2,"result":{items}}}"#),
        format!(r#"{{"id":2,"result":{items}}}"#),
        format!(r#"{{"jsonrpc":"2.0","result":{items}}}"#),
        format!(r#"{{"jsonrpc":"2.0","id":null,"result":{items}}}"#),
        format!(r#"{{"jsonrpc":"2.0","id":1.5,"result":{items}}}"#),
        format!(r#"{{"jsonrpc":"2.0","id":2,"id":3,"result":{items}}}"#),
        format!(r#"{{"jsonrpc":"2.0","jsonrpc":"2.0","id":2,"result":{items}}}"#),
        format!(r#"{{"jsonrpc":"2.0","id":2,"result":{items},"result":{items}}}"#),
        format!(
            r#"{{"jsonrpc":"2.0","id":2,"result":{items},"error":{{"code":1,"message":"x"}}}}"#
        ),
        format!(r#"{{"jsonrpc":"2.0","id":2,"method":"x","result":{items}}}"#),
        format!(r#"{{"jsonrpc":"2.0","id":2,"params":{{}},"result":{items}}}"#),
        r#"{"jsonrpc":"2.0","id":2,"result":{"prompts":[]}}"#.to_string(),
        r#"{"jsonrpc":"2.0","id":2,"result":[1]}"#.to_string(),
        r#"[{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}]"#.to_string(),
    ];
    for t in &taken {
        let (spans, id, value) =
            ListSpans::read_answer(t, "tools").unwrap_or_else(|| panic!("{t}"));
        assert_eq!(spans.items.len(), 2, "{t}");
        match parse_shallow(t.as_bytes()) {
            Ok(Body::Single(m)) => {
                assert_eq!(m.kind, Kind::Response, "{t}");
                assert_eq!(m.id_raw.map(|r| r.get()), Some(id.get()), "{t}");
                assert_eq!(m.id, value, "{t}");
                assert!(m.method.is_none(), "{t}");
                assert_eq!(m.params, Value::Undefined, "{t}");
                assert_eq!(m.error, Value::Undefined, "{t}");
            }
            other => panic!("{t}: {other:?}"),
        }
    }
    for t in &left {
        assert!(ListSpans::read_answer(t, "tools").is_none(), "{t}");
    }
}

/// Answers the one-pass reading leaves aside are decided as before: one
/// with its id twice is refused, one for another request is not filtered.
#[test]
fn answers_the_one_pass_reading_leaves_aside_are_read_whole() {
    let mut p = plugin_with(RM, serde_json::json!({}));
    let twice = r#"{"jsonrpc":"2.0","id":2,"id":2,"result":{"tools":[{"name":"rm"}]}}"#;
    let out = filtered(&mut p, LIST, twice);
    assert!(text(&out).contains("unreadable"), "{}", text(&out));
    assert!(!text(&out).contains("\"rm\""), "{}", text(&out));
    let other = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"rm"}]}}"#;
    let out = filtered(&mut p, LIST, other);
    assert!(hidden(&out).is_empty());
    let plain = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"},{"name":"rm"}]}}"#;
    let out = filtered(&mut p, LIST, plain);
    assert_eq!(hidden(&out), ["rm"]);
    assert_eq!(
        text(&out),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}]}}"#
    );
}

/// The one-pass reading against serde_json on many shapes of item: when it
/// takes an answer, each item's bytes read as the answer's item and its
/// names as serde_json reads them; when it does not, nothing is claimed.
#[test]
fn the_one_pass_items_agree_with_serde_json() {
    use crate::pipeline::response::splice::ListSpans;
    let pieces = [
        r#"{"name":"a"}"#,
        r#"{ "name" : "b" , "description" : "x}{\"]" }"#,
        "{\n\t\"inputSchema\":{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"string\"}}},\r\n\"name\":\"c\"\n}",
        r#"{"name":"d","name":"e"}"#,
        r#"{"name":"f","name":null}"#,
        r#"{"name":1}"#,
        r#"{"uri":"file:///x","name":"g"}"#,
        r#"{"uriTemplate":"file:///{p}"}"#,
        r#"{"name":"caf\u00e9 \ud83d\ude00"}"#,
        r#"{"n\u0061me":"h"}"#,
        r#"{}"#,
        r#"7"#,
        r#""s""#,
        r#"[1,{"name":"i"}]"#,
        r#"{"a":[[[]]],"b":{},"name":"j","c":-1.5e3}"#,
        r#"{"":"","name":"k"}"#,
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let spaces = ["", " ", "\n  ", "\t", "\r\n"];
    let (mut taken, mut left) = (0, 0);
    for _ in 0..400 {
        let n = next(5);
        let items: Vec<&str> = (0..n).map(|_| pieces[next(pieces.len())]).collect();
        let sep = spaces[next(spaces.len())];
        let array = items.join(&format!("{sep},{sep}"));
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":2,"result":{{"tools":[{sep}{array}{sep}],"nextCursor":"z"}}}}"#
        );
        let whole: serde_json::Value = serde_json::from_str(&body).unwrap();
        let values = whole["result"]["tools"].as_array().unwrap();
        let Some((spans, _, _)) = ListSpans::read_answer(&body, "tools") else {
            left += 1;
            continue;
        };
        taken += 1;
        assert_eq!(spans.items.len(), values.len(), "{body}");
        assert_eq!(spans.names.len(), values.len(), "{body}");
        for ((raw, names), v) in spans.items.iter().zip(&spans.names).zip(values) {
            let item: serde_json::Value = serde_json::from_str(raw).unwrap();
            assert_eq!(&item, v, "{body}");
            let name = |k: &str| v.get(k).and_then(|n| n.as_str());
            assert_eq!(names.name.as_deref(), name("name"), "{body}");
            assert_eq!(names.uri.as_deref(), name("uri"), "{body}");
            assert_eq!(names.uri_template.as_deref(), name("uriTemplate"), "{body}");
        }
    }
    assert!(taken > 50 && left > 50, "taken {taken}, left {left}");
}
