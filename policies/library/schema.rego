# Library: schema -- a tools/call whose arguments do not match the tool's
# declared input schema is denied before the server sees it.
#
# The schema is the one the server itself published: the filter remembers
# each upstream's tools/list answers and gives the policy the called tool's
# definition as input.mcp.tool.definition (absent when it has not seen the
# tool listed). regorus' json.match_schema is not compiled into the module,
# so this file validates a subset of JSON Schema in Rego.
#
# Load this file next to your main policy (package mcp). It only adds
# `deny` reasons; its helpers are all named schema_*. It does nothing until
# data.library.schema is set ({} turns it on with the defaults below).
#
# data.library.schema
#   unsupported         "allow" (default) or "deny": what to do when the part of
#                       the schema a call's arguments reach uses a keyword outside
#                       the subset below. "allow" checks every supported keyword
#                       and ignores the others (JSON Schema keywords all have to
#                       hold, so this only ever checks less); "deny" refuses the
#                       call, naming the keyword. "allow" keeps real servers
#                       working; "deny" is for servers whose schemas you know.
#   require_definition  false (default) or true: refuse a tools/call when the
#                       tool's definition is unknown (the proxy has not seen a
#                       tools/list from this server listing it, e.g. right after
#                       a restart, or a tool the server never listed).
#   max_errors          how many problems one reason lists (default 5).
#
# The subset:
#   type (one or an array; "integer" is a number without a fraction, so 1.0
#   counts), enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum
#   (numbers, or the draft-4 booleans), multipleOf, minLength, maxLength
#   (in characters), pattern (unanchored, as JSON Schema says; a pattern the
#   regex engine cannot compile counts as unsupported), required, properties,
#   additionalProperties (false or a schema), minProperties, maxProperties,
#   items (one schema for every element), minItems, maxItems, uniqueItems,
#   allOf, anyOf, oneOf, $ref to "#" or "#/$defs/<name>" / "#/definitions/<name>"
#   (siblings of a $ref override the target's keywords), and the boolean
#   schemas true and false. Annotations (title, description, default,
#   examples, format, ...) and unknown keywords are ignored, as in JSON Schema.
#   Unsupported: if/then/else, not, patternProperties, dependentRequired,
#   dependentSchemas, dependencies, prefixItems, items as an array,
#   additionalItems, contains, propertyNames, unevaluatedProperties,
#   unevaluatedItems, $dynamicRef, $recursiveRef, and any other $ref.
#
# Patterns: regorus' regex has no Unicode classes, so a pattern with \d, \w,
# \s or \b that does not compile is tried again in ASCII mode (where \d is
# [0-9], as in JavaScript).
#
# Depth: Rego has no recursion, so the validator is unrolled to 6 levels of
# schema. The arguments object is level 1; each property, array element or
# allOf/anyOf/oneOf branch adds one (an optional argument written
# anyOf [X, null] uses two). Below that, values are not checked, and this
# counts as unsupported ("nesting deeper than 6 levels").
#
# Cost: roughly 400 to 500 RVM instructions per value checked (see the
# filter's max_instructions).
#
# A reason lists the problems, each with where it is (a path into the
# arguments, "arguments" for the object itself):
#   schema: arguments of "add" do not match its input schema: a: expected integer, got string
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

schema_config := data.library.schema

schema_unsupported_keywords := {
	"if", "not", "patternProperties", "dependentRequired", "dependentSchemas", "dependencies",
	"prefixItems", "additionalItems", "contains", "propertyNames", "unevaluatedProperties",
	"unevaluatedItems", "$dynamicRef", "$recursiveRef",
}

# --------------------------------------------------------------------------
# Helpers

schema_join(p, key) := concat("/", [p, key]) if p != ""

schema_join("", key) := key

schema_where(p) := p if p != ""

schema_where("") := "arguments"

schema_is_integer(v) if {
	is_number(v)
	floor(v) == v
}

schema_type_ok(v, "integer") if schema_is_integer(v)

schema_type_ok(v, "number") if is_number(v)

