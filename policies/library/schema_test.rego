# Tests for library/schema.rego (opa test convention).
package schema_test

import rego.v1

import data.mcp

# The schema the MCP Python SDK generates for add(a: int, b: int).
add_schema := {
	"properties": {"a": {"title": "A", "type": "integer"}, "b": {"title": "B", "type": "integer"}},
	"required": ["a", "b"], "title": "addArguments", "type": "object",
}

# For opt(x: Optional[int] = None, item: Item | None = None, tags: list[str] = []).
opt_schema := {
	"$defs": {"Item": {
		"properties": {"name": {"title": "Name", "type": "string"}, "qty": {"default": 1, "title": "Qty", "type": "integer"}},
		"required": ["name"], "title": "Item", "type": "object",
	}},
	"properties": {
		"x": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null, "title": "X"},
		"item": {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}], "default": null},
		"tags": {"default": [], "items": {"type": "string"}, "title": "Tags", "type": "array"},
	},
	"title": "optArguments", "type": "object",
}

call(name, args, schema) := {"mcp": {"kind": "request", "method": "tools/call", "tool": {
	"name": name, "arguments": args,
	"definition": {"name": name, "inputSchema": schema, "annotations": {}},
}}}

problems(name, args, schema, cfg) := r if {
	r := mcp.schema_deny with input as call(name, args, schema) with data.library.schema as cfg
}

ok(args, schema) if count(problems("t", args, schema, {})) == 0

fails(args, schema, what) if {
	problems("t", args, schema, {}) == {sprintf("schema: arguments of \"t\" do not match its input schema: %s", [what])}
}

test_valid_arguments if {
	ok({"a": 1, "b": 2}, add_schema)
	ok({"a": 1.0, "b": -2}, add_schema)
}

test_wrong_type if {
	fails({"a": "1", "b": 2}, add_schema, "a: expected integer, got string")
	fails({"a": 1.5, "b": 2}, add_schema, "a: expected integer, got number")
	fails({"a": null, "b": true}, add_schema, "a: expected integer, got null; b: expected integer, got boolean")
}

test_missing_required if {
	fails({"a": 1}, add_schema, `arguments: missing required property "b"`)
}

test_reason_reaches_deny if {
	r := mcp.deny with input as call("add", {"a": "x", "b": 1}, add_schema) with data.library.schema as {}
	`schema: arguments of "add" do not match its input schema: a: expected integer, got string` in r
}

test_type_arrays_and_number if {
	s := {"type": "object", "properties": {"v": {"type": ["string", "null"]}, "n": {"type": "number"}}}
	ok({"v": null, "n": 1.5}, s)
	ok({"v": "x", "n": 2}, s)
	fails({"v": 3}, s, "v: expected string or null, got integer")
	fails({"n": "3"}, s, "n: expected number, got string")
}

test_additional_properties_false if {
	s := object.union(add_schema, {"additionalProperties": false})
	ok({"a": 1, "b": 2}, s)
	fails({"a": 1, "b": 2, "c": 3}, s, `arguments: unexpected property "c"`)
}

test_additional_properties_schema if {
	s := {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}}
	ok({"a": 1, "x": "y"}, s)
	fails({"a": 1, "x": 2}, s, "x: expected string, got integer")
}

test_enum_and_const if {
	s := {"type": "object", "properties": {"mode": {"enum": ["fast", "safe", 3]}, "v": {"const": {"k": [1]}}}}
	ok({"mode": "safe", "v": {"k": [1]}}, s)
	ok({"mode": 3}, s)
	fails({"mode": "yolo"}, s, `mode: "yolo" is not one of ["fast","safe",3]`)
	fails({"v": {"k": [2]}}, s, `v: must be {"k":[1]}`)
}

test_numeric_bounds if {
	s := {"type": "object", "properties": {
		"n": {"type": "integer", "minimum": 1, "maximum": 10},
		"x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
		"m": {"type": "integer", "multipleOf": 5},
		"f": {"type": "number", "multipleOf": 0.5},
	}}
	ok({"n": 1, "x": 0.5, "m": 15, "f": 2.5}, s)
	ok({"n": 10}, s)
	fails({"n": 0}, s, "n: 0 is less than the minimum 1")
	fails({"n": 11}, s, "n: 11 is greater than the maximum 10")
	fails({"x": 0}, s, "x: 0 must be greater than 0")
	fails({"x": 1}, s, "x: 1 must be less than 1")
	fails({"m": 7}, s, "m: 7 is not a multiple of 5")
	fails({"f": 0.7}, s, "f: 0.7 is not a multiple of 0.5")
}

