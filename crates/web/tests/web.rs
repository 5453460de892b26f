//! The JS-facing API of the web build (`compile`, `decide`): natively under
//! `cargo test`, and on wasm32-unknown-unknown in Node and headless Chromium
//! (`make web-test`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{json, Value};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test;

const POLICY: &str = r#"package mcp
import rego.v1

default allow := false

allow if input.mcp.kind != "request"
allow if input.mcp.method in {"initialize", "ping", "tools/list"}
allow if {
	input.mcp.method == "tools/call"
	input.mcp.tool.name in data.tools.allowed
}

deny contains sprintf("%s may not call %s", [input.identity.claims.sub, input.mcp.tool.name]) if {
	input.mcp.tool.name == "send_email"
	input.identity.claims.role != "admin"
}
"#;

fn call(id: u64, tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
        .to_string()
}

fn request(extra: Value) -> Value {
    let mut r = json!({
        "modules": {"policy.rego": POLICY},
        "data": {"tools": {"allowed": ["echo", "send_email"]}},
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn decide(extra: Value) -> Value {
    let out: Value =
        serde_json::from_str(&mcp_policy_web::decide(&request(extra).to_string())).unwrap();
    assert_eq!(out["ok"], true, "{out}");
    out
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_policy_compiles_with_its_revision_and_engine() {
    let out: Value =
        serde_json::from_str(&mcp_policy_web::compile(&request(json!({})).to_string())).unwrap();
    assert_eq!(out["ok"], true, "{out}");
    assert!(out["revision"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(out["engine"], "rvm");
    assert_eq!(out["warnings"], json!([]));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_broken_policy_reports_its_line_and_column() {
    let r =
        json!({"modules": {"bad.rego": "package mcp\n\nallow if {\n\tinput.mcp.method ==\n}\n"}});
    let out = mcp_policy_web::compile_value(&r);
    assert_eq!(out["ok"], false, "{out}");
    let e = &out["errors"][0];
    assert_eq!(e["module"], "bad.rego", "{out}");
    assert!(e["line"].as_u64().unwrap() >= 4, "{out}");
    assert!(e["column"].as_u64().is_some(), "{out}");
    assert!(e["location"].as_str().unwrap().starts_with("bad.rego:"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn undocumented_input_paths_are_warnings() {
    let r = json!({"modules": {"p.rego": "package mcp\nimport rego.v1\nallow if input.mcp.metod == \"ping\"\n"}});
    let out = mcp_policy_web::compile_value(&r);
    assert_eq!(out["ok"], true, "{out}");
    let w = &out["warnings"][0];
    assert_eq!(w["code"], "input-path", "{out}");
    assert_eq!(w["line"], 3, "{out}");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_session_in_json_lines_is_decided_in_order_with_identity() {
    let session = [call(1, "echo"), call(2, "send_email"), call(3, "rm")].join("\n");
    let out = decide(json!({
        "session": session,
        "protocol_version": "2025-11-25",
        "identity": {"claims": {"sub": "alice", "role": "user"}},
        "now_ms": 1_700_000_000_000u64,
        "seed": vec![7; 32],
    }));
    let results = out["results"].as_array().unwrap();
    let decisions: Vec<&Value> = results.iter().map(|r| &r["decision"]).collect();
    assert_eq!(decisions, ["allow", "deny", "deny"]);
    let denied = &results[1];
    assert_eq!(
        denied["messages"][0]["reasons"],
        json!(["alice may not call send_email"])
    );
    assert_eq!(
        denied["messages"][0]["input"]["identity"]["claims"]["sub"],
        "alice"
    );
    let rules = denied["messages"][0]["rules"].as_array().unwrap();
    let deny = rules.iter().find(|r| r["rule"] == "deny").unwrap();
    assert_eq!(deny["location"], "policy.rego:13:1");
    assert_eq!(deny["value"], json!(["alice may not call send_email"]));
    assert_eq!(denied["reply"]["status"], 200);
    assert_eq!(denied["reply"]["body"]["error"]["code"], -31403);
    // The default holds for a tool nobody allows, and says so.
    let rules = &results[2]["messages"][0]["rules"];
    assert_eq!(rules[0]["default"], true, "{rules}");
    assert_eq!(rules[0]["location"], "policy.rego:4:1");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_protocol_version_and_headers_reach_the_input() {
    let out = decide(json!({
        "messages": [call(1, "echo")],
        "protocol_version": "2025-06-18",
        "headers": {"x-tenant": "acme"},
    }));
    let input = &out["results"][0]["messages"][0]["input"];
    assert_eq!(input["mcp"]["protocol_version"], "2025-06-18", "{input}");
    assert_eq!(out["results"][0]["decision"], "allow");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn bad_requests_are_errors_not_panics() {
    for r in [
        "",
        "[]",
        "{}",
        r#"{"modules": {}}"#,
        r#"{"modules": {"p.rego": 1}}"#,
        r#"{"modules": {"p.rego": "package mcp"}, "data": []}"#,
        r#"{"modules": {"p.rego": "package mcp"}, "session": ""}"#,
        r#"{"modules": {"p.rego": "package mcp"}, "messages": ["{}"], "identity": {"claims": 1}}"#,
    ] {
        let out: Value = serde_json::from_str(&mcp_policy_web::decide(r)).unwrap();
        let failed = out["ok"] == false
            || out["results"]
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x.get("error").is_some()));
        assert!(failed, "{r}: {out}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn one_message_that_is_a_batch_is_one_request() {
    let batch = format!("[{},{}]", call(1, "echo"), call(2, "rm"));
    let out = decide(json!({"message": batch, "protocol_version": "2025-03-26"}));
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{out}");
    assert_eq!(results[0]["messages"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(results[0]["decision"], "deny");
}

/// A policy the RVM compiler refuses (`k, v in c`) runs on the interpreter,
/// which the browser build runs without a wall-clock bound (it has no clock
/// regorus can read): it compiles and decides there as natively.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_policy_on_the_interpreter_compiles_and_decides() {
    let policy = "package mcp\nimport rego.v1\n\ndefault allow := true\n\ndeny contains \"admins only\" if {\n\tnot \"role\", \"admin\" in input.identity.claims\n\tinput.mcp.method == \"tools/call\"\n}\n";
    let req = json!({"modules": {"policy.rego": policy}});
    let out: Value = serde_json::from_str(&mcp_policy_web::compile(&req.to_string())).unwrap();
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["engine"], "interpreter", "{out}");
    let mut d = req.clone();
    d["message"] = json!(call(1, "echo"));
    d["identity"] = json!({"claims": {"sub": "alice", "role": "admin"}});
    let out: Value = serde_json::from_str(&mcp_policy_web::decide(&d.to_string())).unwrap();
    assert_eq!(out["ok"], true, "{out}");
    let text = out.to_string();
    assert!(!text.contains("admins only"), "{text}");
    d["identity"] = json!({"claims": {"sub": "bob", "role": "user"}});
    let out: Value = serde_json::from_str(&mcp_policy_web::decide(&d.to_string())).unwrap();
    assert!(out.to_string().contains("admins only"), "{out}");
}
