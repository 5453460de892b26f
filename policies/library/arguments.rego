# Library: arguments -- constraints on tool arguments: file paths under
# allowed prefixes, URLs against SSRF, read-only SQL, and row limits.
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; its helpers are all named arguments_*. It does nothing
# until data.library.arguments is set.
#
# data.library.arguments has four optional lists of rules. Every rule names
# a tool (`tool`: a name or a glob; `*` also matches `.` and `/`) and one
# top-level argument of it (`argument`). A rule applies to the tools/call
# of every matching tool. An argument the call does not pass is not checked,
# unless the rule says "required": true.
#
#   paths   {"tool", "argument", "prefixes": ["/workspace/"], "required"}
#           The argument must be a string path under one of the prefixes. It
#           is refused if it has a ".." segment (traversal is refused, not
#           resolved), a backslash, a control character, or a percent-encoded
#           dot, slash, backslash or NUL. Otherwise it is normalised ("//" and
#           "/./" collapse) and compared segment by segment: "/workspace" covers
#           "/workspace" and "/workspace/a", not "/workspace2". Symbolic links
#           on the server are beyond what a proxy can see.
#   urls    {"tool", "argument", "hosts": [...], "schemes": ["http", "https"],
#            "ports": [...], "blocked_hosts": [...], "blocked_cidrs": [...], "required"}
#           The argument must be an absolute URL whose scheme is in `schemes`
#           (default http and https). Refused: whitespace, control characters
#           or backslashes anywhere; credentials (user@host); percent-encoded
#           hosts; a port not in `ports` (when given); IP addresses in
#           `blocked_cidrs` (default: every private, loopback, link-local,
#           CGNAT, multicast and reserved range, the cloud metadata addresses
#           169.254.169.254 and fd00:ec2::254, IPv4-mapped and NAT64 IPv6; see
#           arguments_default_blocked_cidrs); IPv4 addresses written in any form
#           other than canonical dotted decimal (2130706433, 0x7f.1, 0177.0.0.1,
#           127.1: proxies and servers parse these differently, so they are
#           refused outright); host names in `blocked_hosts` (default:
#           localhost, *.localhost, *.local, *.internal, metadata,
#           metadata.google.internal, instance-data). When `hosts` is given,
#           the host must also match one of its entries ("example.com",
#           "*.example.com" for one label, "**.example.com" for any depth).
#           A host name is not resolved here: a name that resolves to a private
#           address (DNS rebinding, nip.io) is only stopped by an allowlist,
#           or by an egress proxy.
#   sql     {"tool", "argument", "statements": ["select", "with"],
#            "keywords": [...], "extra_keywords": [...], "required"}
#           The argument must be one read-only statement. String literals
#           ('...', "...", `...`) and comments (--, /* */) are set aside first;
#           what remains must start with one of `statements`, contain no ";"
#           except one at the end, and none of the `keywords` (default:
#           arguments_default_sql_keywords -- INSERT, UPDATE, DELETE, MERGE, DROP,
#           ALTER, CREATE, TRUNCATE, GRANT, REVOKE, INTO, COPY, EXEC, CALL, LOCK,
#           side-effecting functions such as pg_sleep, set_config, dblink,
#           load_file ...; `keywords` replaces the list, `extra_keywords` adds to
#           it). Also refused, because SQL dialects read them differently: any
#           backslash, "#", dollar quoting ($$ or $tag$), MySQL executable
#           comments (/*! */), and unterminated quotes or comments.
#   limits  {"tool", "argument", "max": 100, "min": 0, "required"}
#           The argument must be an integer from `min` (default 0) to `max`.
#
# Reasons name the tool, the argument and the problem, e.g.
#   arguments: fetch_url.url host 169.254.169.254 is in a blocked range (169.254.0.0/16)
#
# Example:
#   {"library": {"arguments": {
#     "paths":  [{"tool": "read_file", "argument": "path", "prefixes": ["/workspace"]}],
#     "urls":   [{"tool": "fetch_url", "argument": "url", "hosts": ["*.example.com"]}],
#     "sql":    [{"tool": "query", "argument": "sql"}],
#     "limits": [{"tool": "query", "argument": "limit", "max": 100}]}}}
package mcp