schema_type_ok(v, t) if {
	not t in {"integer", "number"}
	type_name(v) == t
}

schema_type_name(v) := "integer" if schema_is_integer(v)

schema_type_name(v) := type_name(v) if not schema_is_integer(v)

schema_types(s) := s.type if is_array(s.type)

schema_types(s) := [s.type] if is_string(s.type)

# The pattern as the regex engine takes it. regorus' regex has no Unicode
# classes (\d, \w, \s, \b need ASCII mode), so a pattern that does not
# compile is tried again in ASCII mode, where \d is [0-9] as in ECMA-262.
schema_regex(pattern) := pattern if {
	is_string(pattern)
	regex.is_valid(pattern)
} else := concat("", ["(?-u)", pattern]) if {
	is_string(pattern)
	regex.is_valid(concat("", ["(?-u)", pattern]))
}

schema_json(v) := json.marshal(v)

# --------------------------------------------------------------------------
# $ref

schema_ref_target(root, "#") := root

schema_ref_target(root, ref) := target if {
	some m in regex.find_all_string_submatch_n(`^#/(\$defs|definitions)/([^/]+)$`, ref, 1)
	name := replace(replace(m[2], "~1", "/"), "~0", "~")
	target := root[m[1]][name]
}

schema_resolve1(root, s) := object.union(target, object.remove(s, ["$ref"])) if {
	is_object(s)
	"$ref" in object.keys(s)
	is_object(schema_ref_target(root, s["$ref"]))
	target := schema_ref_target(root, s["$ref"])
} else := s

schema_has_ref(s) if is_string(s["$ref"])

# A $ref resolved, up to three in a row (a $ref to a $ref ...).
schema_resolve(root, s) := schema_resolve1(root, schema_resolve1(root, schema_resolve1(root, s))) if schema_has_ref(s)

schema_resolve(_, s) := s if not schema_has_ref(s)

# --------------------------------------------------------------------------
# The keywords of one schema node, without descending.

schema_type_problems(s, v) := {msg |
	types := schema_types(s)
	not schema_some_type_ok(v, types)
	msg := sprintf("expected %s, got %s", [concat(" or ", types), schema_type_name(v)])
}

schema_some_type_ok(v, types) if {
	some t in types
	schema_type_ok(v, t)
}

schema_enum_problems(s, v) := {msg |
	is_array(s.enum)
	not v in s.enum
	msg := sprintf("%s is not one of %s", [schema_json(v), schema_json(s.enum)])
}

schema_const_problems(s, v) := {msg |
	"const" in object.keys(s)
	v != s.const
	msg := sprintf("must be %s", [schema_json(s.const)])
}

# minimum/maximum, with the draft-4 boolean exclusiveMinimum/exclusiveMaximum.
schema_minimum_problems(s, v) := {msg |
	is_number(v)
	m := s.minimum
	is_number(m)
	not s.exclusiveMinimum == true
	v < m
	msg := sprintf("%v is less than the minimum %v", [v, m])
} | {msg |
	is_number(v)
	m := s.minimum
	is_number(m)
	s.exclusiveMinimum == true
	v <= m
	msg := sprintf("%v must be greater than %v", [v, m])
}

schema_maximum_problems(s, v) := {msg |
	is_number(v)
	m := s.maximum
	is_number(m)
	not s.exclusiveMaximum == true
	v > m
	msg := sprintf("%v is greater than the maximum %v", [v, m])
} | {msg |
	is_number(v)
	m := s.maximum
	is_number(m)
	s.exclusiveMaximum == true
	v >= m
	msg := sprintf("%v must be less than %v", [v, m])
}

schema_exclusive_problems(s, v) := {msg |
	is_number(v)
	m := s.exclusiveMinimum
	is_number(m)
	v <= m
	msg := sprintf("%v must be greater than %v", [v, m])
} | {msg |
	is_number(v)
	m := s.exclusiveMaximum
	is_number(m)
	v >= m
	msg := sprintf("%v must be less than %v", [v, m])
}

