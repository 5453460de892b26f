# Tests for library/timewindow.rego (opa test convention).
package timewindow_test

import rego.v1

import data.mcp

# 2023-11-14 22:13:20 UTC: a Tuesday. 23:13 in Berlin, 17:13 in New York,
# Wednesday 07:13 in Tokyo.
tuesday_night := 1700000000000000000

call(name) := {"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": name, "arguments": {}}}}

reasons(name, cfg) := r if {
	r := mcp.timewindow_deny with input as call(name) with data.library.timewindow as cfg with time.now_ns as tuesday_night
}

office := {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "from": "09:00", "to": "17:30"}

test_inside_window_allowed if {
	count(reasons("deploy", {"timezone": "America/New_York", "tools": {"deploy": office}})) == 0
}

test_outside_window_denied if {
	r := reasons("deploy", {"timezone": "Europe/Berlin", "tools": {"deploy": office}})
	r == {`timewindow: tool "deploy" may only be called Mon, Tue, Wed, Thu, Fri 09:00-17:30 (Europe/Berlin); it is now Tue 23:13 (Europe/Berlin)`}
}

test_reason_reaches_deny if {
	r := mcp.deny with input as call("deploy") with data.library.timewindow as {"tools": {"deploy": office}} with time.now_ns as tuesday_night
	`timewindow: tool "deploy" may only be called Mon, Tue, Wed, Thu, Fri 09:00-17:30 (UTC); it is now Tue 22:13 (UTC)` in r
}

test_default_timezone_is_utc if {
	count(reasons("x", {"tools": {"x": {"from": "22:00", "to": "22:30"}}})) == 0
	count(reasons("x", {"tools": {"x": {"from": "22:14", "to": "22:30"}}})) == 1
	count(reasons("x", {"tools": {"x": {"from": "21:00", "to": "22:13"}}})) == 1
}

test_days_only_and_names if {
	count(reasons("x", {"tools": {"x": {"days": ["tuesday"]}}})) == 0
	count(reasons("x", {"tools": {"x": {"days": ["WED"]}, "y": {}}, "timezone": "Asia/Tokyo"})) == 0
	r := reasons("x", {"tools": {"x": {"days": ["Sat", "Sun"]}}})
	r == {`timewindow: tool "x" may only be called Sat, Sun (UTC); it is now Tue 22:13 (UTC)`}
}

test_window_timezone_overrides if {
	w := object.union(office, {"timezone": "America/New_York"})
	count(reasons("deploy", {"timezone": "Europe/Berlin", "tools": {"deploy": w}})) == 0
}

test_over_midnight if {
	night := {"days": ["Tue"], "from": "22:00", "to": "06:00"}
	count(reasons("batch", {"tools": {"batch": night}})) == 0

	# 07:13 Wednesday in Tokyo: after the Tuesday night window ended.
	count(reasons("batch", {"timezone": "Asia/Tokyo", "tools": {"batch": night}})) == 1

	# 07:13 Wednesday in Tokyo is inside a Tuesday window that runs to 08:00.
	count(reasons("batch", {"timezone": "Asia/Tokyo", "tools": {"batch": object.union(night, {"to": "08:00"})}})) == 0
}

test_any_of_several_windows if {
	windows := [office, {"days": ["Tue"], "from": "22:00", "to": "24:00"}]
	count(reasons("deploy", {"tools": {"deploy": windows}})) == 0
	r := reasons("deploy", {"timezone": "Asia/Tokyo", "tools": {"deploy": windows}})
	r == {`timewindow: tool "deploy" may only be called Mon, Tue, Wed, Thu, Fri 09:00-17:30 (Asia/Tokyo) or Tue 22:00-24:00 (Asia/Tokyo); it is now Wed 07:13 (Asia/Tokyo)`}
}

test_glob_and_every_matching_pattern if {
	cfg := {"tools": {"admin_*": {"days": ["Tue"]}, "admin_wipe": {"days": ["Sun"]}}}
	count(reasons("admin_list", cfg)) == 0
	count(reasons("admin_wipe", cfg)) == 1
	count(reasons("echo", cfg)) == 0
}

test_malformed_time_fails_closed if {
	count(reasons("x", {"tools": {"x": {"from": "9am"}}})) == 1
	count(reasons("x", {"tools": {"x": {"from": "25:00"}}})) == 1
}

test_real_clock if {
	# Without a fixed time: a window covering the whole week always holds.
	r := mcp.timewindow_deny with input as call("x") with data.library.timewindow as {"tools": {"x": {"from": "00:00", "to": "24:00"}}}
	count(r) == 0
}

test_inert_without_data if {
	count(mcp.timewindow_deny) == 0 with input as call("deploy") with time.now_ns as tuesday_night
}