import rego.v1

# Two regorus 0.14.1 quirks shape how this file is written:
# - Rules come before the rules that use them: the interpreter (which runs
#   the `with` tests) misses a rule defined further down when this module is
#   not the first module of package mcp.
# - In a rule with `else`, a body that fails by assigning an undefined value
#   (`x := f(y)` with f(y) undefined) or by a `some ... in` loop finding
#   nothing makes the RVM skip the else. Such bodies test with plain
#   conditions first, and loops live in helper rules.

arguments_config := data.library.arguments

arguments_tool_matches(pattern) if pattern == input.mcp.tool.name

arguments_tool_matches(pattern) if glob.match(pattern, null, input.mcp.tool.name)

# [rule, "tool.argument", value] for every rule of `kind` that applies to
# this call and whose argument is present.
arguments_checks(kind) := {[rule, label, value] |
	input.mcp.method == "tools/call"
	is_string(input.mcp.tool.name)
	some rule in object.get(arguments_config, kind, [])
	arguments_tool_matches(rule.tool)
	value := input.mcp.tool.arguments[rule.argument]
	label := sprintf("%s.%s", [input.mcp.tool.name, rule.argument])
}

arguments_missing contains sprintf("arguments: %s.%s is required", [input.mcp.tool.name, rule.argument]) if {
	input.mcp.method == "tools/call"
	is_string(input.mcp.tool.name)
	some kind in ["paths", "urls", "sql", "limits"]
	some rule in object.get(arguments_config, kind, [])
	rule.required == true
	arguments_tool_matches(rule.tool)
	not rule.argument in object.keys(input.mcp.tool.arguments)
}

# Names from the data, quoted (json.marshal never fails, whatever the type).
arguments_quoted(names) := concat(", ", [json.marshal(n) | some n in names])

# --------------------------------------------------------------------------
# Paths

arguments_lead(p) := "/" if startswith(p, "/") else := ""

arguments_normal_path(p) := concat("", [arguments_lead(p), concat("/", segments)]) if {
	segments := [s | some s in split(p, "/"); s != ""; s != "."]
}

arguments_under(path, prefix) if {
	q := arguments_normal_path(prefix)
	not q in {"", "/"}
	path == q
}

arguments_under(path, prefix) if {
	q := arguments_normal_path(prefix)
	not q in {"", "/"}
	startswith(path, concat("", [q, "/"]))
}

arguments_under(path, prefix) if {
	arguments_normal_path(prefix) == "/"
	startswith(path, "/")
}

arguments_path_ok(p, rule) if {
	some prefix in object.get(rule, "prefixes", [])
	arguments_under(arguments_normal_path(p), prefix)
}

arguments_path_problem(p, rule) := "is not a string" if {
	not is_string(p)
} else := sprintf("%q contains a control character or a backslash", [p]) if {
	regex.match(`[[:cntrl:]\\]`, p)
} else := sprintf("%q contains a percent-encoded dot, slash, backslash or NUL", [p]) if {
	regex.match(`%(2[eEfF]|5[cC]|00)`, p)
} else := sprintf("%q contains a \"..\" segment", [p]) if {
	".." in split(p, "/")
} else := sprintf("%q is not under %s", [p, arguments_quoted(object.get(rule, "prefixes", []))]) if {
	not arguments_path_ok(p, rule)
}

# --------------------------------------------------------------------------
# URLs