test_draft4_boolean_exclusive if {
	s := {"type": "object", "properties": {"n": {"minimum": 0, "exclusiveMinimum": true, "maximum": 5, "exclusiveMaximum": true}}}
	ok({"n": 3}, s)
	fails({"n": 0}, s, "n: 0 must be greater than 0")
	fails({"n": 5}, s, "n: 5 must be less than 5")
}

test_string_length_and_pattern if {
	s := {"type": "object", "properties": {
		"code": {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[A-Z]+$"},
		"zip": {"type": "string", "pattern": `^\d{5}$`},
		"word": {"type": "string", "pattern": "b"},
	}}
	ok({"code": "AB", "zip": "12345", "word": "abc"}, s)
	ok({"code": "ÄÖ"}, {"type": "object", "properties": {"code": {"maxLength": 2}}})
	fails({"code": "A"}, s, `code: "A" is shorter than 2 characters`)
	fails({"code": "ABCDE"}, s, "code: is longer than 4 characters")
	fails({"code": "ab"}, s, `code: "ab" does not match the pattern "^[A-Z]+$"`)
	fails({"zip": "1234x"}, s, `zip: "1234x" does not match the pattern "^\\d{5}$"`)
	fails({"word": "xyz"}, s, `word: "xyz" does not match the pattern "b"`)
}

test_arrays if {
	s := {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1, "maxItems": 3, "uniqueItems": true}}}
	ok({"tags": ["a", "b"]}, s)
	fails({"tags": []}, s, "tags: has fewer than 1 items")
	fails({"tags": ["a", "b", "c", "d"]}, s, "tags: has more than 3 items")
	fails({"tags": ["a", "a"]}, s, "tags: has duplicate items")
	fails({"tags": ["a", 2, "long"]}, s, "tags/1: expected string, got integer; tags/2: is longer than 3 characters")
}

test_nested_objects if {
	s := {"type": "object", "properties": {"filter": {"type": "object", "required": ["field"], "properties": {
		"field": {"type": "string"},
		"range": {"type": "object", "properties": {"from": {"type": "integer"}}, "additionalProperties": false},
	}}}}
	ok({"filter": {"field": "x", "range": {"from": 1}}}, s)
	fails({"filter": {"range": {"from": "1", "to": 2}}}, s, `filter/range/from: expected integer, got string; filter/range: unexpected property "to"; filter: missing required property "field"`)
}

test_properties_counts if {
	s := {"type": "object", "minProperties": 1, "maxProperties": 2}
	ok({"a": 1}, s)
	fails({}, s, "arguments: has fewer than 1 properties")
	fails({"a": 1, "b": 2, "c": 3}, s, "arguments: has more than 2 properties")
}

test_sdk_optional_and_ref if {
	ok({}, opt_schema)
	ok({"x": null, "item": null, "tags": []}, opt_schema)
	ok({"x": 3, "item": {"name": "bolt", "qty": 2}, "tags": ["a"]}, opt_schema)
	fails({"x": "3"}, opt_schema, "x: does not match any of the schemas in anyOf")
	fails({"item": {"qty": 2}}, opt_schema, "item: does not match any of the schemas in anyOf")
	fails({"tags": [1]}, opt_schema, "tags/0: expected string, got integer")
}

test_one_of_and_all_of if {
	s := {"type": "object", "properties": {
		"v": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 10}]},
		"w": {"allOf": [{"type": "string"}, {"minLength": 2}]},
	}}
	ok({"v": 3, "w": "ab"}, s)
	ok({"v": 10.5}, s)
	fails({"v": 12}, s, "v: matches more than one of the schemas in oneOf")
	fails({"v": "x"}, s, "v: does not match any of the schemas in oneOf")
	fails({"w": "a"}, s, `w: "a" is shorter than 2 characters`)
}