schema_multiple(v, m) if {
	schema_is_integer(v)
	schema_is_integer(m)
	v % m == 0
}

schema_multiple(v, m) if {
	not schema_is_integer(v)
	q := v / m
	abs(q - round(q)) < 0.000000001
}

schema_multiple(v, m) if {
	schema_is_integer(v)
	not schema_is_integer(m)
	q := v / m
	abs(q - round(q)) < 0.000000001
}

schema_multiple_problems(s, v) := {msg |
	is_number(v)
	m := s.multipleOf
	is_number(m)
	m > 0
	not schema_multiple(v, m)
	msg := sprintf("%v is not a multiple of %v", [v, m])
}

schema_length_problems(s, v) := {msg |
	is_string(v)
	n := s.minLength
	count(v) < n
	msg := sprintf("%q is shorter than %v characters", [v, n])
} | {msg |
	is_string(v)
	n := s.maxLength
	count(v) > n
	msg := sprintf("is longer than %v characters", [n])
}

schema_pattern_problems(s, v) := {msg |
	is_string(v)
	re := schema_regex(s.pattern)
	not regex.match(re, v)
	msg := sprintf("%q does not match the pattern %q", [v, s.pattern])
}

schema_required_problems(s, v) := {msg |
	is_object(v)
	some name in s.required
	not name in object.keys(v)
	msg := sprintf("missing required property %q", [name])
}

schema_additional_problems(s, v) := {msg |
	is_object(v)
	s.additionalProperties == false
	declared := object.keys(object.get(s, "properties", {}))
	some name, _ in v
	not name in declared
	msg := sprintf("unexpected property %q", [name])
}

schema_size_problems(s, v) := {msg |
	is_object(v)
	n := s.minProperties
	count(v) < n
	msg := sprintf("has fewer than %v properties", [n])
} | {msg |
	is_object(v)
	n := s.maxProperties
	count(v) > n
	msg := sprintf("has more than %v properties", [n])
} | {msg |
	is_array(v)
	n := s.minItems
	count(v) < n
	msg := sprintf("has fewer than %v items", [n])
} | {msg |
	is_array(v)
	n := s.maxItems
	count(v) > n
	msg := sprintf("has more than %v items", [n])
}

schema_unique_problems(s, v) := {"has duplicate items" |
	is_array(v)
	s.uniqueItems == true
	count({x | some x in v}) < count(v)
}

schema_unsupported_here(s) := {sprintf("keyword %q", [k]) |
	some k, _ in s
	k in schema_unsupported_keywords
} | {sprintf("$ref %s", [schema_json(ref)]) |
	ref := s["$ref"]
} | {`"items" as an array` |
	is_array(s.items)
} | {sprintf("pattern %s", [schema_json(pattern)]) |
	pattern := s.pattern
	not schema_regex(pattern)
}

# The keywords that apply to the value's type only (the others are cheap to
# skip this way: each node runs the checks of one group).
schema_typed_problems(s, v) := (schema_minimum_problems(s, v) | schema_maximum_problems(s, v)) | (schema_exclusive_problems(s, v) | schema_multiple_problems(s, v)) if {
	is_number(v)
}

schema_typed_problems(s, v) := schema_length_problems(s, v) | schema_pattern_problems(s, v) if is_string(v)

schema_typed_problems(s, v) := (schema_required_problems(s, v) | schema_additional_problems(s, v)) | schema_size_problems(s, v) if {
	is_object(v)
}

schema_typed_problems(s, v) := schema_size_problems(s, v) | schema_unique_problems(s, v) if is_array(v)

schema_typed_problems(_, v) := set() if {
	not is_number(v)
	not is_string(v)
	not is_object(v)
	not is_array(v)
}

schema_unsupported_or_risky := schema_unsupported_keywords | {"$ref", "items", "pattern"}

schema_unsupported_at(s, p) := {["unsupported", p, what] | some what in schema_unsupported_here(s)} if {
	count(object.keys(s) & schema_unsupported_or_risky) > 0
}