arguments_default_blocked_cidrs := [
	# IPv4
	"0.0.0.0/8", # "this" network; 0.0.0.0 reaches the local host
	"10.0.0.0/8", # private
	"100.64.0.0/10", # carrier-grade NAT (also Alibaba Cloud metadata 100.100.100.200)
	"127.0.0.0/8", # loopback
	"169.254.0.0/16", # link-local, cloud metadata 169.254.169.254
	"172.16.0.0/12", # private
	"192.0.0.0/24", # IETF protocol assignments
	"192.0.2.0/24", # documentation
	"192.88.99.0/24", # 6to4 relay
	"192.168.0.0/16", # private
	"198.18.0.0/15", # benchmarking
	"198.51.100.0/24", # documentation
	"203.0.113.0/24", # documentation
	"224.0.0.0/4", # multicast
	"240.0.0.0/4", # reserved, broadcast
	"168.63.129.16/32", # Azure platform (wireserver)
	# IPv6
	"::/128", # unspecified
	"::1/128", # loopback
	"::/96", # IPv4-compatible (deprecated)
	"::ffff:0:0/96", # IPv4-mapped
	"64:ff9b::/96", # NAT64
	"64:ff9b:1::/48", # local NAT64
	"100::/64", # discard
	"2001:db8::/32", # documentation
	"2002::/16", # 6to4 (embeds an IPv4 address)
	"fc00::/7", # unique local, incl. AWS metadata fd00:ec2::254
	"fe80::/10", # link-local
	"fec0::/10", # site-local (deprecated)
	"ff00::/8", # multicast
]

arguments_default_blocked_hosts := [
	"localhost", "*.localhost", "localhost.localdomain", "*.local", "*.internal",
	"metadata", "metadata.google.internal", "instance-data",
]

# [scheme, authority] of an absolute URL with an authority ("" when none).
arguments_url_parts(u) := [lower(m[1]), m[3]] if {
	some m in regex.find_all_string_submatch_n(`^([A-Za-z][A-Za-z0-9+.-]*):(//([^/?#]*))?([^?#]*)(\?[^#]*)?(#.*)?$`, u, 1)
}

# [host, port, is_ipv6] of an authority without credentials; undefined
# when malformed.
arguments_host_port(auth) := [lower(m[1]), m[3], true] if {
	some m in regex.find_all_string_submatch_n(`^\[([^\]]*)\](:([0-9]*))?$`, auth, 1)
}

arguments_host_port(auth) := [trim_right(lower(m[1]), "."), m[3], false] if {
	not startswith(auth, "[")
	some m in regex.find_all_string_submatch_n(`^([^:]*)(:([0-9]*))?$`, auth, 1)
}

arguments_canonical_ipv4 := `^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$`

# The WHATWG URL rule: a host whose last label is a number is an IPv4
# address, in whatever notation.
arguments_numeric_host(host) if regex.match(`(^|\.)(0x[0-9a-f]*|[0-9]+)$`, host)

# The first blocked range of the address's family that holds it. (IPv4
# ranges are only compared with IPv4 addresses: OPA, unlike regorus, reads an
# IPv4 address as inside ::ffff:0:0/96.)
arguments_blocked_range(ip, rule) := matches[0] if {
	v6 := contains(ip, ":")
	matches := [cidr |
		some cidr in object.get(rule, "blocked_cidrs", arguments_default_blocked_cidrs)
		net.cidr_is_valid(cidr)
		contains(cidr, ":") == v6
		net.cidr_contains(cidr, ip)
	]
	count(matches) > 0
}

arguments_blocked_name(host, rule) if {
	some pattern in object.get(rule, "blocked_hosts", arguments_default_blocked_hosts)
	arguments_host_matches(pattern, host)
}

arguments_host_matches(pattern, host) if lower(pattern) == host

arguments_host_matches(pattern, host) if glob.match(lower(pattern), ["."], host)

arguments_host_allowed(host, rule) if not rule.hosts

arguments_host_allowed(host, rule) if {
	some pattern in rule.hosts
	arguments_host_matches(pattern, host)
}

arguments_port_allowed(_, rule) if not rule.ports

arguments_port_allowed(port, rule) if {
	some p in rule.ports
	format_int(p, 10) == port
}

arguments_default_ports := {"http": "80", "https": "443", "ws": "80", "wss": "443", "ftp": "21"}

# The port of the URL, or its scheme's default port.
arguments_effective_port(scheme, "") := object.get(arguments_default_ports, scheme, "")

