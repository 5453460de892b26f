//! The audit-log replay and list filtering of `decide`, natively.

use serde_json::{json, Value};

const POLICY: &str = "package mcp\nimport rego.v1\n\ndefault allow := true\n\ndeny contains \"no deletes\" if {\n\tinput.mcp.method == \"tools/call\"\n\tinput.mcp.tool.name == \"delete_record\"\n}\n";

fn decide(extra: Value) -> Value {
    let mut r = json!({"modules": {"p.rego": POLICY}, "now_ms": 1_800_000_000_000u64});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    let out = crate::decide_value(&r);
    assert_eq!(out["ok"], true, "{out}");
    out
}

fn event(decision: &str, tool: &str, id: &str) -> String {
    json!({"decision": decision, "decision_id": id, "direction": "request", "kind": "request",
           "method": "tools/call", "tool": tool, "arguments": {"digest": "sha256:00"},
           "mode": "enforce", "reasons": [], "time": "2026-11-22T05:17:51.311Z", "upstream": "up"})
    .to_string()
}

#[test]
fn an_audit_log_is_decided_next_to_its_recorded_decisions() {
    let log = format!(
        "[info][wasm] mcp-policy audit {}\n{}\nother line\n{}\n",
        event("allow", "echo", "a"),
        event("allow", "delete_record", "b"),
        json!({"decision": "deny", "decision_id": "c", "direction": "response", "kind": "response", "method": "tools/list"})
    );
    let out = decide(json!({"audit": log}));
    let r = out["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(
        (r[0]["decision"].as_str(), r[0]["changed"].as_bool()),
        (Some("allow"), Some(false))
    );
    assert_eq!(r[0]["recorded"]["line"], 1);
    assert_eq!(r[0]["message_form"], "audit event");
    assert_eq!(
        (r[1]["decision"].as_str(), r[1]["changed"].as_bool()),
        (Some("deny"), Some(true))
    );
    assert_eq!(r[1]["messages"][0]["reasons"], json!(["no deletes"]));
    assert_eq!(r[1]["recorded"]["decision"], "allow");
    assert!(r[1]["reconstructed"].to_string().contains("only a digest"));
    assert!(r[2]["skipped"].as_str().unwrap().contains("server sent"));
    assert_eq!(r[2]["recorded"]["decision"], "deny");
    let bad = crate::decide_value(&json!({"modules": {"p.rego": POLICY}, "audit": "nothing"}));
    assert_eq!(bad["ok"], false);
}

#[test]
fn a_tools_list_answer_is_filtered_for_the_caller() {
    let tools = json!({"jsonrpc": "2.0", "id": 9, "result": {"tools": [
        {"name": "echo", "inputSchema": {"type": "object"}},
        {"name": "delete_record", "inputSchema": {"type": "object"}}], "nextCursor": "n"}});
    let out = decide(
        json!({"message": r#"{"jsonrpc":"2.0","id":"l","method":"tools/list"}"#, "tools": tools}),
    );
    let list = &out["results"][0]["list"];
    assert_eq!(list["hidden"], json!(["delete_record"]), "{out}");
    assert_eq!(list["shown"], json!(["echo"]));
    let answer: Value = serde_json::from_str(list["answer"].as_str().unwrap()).unwrap();
    assert_eq!(answer["id"], "l");
    assert_eq!(answer["result"]["nextCursor"], "n");
    // Other messages get no list; a tools value that is no list is refused.
    let out = decide(
        json!({"message": r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, "tools": [{"name": "echo"}]}),
    );
    assert!(out["results"][0].get("list").is_none());
    let bad = crate::decide_value(
        &json!({"modules": {"p.rego": POLICY}, "message": "{}", "tools": {"x": 1}}),
    );
    assert_eq!(bad["ok"], false);
}
