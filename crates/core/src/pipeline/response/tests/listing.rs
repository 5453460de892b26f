use super::*;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[test]
fn listed_definitions_reach_a_policy_that_reads_them() {
    let policy = "package mcp\ndefault allow := true\ndeny contains \"destructive\" if input.mcp.tool.definition.annotations.destructiveHint == true\n";
    let mut p = plugin_with(policy, serde_json::json!({}));
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let f = forwarded(&mut p, &post(&[]), list);
    let mut s = open(f, "application/json", "");
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"rm","inputSchema":{"type":"object"},"annotations":{"destructiveHint":true}}]}}"#;
    let out = s.feed(&mut p, body.as_bytes(), true, None);
    let v: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(v["result"]["tools"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["result"]["tools"][0]["name"], "echo");
}

#[test]
fn listing_verdicts_are_reused_only_for_the_same_input() {
    let run = |p: &mut Plugin, headers: &[(&str, &str)]| {
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        let f = forwarded(p, &post(headers), list);
        let mut s = open(f, "application/json", "");
        let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"rm","inputSchema":{"type":"object"}}]}}"#;
        listed_names(&s.feed(p, body.as_bytes(), true, None))
    };
    // Who may see `rm` depends on a header the policy reads.
    let policy = "package mcp\ndefault allow := true\ndeny contains \"no\" if {\n input.mcp.tool.name == \"rm\"\n input.http.headers[\"x-role\"] != \"admin\"\n}\n";
    let mut p = plugin_with(policy, serde_json::json!({}));
    assert!(!p.needs.volatile);
    assert_eq!(run(&mut p, &[("x-role", "user")]), ["echo"]);
    assert_eq!(p.listing.hits, 0);
    assert_eq!(run(&mut p, &[("x-role", "user")]), ["echo"]);
    assert_eq!(
        p.listing.hits, 2,
        "the same caller's list is answered from the memo"
    );
    // Another caller: another input, decided afresh.
    assert_eq!(run(&mut p, &[("x-role", "admin")]), ["echo", "rm"]);
    assert_eq!(p.listing.hits, 2);
    assert_eq!(run(&mut p, &[("x-role", "user")]), ["echo"]);
    assert_eq!(p.listing.hits, 4);
    // A policy reading definitions: the same name with another
    // definition is another input.
    let policy = "package mcp\ndefault allow := true\ndeny contains \"destructive\" if input.mcp.tool.definition.annotations.destructiveHint == true\n";
    let mut p = plugin_with(policy, serde_json::json!({}));
    let listed = |p: &mut Plugin, hint: bool| {
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        let f = forwarded(p, &post(&[]), list);
        let mut s = open(f, "application/json", "");
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [
                {"name": "x", "inputSchema": {"type": "object"}, "annotations": {"destructiveHint": hint}}
            ]}})
            .to_string();
        listed_names(&s.feed(p, body.as_bytes(), true, None))
    };
    assert_eq!(listed(&mut p, false), ["x"]);
    assert_eq!(listed(&mut p, false), ["x"]);
    assert_eq!(p.listing.hits, 1);
    assert!(
        listed(&mut p, true).is_empty(),
        "a changed definition is decided afresh"
    );
    assert_eq!(p.listing.hits, 1);
    // A policy that reads the clock is never answered from the memo.
    let clock = "package mcp\ndefault allow := true\ndeny contains \"late\" if {\n input.mcp.tool.name == \"rm\"\n time.now_ns() > 0\n}\n";
    let mut p = plugin_with(clock, serde_json::json!({}));
    assert!(p.needs.volatile);
    assert_eq!(run(&mut p, &[]), ["echo"]);
    assert_eq!(run(&mut p, &[]), ["echo"]);
    assert_eq!(p.listing.hits, 0);
}

#[test]
fn lists_are_filtered_per_caller() {
    let mut p = plugin_with(POLICY, serde_json::json!({}));
    p.policy.set_recording(true);
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let f = forwarded(
        &mut p,
        &post(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ]),
        list,
    );
    let mut s = open(f, "application/json", "");
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"rm","inputSchema":{"type":"object"}}],"ttlMs":60000,"cacheScope":"public","resultType":"complete"}}"#;
    p.policy.take_recorded();
    let out = s.feed(&mut p, body.as_bytes(), true, None);
    let v: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo"]);
    assert_eq!(v["result"]["cacheScope"], "private");
    assert_eq!(v["result"]["ttlMs"], 60000);
    let hidden: Vec<_> = out
        .decided
        .iter()
        .flat_map(|d| d.record.hidden.clone())
        .collect();
    assert_eq!(hidden, ["rm"]);
    let inputs = p.policy.take_recorded();
    let listing: Vec<_> = inputs
        .iter()
        .filter(|e| e.input["mcp"]["listing"] == Value::from(true))
        .collect();
    assert_eq!(listing.len(), 2);
    assert_eq!(listing[0].input["mcp"]["method"], Value::from("tools/call"));
    assert_eq!(listing[0].input["mcp"]["tool"]["name"], Value::from("echo"));
    // This policy never mentions `definition`: none is built.
    assert_eq!(
        listing[0].input["mcp"]["tool"]["definition"],
        Value::Undefined
    );
    assert_eq!(
        listing[0].input["mcp"]["direction"],
        Value::from("client_to_server")
    );
    let response = inputs
        .iter()
        .find(|e| e.input["mcp"]["direction"] == Value::from("server_to_client"))
        .unwrap();
    assert_eq!(response.input["mcp"]["method"], Value::from("tools/list"));
    assert_eq!(response.input["mcp"]["kind"], Value::from("response"));
}

#[test]
fn visible_decides_when_given_and_lists_alone_do_not_evaluate_responses() {
    let policy = r#"package mcp
default allow := true
visible := false if input.mcp.tool.name == "echo"
"#;
    let mut p = plugin_with(policy, serde_json::json!({}));
    assert!(!p.needs.responses);
    p.policy.set_recording(true);
    let f = forwarded(
        &mut p,
        &post(&[]),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    );
    let mut s = open(f, "application/json", "");
    p.policy.take_recorded();
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo"},{"name":"add"}]}}"#;
    let out = s.feed(&mut p, body.as_bytes(), true, None);
    let v: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(v["result"]["tools"], serde_json::json!([{"name":"add"}]));
    assert!(
        v["result"].get("cacheScope").is_none(),
        "not a 2026-07-28 result"
    );
    assert_eq!(
        p.policy.take_recorded().len(),
        2,
        "one evaluation per item, none for the response"
    );
    // Other requests' responses are not inspected at all.
    let f = forwarded(&mut p, &post(&[]), &call(3, "echo"));
    assert!(f.response.is_none());
    // Nor with filter_lists off.
    let mut p = plugin_with(policy, serde_json::json!({"filter_lists": false}));
    let f = forwarded(
        &mut p,
        &post(&[]),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    );
    assert!(f.response.is_none());
}
