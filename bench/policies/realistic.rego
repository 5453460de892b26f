# A realistic policy of about 20 rules for the benchmarks (bench/README.md):
# tool allow-list by role, argument constraints (paths, hosts, SQL, sizes),
# header checks, method gates and labels. Not shipped; benchmark only.
package mcp

import rego.v1

default allow := false

allow if input.mcp.method in allowed_methods

allow if {
	input.mcp.method == "tools/call"
	input.mcp.tool.name in tools_for_role[role]
}

allowed_methods := {"initialize", "notifications/initialized", "ping", "tools/list", "prompts/list", "resources/list"}

default role := "developer"

role := input.http.headers["x-role"]

tools_for_role := {
	"developer": {"read_file", "list_dir", "search", "run_tests", "fetch_url", "query_db"},
	"reader": {"read_file", "list_dir", "search"},
	"admin": {"read_file", "list_dir", "search", "run_tests", "fetch_url", "query_db", "delete_record", "send_email"},
}

blocked_tools := {"delete_record", "shell", "exec"}

deny contains sprintf("tool %s is blocked", [input.mcp.tool.name]) if {
	input.mcp.tool.name in blocked_tools
	role != "admin"
}

args := object.get(input.mcp, ["tool", "arguments"], {})

deny contains "path outside /workspace" if {
	input.mcp.tool.name in {"read_file", "list_dir"}
	path := object.get(args, "path", "")
	not startswith(path, "/workspace/")
}

deny contains "path traversal" if {
	some k, v in args
	is_string(v)
	contains(v, "../")
}

deny contains "secret file" if {
	path := object.get(args, "path", "")
	regex.match(`[.](env|pem|key)$|id_rsa|credentials`, lower(path))
}

deny contains "url host not allowed" if {
	input.mcp.tool.name == "fetch_url"
	url := object.get(args, "url", "")
	not allowed_url(url)
}

allowed_url(url) if {
	some host in {"https://docs.example.com/", "https://api.example.com/"}
	startswith(url, host)
}

deny contains "private address" if {
	input.mcp.tool.name == "fetch_url"
	url := object.get(args, "url", "")
	glob.match("http*://{10.*,192.168.*,127.*,localhost}*", [], url)
}

deny contains "write SQL" if {
	input.mcp.tool.name == "query_db"
	q := upper(object.get(args, "sql", ""))
	some w in {"INSERT", "UPDATE", "DELETE", "DROP", "ALTER"}
	contains(q, w)
}

deny contains "limit too high" if {
	object.get(args, "limit", 0) > 1000
}

deny contains "argument too long" if {
	some k, v in args
	is_string(v)
	count(v) > 65536
}

deny contains "too many arguments" if count(args) > 32

deny contains "email outside example.com" if {
	input.mcp.tool.name == "send_email"
	not endswith(lower(object.get(args, "to", "")), "@example.com")
}

deny contains "unsupported protocol version" if {
	v := input.mcp.protocol_version
	not v in {"2025-06-18", "2025-11-25", "2026-07-28"}
}

deny contains "routing header mismatch" if {
	input.mcp.headers.name
	input.mcp.tool.name
	input.mcp.headers.name != input.mcp.tool.name
}

deny contains "unknown client" if {
	name := input.mcp.client.name
	name in {"evil-agent", "scraper"}
}

deny contains "tests only in CI" if {
	input.mcp.tool.name == "run_tests"
	not input.http.headers["x-ci"]
}

deny contains "logging level" if {
	input.mcp.method == "logging/setLevel"
	input.mcp.logging.level == "debug"
}

labels contains "reads-files" if input.mcp.tool.name in {"read_file", "list_dir"}

labels contains "network" if input.mcp.tool.name == "fetch_url"
