# Library: timewindow -- tools that may only be called at certain times of
# day and days of the week, in a given time zone.
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; its helpers are all named timewindow_*. It does nothing
# until data.library.timewindow is set.
#
# data.library.timewindow
#   timezone  IANA time zone for every window that does not name its own
#             (default "UTC"), e.g. "Europe/Berlin", "America/New_York".
#   tools     Tool name or glob -> a window or a list of windows. A call to a
#             matching tool is allowed when the current time is inside at least
#             one of them:
#               {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "from": "09:00", "to": "17:30",
#                "timezone": "Europe/Berlin"}
#             days      Weekdays, as names or three-letter abbreviations, any
#                       case. Default: every day.
#             from, to  "HH:MM", local time. Default: the whole day. `from` is
#                       inclusive, `to` exclusive; "24:00" is the end of the day.
#                       A window with `from` after `to` runs over midnight
#                       ("22:00" to "06:00"); its `days` are the days it starts
#                       on, so Friday 22:00-06:00 also covers Saturday until 06:00.
#             timezone  Overrides the top-level one.
#             A tool that several patterns match must satisfy each of them.
#
# The time is the proxy's clock (time.now_ns). A time zone the engine does
# not know, or a malformed "HH:MM", makes the window never match, so the
# tool is refused (fail closed).
#
# Reasons:
#   timewindow: tool "deploy" may only be called Mon, Tue, Wed, Thu, Fri 09:00-17:30 (Europe/Berlin); it is Sat 10:12 there
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

timewindow_config := data.library.timewindow

timewindow_list(x) := [x] if is_object(x)

timewindow_list(x) := x if is_array(x)

timewindow_match(pattern, name) if pattern == name

timewindow_match(pattern, name) if glob.match(pattern, null, name)

timewindow_tz(w) := object.get(w, "timezone", object.get(timewindow_config, "timezone", "UTC"))

timewindow_int(digits) := 0 if {
	trim_left(digits, "0") == ""
} else := to_number(trim_left(digits, "0"))

# Minutes since midnight of "HH:MM" (00:00 to 24:00).
timewindow_minutes(s) := t if {
	some parts in regex.find_all_string_submatch_n(`^([01]?[0-9]|2[0-4]):([0-5][0-9])$`, s, 1)
	t := (timewindow_int(parts[1]) * 60) + timewindow_int(parts[2])
	t <= 1440
}

timewindow_from(w) := timewindow_minutes(w.from) if "from" in object.keys(w)

timewindow_from(w) := 0 if not "from" in object.keys(w)

timewindow_to(w) := timewindow_minutes(w.to) if "to" in object.keys(w)

timewindow_to(w) := 1440 if not "to" in object.keys(w)

timewindow_day_ok(w, _) if not "days" in object.keys(w)

timewindow_day_ok(w, day) if {
	some d in w.days
	lower(substring(d, 0, 3)) == lower(substring(day, 0, 3))
}

timewindow_previous := {
	"Monday": "Sunday", "Tuesday": "Monday", "Wednesday": "Tuesday", "Thursday": "Wednesday",
	"Friday": "Thursday", "Saturday": "Friday", "Sunday": "Saturday",
}

timewindow_in_range(w, day, t, from, to) if {
	from <= to
	timewindow_day_ok(w, day)
	from <= t
	t < to
}

# Over midnight: the evening on a listed day, the morning after it.
timewindow_in_range(w, day, t, from, to) if {
	from > to
	timewindow_day_ok(w, day)
	t >= from
}

timewindow_in_range(w, day, t, from, to) if {
	from > to
	timewindow_day_ok(w, timewindow_previous[day])
	t < to
}

timewindow_now := time.now_ns()

timewindow_inside(w) if {
	tz := timewindow_tz(w)
	timewindow_known_tz(tz)
	clock := time.clock([timewindow_now, tz])
	day := time.weekday([timewindow_now, tz])
	timewindow_in_range(w, day, (clock[0] * 60) + clock[1], timewindow_from(w), timewindow_to(w))
}

timewindow_any_inside(windows) if {
	some w in windows
	timewindow_inside(w)
}

timewindow_days_text(w) := concat(", ", w.days) if "days" in object.keys(w)

timewindow_days_text(w) := "every day" if not "days" in object.keys(w)

timewindow_has_hours(w) if "from" in object.keys(w)

timewindow_has_hours(w) if "to" in object.keys(w)

timewindow_hours_text(w) := sprintf(" %v-%v", [object.get(w, "from", "00:00"), object.get(w, "to", "24:00")]) if {
	timewindow_has_hours(w)
} else := ""

timewindow_text(w) := sprintf("%s%s (%v)", [timewindow_days_text(w), timewindow_hours_text(w), timewindow_tz(w)])

# [tool, windows] for every entry that matches the called tool.
timewindow_entries contains [name, windows] if {
	input.mcp.method == "tools/call"
	name := input.mcp.tool.name
	is_string(name)
	some pattern, given in object.get(timewindow_config, "tools", {})
	timewindow_match(pattern, name)
	windows := timewindow_list(given)
}

# A time zone the engine knows. A zone it does not know makes time.clock
# fail: with the filter's default `policy_errors: "deny"` that is a policy
# error, and the call is denied with it (fail closed); with "undefined" the
# rule does not hold and the reason below says the zone is not known.
timewindow_known_tz(tz) if time.clock([0, tz])

timewindow_now_text(w) := sprintf("it is now %s (%v)", [time.format([timewindow_now, tz, "Mon 15:04"]), tz]) if {
	tz := timewindow_tz(w)
	timewindow_known_tz(tz)
} else := sprintf("the time zone %v is not known", [timewindow_tz(w)])

timewindow_deny contains msg if {
	some [name, windows] in timewindow_entries
	not timewindow_any_inside(windows)
	texts := concat(" or ", [timewindow_text(w) | some w in windows])
	msg := sprintf("timewindow: tool %q may only be called %s; %s", [name, texts, timewindow_now_text(windows[0])])
}

deny contains msg if some msg in timewindow_deny
