# Tests for library/arguments.rego (opa test convention).
package arguments_test

import rego.v1

import data.mcp

cfg := {
	"paths": [{"tool": "read_file", "argument": "path", "prefixes": ["/workspace", "/srv/data/"]}],
	"urls": [
		{"tool": "fetch_url", "argument": "url"},
		{"tool": "fetch_partner", "argument": "url", "hosts": ["api.partner.com", "*.example.com"], "schemes": ["https"], "ports": [443]},
	],
	"sql": [{"tool": "query", "argument": "sql"}],
	"limits": [{"tool": "query", "argument": "limit", "max": 100, "min": 1}],
}

call(name, args) := {"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": args}}}

problems(name, args) := r if {
	r := mcp.arguments_deny with input as call(name, args) with data.library.arguments as cfg
}

ok(name, args) if count(problems(name, args)) == 0

denied(name, args, reason) if problems(name, args) == {reason}

# Paths

test_path_under_prefix if {
	ok("read_file", {"path": "/workspace/notes.txt"})
	ok("read_file", {"path": "/workspace"})
	ok("read_file", {"path": "/srv/data/x/y.csv"})
	ok("read_file", {"path": "/workspace//a/./b"})
}

test_path_outside_prefix if {
	denied("read_file", {"path": "/etc/passwd"}, `arguments: read_file.path "/etc/passwd" is not under "/workspace", "/srv/data/"`)
	denied("read_file", {"path": "/workspace2/x"}, `arguments: read_file.path "/workspace2/x" is not under "/workspace", "/srv/data/"`)
	denied("read_file", {"path": "workspace/x"}, `arguments: read_file.path "workspace/x" is not under "/workspace", "/srv/data/"`)
}

test_path_double_slash_normalised if {
	# "//etc" is not a way around the prefix, and "/workspace//x" is inside it.
	count(problems("read_file", {"path": "//etc/passwd"})) == 1
	ok("read_file", {"path": "//workspace/x"})
}

test_path_traversal if {
	denied("read_file", {"path": "/workspace/../etc/passwd"}, `arguments: read_file.path "/workspace/../etc/passwd" contains a ".." segment`)
	denied("read_file", {"path": "/workspace/a/.."}, `arguments: read_file.path "/workspace/a/.." contains a ".." segment`)
	ok("read_file", {"path": "/workspace/a..b"})
}

test_path_encoded_and_odd_characters if {
	denied("read_file", {"path": "/workspace/%2e%2e/etc"}, `arguments: read_file.path "/workspace/%2e%2e/etc" contains a percent-encoded dot, slash, backslash or NUL`)
	denied("read_file", {"path": "/workspace/..\\etc"}, `arguments: read_file.path "/workspace/..\\etc" contains a control character or a backslash`)
	count(problems("read_file", {"path": "/workspace/a\u0000b"})) == 1
}

test_path_not_a_string if {
	denied("read_file", {"path": ["/workspace/a"]}, "arguments: read_file.path is not a string")
}

test_path_absent_not_checked_unless_required if {
	ok("read_file", {})
	c := {"paths": [{"tool": "read_file", "argument": "path", "prefixes": ["/w"], "required": true}]}
	r := mcp.arguments_deny with input as call("read_file", {}) with data.library.arguments as c
	r == {"arguments: read_file.path is required"}
}

test_path_root_prefix if {
	c := {"paths": [{"tool": "*", "argument": "path", "prefixes": ["/"]}]}
	count(mcp.arguments_deny) == 0 with input as call("anything", {"path": "/etc/x"}) with data.library.arguments as c
	count(mcp.arguments_deny) == 1 with input as call("anything", {"path": "etc/x"}) with data.library.arguments as c
}

# URLs

test_url_public_allowed if {
	ok("fetch_url", {"url": "https://example.com/a?b=c#d"})
	ok("fetch_url", {"url": "http://93.184.216.34/"})
	ok("fetch_url", {"url": "http://[2606:2800:220:1:248:1893:25c8:1946]:8080/"})
	ok("fetch_url", {"url": "HTTPS://Example.COM"})
}