schema_unsupported_at(s, _) := set() if count(object.keys(s) & schema_unsupported_or_risky) == 0

# [kind, path, text] errors of one node: kind "violation" or "unsupported".
schema_local(s, v, p) := errs if {
	is_object(s)
	problems := ((schema_type_problems(s, v) | schema_enum_problems(s, v)) | schema_const_problems(s, v)) | schema_typed_problems(s, v)
	errs := {["violation", p, msg] | some msg in problems} | schema_unsupported_at(s, p)
}

schema_local(s, _, _) := set() if s == true

schema_local(s, _, p) := {["violation", p, "no value is allowed here"]} if s == false

schema_local(s, _, _) := set() if {
	not is_object(s)
	not is_boolean(s)
}

# [schema, value, path] of what to check one level down (allOf branches
# included: they apply to the same value).
schema_children(s, v, p) := (props | extra) | (items | all) if {
	is_object(s)
	declared := object.get(s, "properties", {})
	props := {[sub, x, schema_join(p, k)] |
		is_object(v)
		is_object(declared)
		some k, sub in declared
		x := v[k]
	}
	extra := {[ap, x, schema_join(p, k)] |
		is_object(v)
		ap := s.additionalProperties
		is_object(ap)
		some k, x in v
		not k in object.keys(declared)
	}
	items := {[it, x, schema_join(p, format_int(i, 10))] |
		is_array(v)
		it := s.items
		not is_array(it)
		some i, x in v
	}
	all := {[b, v, p] | some b in object.get(s, "allOf", [])}
}

schema_children(s, _, _) := set() if not is_object(s)

schema_violation_free(errs) if {
	every e in errs {
		e[0] != "violation"
	}
}

# anyOf: a branch without errors passes; else one without violations passes
# with its unsupported markers; else the value matches none.
schema_any_of(results, p) := set() if {
	count([r | some r in results; count(r) == 0]) > 0
} else := passing[0] if {
	passing := [r | some r in results; schema_violation_free(r)]
	count(passing) > 0
} else := {["violation", p, "does not match any of the schemas in anyOf"]}

schema_one_of(results, p) := r if {
	passing := [x | some x in results; schema_violation_free(x)]
	count(passing) == 1
	r := passing[0]
} else := {["violation", p, "does not match any of the schemas in oneOf"]} if {
	count([x | some x in results; schema_violation_free(x)]) == 0
} else := {["violation", p, "matches more than one of the schemas in oneOf"]}

schema_deeper(s, v, p) if count(schema_children(s, v, p)) > 0

schema_deeper(s, _, _) if {
	is_object(s)
	some k in ["anyOf", "oneOf"]
	k in object.keys(s)
}

# --------------------------------------------------------------------------
# The validator, unrolled: schema_errors_N checks a node at level N and
# descends with schema_errors_N+1.

schema_errors_6(root, s0, v, p) := errs if {
	s := schema_resolve(root, s0)
	deeper := {["unsupported", p, "nesting deeper than 6 levels"] | schema_deeper(s, v, p)}
	errs := schema_local(s, v, p) | deeper
}

schema_errors_5(root, s0, v, p) := ((schema_local(s, v, p) | nested) | any) | one if {
	s := schema_resolve(root, s0)
	nested := {e | some [sub, x, q] in schema_children(s, v, p); some e in schema_errors_6(root, sub, x, q)}
	any := {e | is_array(s.anyOf); some e in schema_any_of([schema_errors_6(root, b, v, p) | some b in s.anyOf], p)}
	one := {e | is_array(s.oneOf); some e in schema_one_of([schema_errors_6(root, b, v, p) | some b in s.oneOf], p)}
}

schema_errors_4(root, s0, v, p) := ((schema_local(s, v, p) | nested) | any) | one if {
	s := schema_resolve(root, s0)
	nested := {e | some [sub, x, q] in schema_children(s, v, p); some e in schema_errors_5(root, sub, x, q)}
	any := {e | is_array(s.anyOf); some e in schema_any_of([schema_errors_5(root, b, v, p) | some b in s.anyOf], p)}
	one := {e | is_array(s.oneOf); some e in schema_one_of([schema_errors_5(root, b, v, p) | some b in s.oneOf], p)}
}