arguments_effective_port(_, port) := port if port != ""

# The URL checks, in order, split up so that each stays small enough for
# the RVM's register window.
arguments_address_problem(host, true, rule) := sprintf("has a malformed IPv6 address [%s]", [host]) if {
	not net.cidr_is_valid(concat("", [host, "/128"]))
} else := sprintf("host [%s] is in a blocked range (%s)", [host, cidr]) if {
	cidr := arguments_blocked_range(host, rule)
}

arguments_address_problem(host, false, rule) := sprintf("host %q is an IPv4 address in a non-canonical form (decimal, octal or hex)", [host]) if {
	arguments_numeric_host(host)
	not regex.match(arguments_canonical_ipv4, host)
} else := sprintf("host %s is in a blocked range (%s)", [host, cidr]) if {
	regex.match(arguments_canonical_ipv4, host)
	arguments_blocked_range(host, rule)
	cidr := arguments_blocked_range(host, rule)
} else := sprintf("host %q is not allowed", [host]) if {
	arguments_blocked_name(host, rule)
}

arguments_host_problem(host, v6, rule) := problem if {
	arguments_address_problem(host, v6, rule)
	problem := arguments_address_problem(host, v6, rule)
} else := sprintf("host %q is not in the allowed hosts", [host]) if {
	not arguments_host_allowed(host, rule)
}

arguments_authority_problem(u, scheme, auth, rule) := sprintf("scheme %q is not allowed (only %s)", [scheme, arguments_quoted(schemes)]) if {
	schemes := object.get(rule, "schemes", ["http", "https"])
	not scheme in {lower(s) | some s in schemes; is_string(s)}
} else := sprintf("%q has no host", [u]) if {
	auth == ""
} else := sprintf("%q carries credentials (user@host)", [u]) if {
	contains(auth, "@")
} else := sprintf("%q has a malformed host or port", [u]) if {
	not arguments_host_port(auth)
} else := sprintf("%q has a percent-encoded or empty host", [u]) if {
	[host, _, _] := arguments_host_port(auth)
	regex.match(`%|^$`, host)
} else := sprintf("port %q is not allowed in %q", [port, u]) if {
	[_, given, _] := arguments_host_port(auth)
	port := arguments_effective_port(scheme, given)
	not arguments_port_allowed(port, rule)
} else := problem if {
	[host, _, v6] := arguments_host_port(auth)
	problem := arguments_host_problem(host, v6, rule)
}

arguments_url_problem(u, rule) := "is not a string" if {
	not is_string(u)
} else := sprintf("%q contains whitespace, a control character or a backslash", [u]) if {
	regex.match(`[[:cntrl:][:space:]\\]`, u)
} else := sprintf("%q is not an absolute URL", [u]) if {
	not arguments_url_parts(u)
} else := problem if {
	[scheme, auth] := arguments_url_parts(u)
	problem := arguments_authority_problem(u, scheme, auth, rule)
}

# --------------------------------------------------------------------------
# SQL

arguments_default_sql_keywords := [
	# writes, DDL, privileges
	"insert", "update", "delete", "merge", "upsert", "drop", "alter", "create", "truncate",
	"rename", "grant", "revoke", "into", "copy", "load", "import", "attach", "detach", "comment",
	# procedures, transactions, locks, server control. Two are written in
	# capitals (they are compared in lower case): the filter decides what to
	# fetch for a policy from the words in its text, and these two, in lower
	# case, would make it fetch state this file does not need.
	"exec", "execute", "call", "prepare", "deallocate", "begin", "commit", "rollback", "savepoint",
	"lock", "unlock", "listen", "notify", "unlisten", "vacuum", "reindex", "cluster", "refresh",
	"pragma", "handler", "waitfor", "shutdown", "KILL", "reset", "discard", "checkpoint",
	# functions with side effects or reach outside the database
	"pg_sleep", "sleep", "benchmark", "set_config", "pg_terminate_backend", "pg_cancel_backend",
	"pg_reload_conf", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import",
	"lo_export", "lo_unlink", "dblink", "dblink_exec", "query_to_xml", "nextval", "setval",
	"load_file", "outfile", "dumpfile", "xp_cmdshell", "sp_executesql", "openrowset", "OPENDATASOURCE",
	"openquery",
]