test_url_scheme if {
	denied("fetch_url", {"url": "file:///etc/passwd"}, `arguments: fetch_url.url scheme "file" is not allowed (only "http", "https")`)
	denied("fetch_url", {"url": "gopher://x:70/_"}, `arguments: fetch_url.url scheme "gopher" is not allowed (only "http", "https")`)
	denied("fetch_url", {"url": "/relative/path"}, `arguments: fetch_url.url "/relative/path" is not an absolute URL`)
}

test_url_metadata_and_private_ranges if {
	denied("fetch_url", {"url": "http://169.254.169.254/latest/meta-data/"}, "arguments: fetch_url.url host 169.254.169.254 is in a blocked range (169.254.0.0/16)")
	denied("fetch_url", {"url": "http://127.0.0.1:8000/"}, "arguments: fetch_url.url host 127.0.0.1 is in a blocked range (127.0.0.0/8)")
	denied("fetch_url", {"url": "http://10.1.2.3/"}, "arguments: fetch_url.url host 10.1.2.3 is in a blocked range (10.0.0.0/8)")
	denied("fetch_url", {"url": "http://172.20.0.1/"}, "arguments: fetch_url.url host 172.20.0.1 is in a blocked range (172.16.0.0/12)")
	denied("fetch_url", {"url": "http://192.168.1.1/"}, "arguments: fetch_url.url host 192.168.1.1 is in a blocked range (192.168.0.0/16)")
	denied("fetch_url", {"url": "http://0.0.0.0/"}, "arguments: fetch_url.url host 0.0.0.0 is in a blocked range (0.0.0.0/8)")
	denied("fetch_url", {"url": "http://100.100.100.200/"}, "arguments: fetch_url.url host 100.100.100.200 is in a blocked range (100.64.0.0/10)")
	denied("fetch_url", {"url": "http://127.0.0.1./"}, "arguments: fetch_url.url host 127.0.0.1 is in a blocked range (127.0.0.0/8)")
}

test_url_ipv6_ranges if {
	denied("fetch_url", {"url": "http://[::1]/"}, "arguments: fetch_url.url host [::1] is in a blocked range (::1/128)")
	count(problems("fetch_url", {"url": "http://[fd00:ec2::254]/"})) == 1
	count(problems("fetch_url", {"url": "http://[fe80::1]/"})) == 1
	count(problems("fetch_url", {"url": "http://[FC00::1]:80/"})) == 1
	count(problems("fetch_url", {"url": "http://[::ffff:127.0.0.1]/"})) == 1
	count(problems("fetch_url", {"url": "http://[::ffff:a9fe:a9fe]/"})) == 1
	count(problems("fetch_url", {"url": "http://[::]/"})) == 1
	denied("fetch_url", {"url": "http://[fe80::1%25eth0]/"}, `arguments: fetch_url.url "http://[fe80::1%25eth0]/" has a percent-encoded or empty host`)
	denied("fetch_url", {"url": "http://[not:an:ip:zz]/"}, "arguments: fetch_url.url has a malformed IPv6 address [not:an:ip:zz]")
}

test_url_ipv4_notation_tricks if {
	some host in ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "017700000001", "127.0.0.01", "1.2.3.4.5", "foo.0x10", "0x"]
	reason := sprintf("arguments: fetch_url.url host %q is an IPv4 address in a non-canonical form (decimal, octal or hex)", [host])
	problems("fetch_url", {"url": sprintf("http://%s/", [host])}) == {reason}
}

test_url_ipv4_notation_tricks_all_denied if {
	hosts := ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "3232235777", "0xA9FEA9FE"]
	denied_hosts := {h | some h in hosts; count(problems("fetch_url", {"url": sprintf("http://%s:80/x", [h])})) == 1}
	count(denied_hosts) == count(hosts)
}