schema_errors_3(root, s0, v, p) := ((schema_local(s, v, p) | nested) | any) | one if {
	s := schema_resolve(root, s0)
	nested := {e | some [sub, x, q] in schema_children(s, v, p); some e in schema_errors_4(root, sub, x, q)}
	any := {e | is_array(s.anyOf); some e in schema_any_of([schema_errors_4(root, b, v, p) | some b in s.anyOf], p)}
	one := {e | is_array(s.oneOf); some e in schema_one_of([schema_errors_4(root, b, v, p) | some b in s.oneOf], p)}
}

schema_errors_2(root, s0, v, p) := ((schema_local(s, v, p) | nested) | any) | one if {
	s := schema_resolve(root, s0)
	nested := {e | some [sub, x, q] in schema_children(s, v, p); some e in schema_errors_3(root, sub, x, q)}
	any := {e | is_array(s.anyOf); some e in schema_any_of([schema_errors_3(root, b, v, p) | some b in s.anyOf], p)}
	one := {e | is_array(s.oneOf); some e in schema_one_of([schema_errors_3(root, b, v, p) | some b in s.oneOf], p)}
}

schema_errors_1(root, s0, v, p) := ((schema_local(s, v, p) | nested) | any) | one if {
	s := schema_resolve(root, s0)
	nested := {e | some [sub, x, q] in schema_children(s, v, p); some e in schema_errors_2(root, sub, x, q)}
	any := {e | is_array(s.anyOf); some e in schema_any_of([schema_errors_2(root, b, v, p) | some b in s.anyOf], p)}
	one := {e | is_array(s.oneOf); some e in schema_one_of([schema_errors_2(root, b, v, p) | some b in s.oneOf], p)}
}

# --------------------------------------------------------------------------

schema_tool_call if {
	schema_config
	input.mcp.method == "tools/call"
	is_string(input.mcp.tool.name)
}

schema_errors := schema_errors_1(root, root, input.mcp.tool.arguments, "") if {
	schema_tool_call
	root := input.mcp.tool.definition.inputSchema
}

schema_list(items) := text if {
	n := object.get(schema_config, "max_errors", 5)
	count(items) <= n
	text := concat("; ", items)
} else := text if {
	n := object.get(schema_config, "max_errors", 5)
	text := sprintf("%s; and %d more", [concat("; ", array.slice(items, 0, n)), count(items) - n])
}

# (`is_string` below: a tools/call name always is one, the filter refuses
# others; the guard says so to the `%q` check of `mcp-policy check`.)
schema_deny contains msg if {
	problems := sort({sprintf("%s: %s", [schema_where(p), text]) | some ["violation", p, text] in schema_errors})
	count(problems) > 0
	is_string(input.mcp.tool.name)
	msg := sprintf("schema: arguments of %q do not match its input schema: %s", [input.mcp.tool.name, schema_list(problems)])
}

schema_deny contains msg if {
	object.get(schema_config, "unsupported", "allow") == "deny"
	unsupported := sort({sprintf("%s (at %s)", [what, schema_where(p)]) | some ["unsupported", p, what] in schema_errors})
	count(unsupported) > 0
	is_string(input.mcp.tool.name)
	msg := sprintf("schema: the input schema of %q uses what this policy cannot check: %s", [input.mcp.tool.name, schema_list(unsupported)])
}

schema_deny contains msg if {
	schema_tool_call
	schema_config.require_definition == true
	not input.mcp.tool.definition
	is_string(input.mcp.tool.name)
	msg := sprintf("schema: the definition of tool %q is unknown (the proxy has not seen it in a tools/list answer from this server), so its arguments cannot be checked", [input.mcp.tool.name])
}

deny contains msg if some msg in schema_deny