arguments_sql_keywords(rule) := {lower(k) |
	some k in array.concat(
		object.get(rule, "keywords", arguments_default_sql_keywords),
		object.get(rule, "extra_keywords", []),
	)
	is_string(k)
}

# Quoted strings and identifiers, and comments, left to right as a lexer
# reads them.
arguments_sql_lexeme := "'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`|--[^\\n]*|/\\*(?s:.)*?\\*/"

# The statement with literals and comments blanked out.
arguments_sql_code(sql) := regex.replace(sql, arguments_sql_lexeme, " ")

arguments_sql_exec_comment(sql) if {
	some token in regex.find_n(arguments_sql_lexeme, sql, -1)
	startswith(token, "/*!")
}

arguments_sql_words(sql) := regex.find_n(`[a-z_][a-z0-9_$]*`, lower(arguments_sql_code(sql)), -1)

arguments_sql_problem(sql, rule) := "is not a string" if {
	not is_string(sql)
} else := "contains a backslash (SQL dialects escape differently)" if {
	contains(sql, "\\")
} else := "contains a MySQL executable comment (/*!)" if {
	arguments_sql_exec_comment(sql)
} else := "has an unterminated quoted string or identifier" if {
	regex.match("['\"`]", arguments_sql_code(sql))
} else := "has an unterminated or nested comment" if {
	regex.match(`/\*|\*/`, arguments_sql_code(sql))
} else := "contains more than one statement (;)" if {
	contains(regex.replace(arguments_sql_code(sql), `;[[:space:]]*$`, ""), ";")
} else := "contains # (a comment in MySQL, an operator elsewhere)" if {
	contains(arguments_sql_code(sql), "#")
} else := "contains a dollar-quoted string" if {
	regex.match(`\$([A-Za-z_][A-Za-z0-9_]*)?\$`, arguments_sql_code(sql))
} else := "is empty" if {
	count(arguments_sql_words(sql)) == 0
} else := sprintf("must start with %s (starts with %q)", [upper(arguments_quoted(allowed)), first]) if {
	first := arguments_sql_words(sql)[0]
	allowed := [lower(s) | some s in object.get(rule, "statements", ["select", "with"]); is_string(s)]
	not first in allowed
} else := sprintf("is not read-only (uses %s)", [upper(arguments_quoted(sort(found)))]) if {
	found := {w | some w in arguments_sql_words(sql)} & arguments_sql_keywords(rule)
	count(found) > 0
}

# --------------------------------------------------------------------------
# Limits

arguments_limit_ok(v, rule) if {
	is_number(v)
	floor(v) == v
	v >= object.get(rule, "min", 0)
	v <= rule.max
}

arguments_limit_problem(v, rule) := sprintf("must be an integer from %v to %v (got %s)", [object.get(rule, "min", 0), rule.max, json.marshal(v)]) if {
	not arguments_limit_ok(v, rule)
}

# --------------------------------------------------------------------------

arguments_deny contains msg if some msg in arguments_missing

arguments_deny contains sprintf("arguments: %s %s", [label, problem]) if {
	some [rule, label, value] in arguments_checks("paths")
	problem := arguments_path_problem(value, rule)
}

arguments_deny contains sprintf("arguments: %s %s", [label, problem]) if {
	some [rule, label, value] in arguments_checks("urls")
	problem := arguments_url_problem(value, rule)
}

arguments_deny contains sprintf("arguments: %s %s", [label, problem]) if {
	some [rule, label, value] in arguments_checks("sql")
	problem := arguments_sql_problem(value, rule)
}

arguments_deny contains sprintf("arguments: %s %s", [label, problem]) if {
	some [rule, label, value] in arguments_checks("limits")
	problem := arguments_limit_problem(value, rule)
}

deny contains msg if some msg in arguments_deny