test_url_blocked_names if {
	denied("fetch_url", {"url": "http://localhost:8080/"}, `arguments: fetch_url.url host "localhost" is not allowed`)
	denied("fetch_url", {"url": "http://LOCALHOST./"}, `arguments: fetch_url.url host "localhost" is not allowed`)
	denied("fetch_url", {"url": "http://metadata.google.internal/"}, `arguments: fetch_url.url host "metadata.google.internal" is not allowed`)
	denied("fetch_url", {"url": "http://db.internal/"}, `arguments: fetch_url.url host "db.internal" is not allowed`)
	denied("fetch_url", {"url": "http://printer.local/"}, `arguments: fetch_url.url host "printer.local" is not allowed`)
}

test_url_credentials_and_confusion if {
	denied("fetch_url", {"url": "http://example.com@127.0.0.1/"}, `arguments: fetch_url.url "http://example.com@127.0.0.1/" carries credentials (user@host)`)
	denied("fetch_url", {"url": "http://example.com\\@127.0.0.1/"}, `arguments: fetch_url.url "http://example.com\\@127.0.0.1/" contains whitespace, a control character or a backslash`)
	count(problems("fetch_url", {"url": "http://exa mple.com/"})) == 1
	count(problems("fetch_url", {"url": "http://%31%32%37.0.0.1/"})) == 1
	count(problems("fetch_url", {"url": "http://a:b:c/"})) == 1
	count(problems("fetch_url", {"url": "http:///x"})) == 1
}

test_url_allowlist if {
	ok("fetch_partner", {"url": "https://api.partner.com/v1"})
	ok("fetch_partner", {"url": "https://eu.example.com:443/"})
	denied("fetch_partner", {"url": "https://evil.com/"}, `arguments: fetch_partner.url host "evil.com" is not in the allowed hosts`)
	denied("fetch_partner", {"url": "https://a.b.example.com/"}, `arguments: fetch_partner.url host "a.b.example.com" is not in the allowed hosts`)
	denied("fetch_partner", {"url": "https://api.partner.com.evil.com/"}, `arguments: fetch_partner.url host "api.partner.com.evil.com" is not in the allowed hosts`)
	denied("fetch_partner", {"url": "http://api.partner.com/"}, `arguments: fetch_partner.url scheme "http" is not allowed (only "https")`)
	denied("fetch_partner", {"url": "https://api.partner.com:8443/"}, `arguments: fetch_partner.url port "8443" is not allowed in "https://api.partner.com:8443/"`)
}

test_url_not_a_string if {
	denied("fetch_url", {"url": 7}, "arguments: fetch_url.url is not a string")
}

# SQL

test_sql_read_only_allowed if {
	ok("query", {"sql": "SELECT id, name FROM users WHERE name = 'O''Brien' LIMIT 10"})
	ok("query", {"sql": "select * from t;"})
	ok("query", {"sql": "WITH x AS (SELECT 1 AS a) SELECT a FROM x"})
	ok("query", {"sql": "SELECT updated_at, deleted FROM t -- recent rows\n"})
	ok("query", {"sql": "SELECT 'DROP TABLE users; --' AS s"})
	ok("query", {"sql": "/* report */ SELECT count(*) FROM \"update\""})
	ok("query", {"sql": "(SELECT 1) UNION (SELECT 2)"})
}

test_sql_writes_denied if {
	denied("query", {"sql": "DELETE FROM users"}, `arguments: query.sql must start with "SELECT", "WITH" (starts with "delete")`)
	denied("query", {"sql": "drop table users"}, `arguments: query.sql must start with "SELECT", "WITH" (starts with "drop")`)
	denied("query", {"sql": "SELECT * INTO backup FROM users"}, `arguments: query.sql is not read-only (uses "INTO")`)
	denied("query", {"sql": "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"}, `arguments: query.sql is not read-only (uses "DELETE")`)
	denied("query", {"sql": "SELECT * FROM t FOR UPDATE"}, `arguments: query.sql is not read-only (uses "UPDATE")`)
	denied("query", {"sql": "SELECT 1 EXEC xp_cmdshell 'dir'"}, `arguments: query.sql is not read-only (uses "EXEC", "XP_CMDSHELL")`)
	denied("query", {"sql": "SELECT pg_sleep(10)"}, `arguments: query.sql is not read-only (uses "PG_SLEEP")`)
	denied("query", {"sql": "SELECT set_config('role', 'admin', false)"}, `arguments: query.sql is not read-only (uses "SET_CONFIG")`)
	denied("query", {"sql": "GRANT ALL ON t TO PUBLIC"}, `arguments: query.sql must start with "SELECT", "WITH" (starts with "grant")`)
}

