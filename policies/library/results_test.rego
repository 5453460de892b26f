# Tests for library/results.rego (opa test convention).
package results_test

import rego.v1

import data.mcp

tool_result(name, findings) := {"mcp": {
	"kind": "response", "direction": "server_to_client", "method": "tools/call",
	"tool": {"name": name}, "result": {"content": []}, "findings": findings,
}}

read_result(findings) := {"mcp": {
	"kind": "response", "direction": "server_to_client", "method": "resources/read",
	"resource": {"uri": "file:///notes.txt"}, "result": {"contents": []}, "findings": findings,
}}

prompt_result(findings) := {"mcp": {
	"kind": "response", "direction": "server_to_client", "method": "prompts/get",
	"prompt": {"name": "review"}, "result": {"messages": []}, "findings": findings,
}}

finding(kind, detector) := {"kind": kind, "detector": detector, "pointer": "/content/0/text", "start": 0, "end": 4}

aws := finding("secret", "aws_access_key")

email := finding("pii", "email")

ignore := finding("injection", "ignore_instructions")

role := finding("injection", "role_tag")

cut := {"kind": "limit", "detector": "scan_truncated", "pointer": "/content/0/text", "start": 262144, "end": 262144}

redacted(inp, cfg) := r if {
	r := mcp.redact with input as inp with data.library.results as cfg
}

reasons(inp, cfg) := r if {
	r := mcp.results_deny with input as inp with data.library.results as cfg
}

test_secrets_and_pii_redacted_by_default if {
	redacted(tool_result("lookup", [aws, email]), {}) == {"secret", "pii"}
	redacted(tool_result("lookup", [aws]), {}) == {"secret"}
	redacted(read_result([email]), {}) == {"pii"}
	redacted(prompt_result([aws]), {}) == {"secret"}
	count(reasons(tool_result("lookup", [aws, email]), {})) == 0
}

test_redaction_is_configurable if {
	redacted(tool_result("lookup", [aws, email]), {"redact": ["aws_access_key"]}) == {"aws_access_key"}
	count(redacted(tool_result("lookup", [aws, email]), {"redact": []})) == 0
}

test_injection_blocks_tool_results if {
	reasons(tool_result("fetch_page", [role, ignore, ignore]), {}) == {`results: the result of tools/call "fetch_page" is blocked (detected: ignore_instructions, role_tag)`}
}

test_injection_in_resources_and_prompts_passes_by_default if {
	count(reasons(read_result([ignore]), {})) == 0
	count(reasons(prompt_result([ignore]), {})) == 0
	reasons(read_result([ignore]), {"block_methods": ["tools/call", "resources/read"]}) == {`results: the result of resources/read is blocked (detected: ignore_instructions)`}
}

test_block_list_is_configurable if {
	reasons(tool_result("lookup", [aws]), {"block": ["secret"]}) == {`results: the result of tools/call "lookup" is blocked (detected: aws_access_key)`}
	count(reasons(tool_result("lookup", [ignore]), {"block": ["role_tag"]})) == 0
}

test_unscanned_results_fail_closed if {
	reasons(read_result([cut]), {}) == {`results: the result of resources/read is blocked: part of it was not scanned (scan_truncated)`}
	reasons(prompt_result([cut]), {}) == {`results: the result of prompts/get "review" is blocked: part of it was not scanned (scan_truncated)`}
	count(reasons(read_result([cut]), {"unscanned": "allow"})) == 0
}

test_allow_tools if {
	cfg := {"allow_tools": ["vault_*"]}
	count(redacted(tool_result("vault_read", [aws]), cfg)) == 0
	count(reasons(tool_result("vault_read", [ignore]), cfg)) == 0
	redacted(tool_result("lookup", [aws]), cfg) == {"secret"}
}

test_methods_are_configurable if {
	count(redacted(prompt_result([aws]), {"methods": ["tools/call"]})) == 0
	redacted(tool_result("x", [aws]), {"methods": ["tools/call"]}) == {"secret"}
}

test_requests_are_not_inspected if {
	req := {"mcp": {"kind": "request", "direction": "client_to_server", "method": "tools/call", "tool": {"name": "x", "arguments": {}}, "findings": [ignore, aws]}}
	count(reasons(req, {})) == 0
	count(redacted(req, {})) == 0
	no_findings := tool_result("x", [])
	count(reasons(no_findings, {})) == 0
	count(redacted(no_findings, {})) == 0
}

test_reason_reaches_deny if {
	r := mcp.deny with input as tool_result("fetch_page", [ignore]) with data.library.results as {}
	`results: the result of tools/call "fetch_page" is blocked (detected: ignore_instructions)` in r
}

test_inert_without_data if {
	count(mcp.results_deny) == 0 with input as tool_result("fetch_page", [ignore])
	count(mcp.redact) == 0 with input as tool_result("fetch_page", [aws])
}
