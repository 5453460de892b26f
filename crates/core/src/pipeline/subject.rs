//! The pipeline's own reading of method names: which requests name a tool,
//! a prompt or a resource, which carry arguments, which lists are filtered.
//! Every method-string match of the request and response paths is here, so
//! that one table can replace them.

/// What a request is about, for the audit record's `tool`, `prompt` and
/// `resource` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    Tool,
    Prompt,
    Resource,
}

/// The subject a client request names (its `routing_name`): tools/call a
/// tool, prompts/get a prompt, resources/read, subscribe and unsubscribe a
/// resource.
pub(crate) fn request_subject(method: Option<&str>) -> Option<Subject> {
    match method? {
        "tools/call" => Some(Subject::Tool),
        "prompts/get" => Some(Subject::Prompt),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            Some(Subject::Resource)
        }
        _ => None,
    }
}

/// The subject of what the server sends back for a request: a tool's or
/// prompt's result (`name`), a resource's content (`uri`). These are also
/// the results scanned by the detectors.
pub(crate) fn result_subject(method: &str) -> Option<Subject> {
    match method {
        "tools/call" => Some(Subject::Tool),
        "prompts/get" => Some(Subject::Prompt),
        "resources/read" => Some(Subject::Resource),
        _ => None,
    }
}

/// Requests whose `params.arguments` are digested in the audit record and
/// may be rewritten by the policy.
pub(crate) fn takes_arguments(method: Option<&str>) -> bool {
    matches!(method, Some("tools/call" | "prompts/get"))
}

/// A tools/call: the one request whose tool definition the policy reads,
/// and whose denial may be answered as a tool result.
pub(crate) fn is_tool_call(method: Option<&str>) -> bool {
    method == Some("tools/call")
}

/// A tools/list: its answer teaches tool definitions.
pub(crate) fn is_tools_list(method: Option<&str>) -> bool {
    method == Some("tools/list")
}

/// The server's notice that its tool list changed.
pub(crate) fn is_tools_list_changed(method: Option<&str>) -> bool {
    method == Some("notifications/tools/list_changed")
}

/// An `initialize`: the session the server mints in its answer is bound
/// to the caller.
pub(crate) fn is_initialize(method: Option<&str>) -> bool {
    method == Some("initialize")
}

/// The list methods whose results are filtered per caller, with the result
/// member holding the items.
pub const LIST_METHODS: [(&str, &str); 4] = [
    ("tools/list", "tools"),
    ("prompts/list", "prompts"),
    ("resources/list", "resources"),
    ("resources/templates/list", "resourceTemplates"),
];

/// Whether `method` is a list whose items are filtered.
pub fn is_list(method: &str) -> bool {
    LIST_METHODS.iter().any(|(m, _)| *m == method)
}

/// The result member holding the items of a filtered list.
pub(crate) fn list_member(method: &str) -> Option<&'static str> {
    LIST_METHODS
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, member)| *member)
}

/// An item of a list result is decided as the request that would use it:
/// the method, and the subject member of its `input.mcp`; `by_name`: a tool
/// or prompt, named by `name` (else a resource, named by `uri`).
pub(crate) fn listing_request(list_method: &str) -> (&'static str, &'static str, bool) {
    match list_method {
        "tools/list" => ("tools/call", "tool", true),
        "prompts/list" => ("prompts/get", "prompt", true),
        _ => ("resources/read", "resource", false),
    }
}