test_recursive_ref_and_definitions if {
	s := {"type": "object", "definitions": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}, "v": {"type": "integer"}}}}, "properties": {"n": {"$ref": "#/definitions/Node"}}}
	ok({"n": {"v": 1, "next": {"v": 2}}}, s)
	fails({"n": {"v": 1, "next": {"v": "2"}}}, s, "n/next/v: expected integer, got string")
}

test_boolean_schemas if {
	s := {"type": "object", "properties": {"any": true, "never": false}}
	ok({"any": {"x": [1]}}, s)
	fails({"never": 1}, s, "never: no value is allowed here")
}

test_max_errors if {
	s := {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}}}
	r := problems("t", {"a": 1, "b": 2, "c": 3}, s, {"max_errors": 2})
	r == {`schema: arguments of "t" do not match its input schema: a: expected string, got integer; b: expected string, got integer; and 1 more`}
}

test_unsupported_allowed_by_default if {
	s := {"type": "object", "properties": {"v": {"type": "string", "not": {"const": "x"}, "if": {"const": "y"}}}}
	ok({"v": "x"}, s)

	# The supported keywords beside an unsupported one are still checked.
	fails({"v": 1}, s, "v: expected string, got integer")
}

test_unsupported_denied_when_configured if {
	s := {"type": "object", "properties": {"v": {"type": "string", "not": {"const": "x"}}, "w": {"$ref": "https://example.com/s.json"}}}
	r := problems("t", {"v": "z"}, s, {"unsupported": "deny"})
	r == {`schema: the input schema of "t" uses what this policy cannot check: keyword "not" (at v)`}
	r2 := problems("t", {"w": 1}, s, {"unsupported": "deny"})
	r2 == {`schema: the input schema of "t" uses what this policy cannot check: $ref "https://example.com/s.json" (at w)`}

	# Parts of the schema the arguments do not reach do not count.
	count(problems("t", {}, s, {"unsupported": "deny"})) == 0
}

test_uncompilable_pattern_is_unsupported if {
	s := {"type": "object", "properties": {"v": {"type": "string", "pattern": "(?=a)b"}}}
	ok({"v": "zzz"}, s)
	r := problems("t", {"v": "ab"}, s, {"unsupported": "deny"})
	r == {`schema: the input schema of "t" uses what this policy cannot check: pattern "(?=a)b" (at v)`}
}

test_depth_limit if {
	leaf := {"type": "object", "properties": {"x": {"type": "integer"}}}
	s := {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "object", "properties": {"c": {"type": "object", "properties": {"d": {"type": "object", "properties": {"e": leaf}}}}}}}}}}

	# Level 6 (e) is checked itself, not below it.
	ok({"a": {"b": {"c": {"d": {"e": {"x": "not checked"}}}}}}, s)
	fails({"a": {"b": {"c": {"d": {"e": 7}}}}}, s, "a/b/c/d/e: expected object, got integer")
	r := problems("t", {"a": {"b": {"c": {"d": {"e": {"x": 1}}}}}}, s, {"unsupported": "deny"})
	r == {`schema: the input schema of "t" uses what this policy cannot check: nesting deeper than 6 levels (at a/b/c/d/e)`}
}

test_unknown_definition if {
	inp := {"mcp": {"method": "tools/call", "tool": {"name": "mystery", "arguments": {"a": 1}}}}
	count(mcp.schema_deny) == 0 with input as inp with data.library.schema as {}
	r := mcp.schema_deny with input as inp with data.library.schema as {"require_definition": true}
	r == {`schema: the definition of tool "mystery" is unknown (the proxy has not seen it in a tools/list answer from this server), so its arguments cannot be checked`}
}

test_definition_without_input_schema if {
	inp := {"mcp": {"method": "tools/call", "tool": {"name": "t", "arguments": {"a": 1}, "definition": {"name": "t"}}}}
	count(mcp.schema_deny) == 0 with input as inp with data.library.schema as {"require_definition": true}
}

test_other_methods_and_inert_without_data if {
	count(mcp.schema_deny) == 0 with input as {"mcp": {"method": "tools/list"}} with data.library.schema as {"require_definition": true}
	count(mcp.schema_deny) == 0 with input as call("add", {"a": "x"}, add_schema)
}