test_sql_chaining_denied if {
	denied("query", {"sql": "SELECT 1; DROP TABLE users"}, "arguments: query.sql contains more than one statement (;)")
	denied("query", {"sql": "SELECT 1;;"}, "arguments: query.sql contains more than one statement (;)")
}

test_sql_lexer_confusion_denied if {
	denied("query", {"sql": "SELECT 'x\\' '; DROP TABLE t; --'"}, "arguments: query.sql contains a backslash (SQL dialects escape differently)")
	denied("query", {"sql": "SELECT 1 # '\n; DROP TABLE t; -- '"}, "arguments: query.sql contains # (a comment in MySQL, an operator elsewhere)")
	denied("query", {"sql": "SELECT $$ ' $$; DROP TABLE t; -- '"}, "arguments: query.sql contains a dollar-quoted string")
	denied("query", {"sql": "SELECT 1 /*! ; DROP TABLE t */"}, "arguments: query.sql contains a MySQL executable comment (/*!)")
	denied("query", {"sql": "SELECT 'unterminated"}, "arguments: query.sql has an unterminated quoted string or identifier")
	denied("query", {"sql": "SELECT 1 /* open"}, "arguments: query.sql has an unterminated or nested comment")
	denied("query", {"sql": "SELECT 1 /* a /* b */ DROP */"}, "arguments: query.sql has an unterminated or nested comment")
	denied("query", {"sql": "  -- only a comment"}, "arguments: query.sql is empty")
}

test_sql_keywords_configurable if {
	c := {"sql": [{"tool": "query", "argument": "sql", "extra_keywords": ["secret_fn"], "statements": ["select", "with", "explain"]}]}
	mcp.arguments_deny == {`arguments: query.sql is not read-only (uses "SECRET_FN")`} with input as call("query", {"sql": "SELECT secret_fn()"}) with data.library.arguments as c
	count(mcp.arguments_deny) == 0 with input as call("query", {"sql": "EXPLAIN SELECT 1"}) with data.library.arguments as c
	c2 := {"sql": [{"tool": "query", "argument": "sql", "keywords": ["drop"]}]}
	count(mcp.arguments_deny) == 0 with input as call("query", {"sql": "SELECT nextval('s')"}) with data.library.arguments as c2
}

# Limits

test_limit if {
	ok("query", {"sql": "SELECT 1", "limit": 100})
	ok("query", {"sql": "SELECT 1", "limit": 1})
	ok("query", {"sql": "SELECT 1"})
	denied("query", {"sql": "SELECT 1", "limit": 1000}, "arguments: query.limit must be an integer from 1 to 100 (got 1000)")
	denied("query", {"sql": "SELECT 1", "limit": 0}, "arguments: query.limit must be an integer from 1 to 100 (got 0)")
	denied("query", {"sql": "SELECT 1", "limit": 10.5}, "arguments: query.limit must be an integer from 1 to 100 (got 10.5)")
	denied("query", {"sql": "SELECT 1", "limit": "10"}, `arguments: query.limit must be an integer from 1 to 100 (got "10")`)
}

test_reason_reaches_deny if {
	r := mcp.deny with input as call("fetch_url", {"url": "http://169.254.169.254/"}) with data.library.arguments as cfg
	"arguments: fetch_url.url host 169.254.169.254 is in a blocked range (169.254.0.0/16)" in r
}

test_other_tools_and_methods_untouched if {
	ok("echo", {"path": "/etc/passwd", "url": "file:///", "sql": "DROP TABLE t"})
	count(mcp.arguments_deny) == 0 with input as {"mcp": {"method": "tools/list"}} with data.library.arguments as cfg
}

test_inert_without_data if {
	count(mcp.arguments_deny) == 0 with input as call("fetch_url", {"url": "http://127.0.0.1/"})
}
