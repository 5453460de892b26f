//! The pipeline's questions about a method, answered from the one table of
//! the MCP method vocabulary ([`crate::mcp::methods`]).

use crate::mcp::methods::{self, SubjectKind};

/// What a request is about, for the audit record's `tool`, `prompt` and
/// `resource` fields.
pub(crate) use crate::mcp::methods::SubjectKind as Subject;

/// The subject a client request names (its `routing_name`): tools/call a
/// tool, prompts/get a prompt, resources/read, subscribe and unsubscribe a
/// resource.
pub(crate) fn request_subject(method: Option<&str>) -> Option<Subject> {
    methods::subject(method?).map(|(kind, _)| kind)
}

/// The subject of what the server sends back for a request: a tool's or
/// prompt's result (`name`), a resource's content (`uri`): the methods
/// that use a subject. These are also the results scanned by the detectors.
pub(crate) fn result_subject(method: &str) -> Option<Subject> {
    methods::subject(method)
        .map(|(kind, _)| kind)
        .filter(|kind| kind.use_method() == method)
}

/// Requests whose `params.arguments` are digested in the audit record and
/// may be rewritten by the policy.
pub(crate) fn takes_arguments(method: Option<&str>) -> bool {
    request_subject(method).is_some_and(SubjectKind::has_arguments)
}

/// A tools/call: the one request whose tool definition the policy reads,
/// and whose denial may be answered as a tool result.
pub(crate) fn is_tool_call(method: Option<&str>) -> bool {
    method == Some(methods::TOOLS_CALL)
}

/// A tools/list: its answer teaches tool definitions.
pub(crate) fn is_tools_list(method: Option<&str>) -> bool {
    method == Some(methods::TOOLS_LIST)
}

/// The server's notice that its tool list changed.
pub(crate) fn is_tools_list_changed(method: Option<&str>) -> bool {
    method == Some(methods::TOOLS_LIST_CHANGED)
}

/// An `initialize`: the session the server mints in its answer is bound
/// to the caller.
pub(crate) fn is_initialize(method: Option<&str>) -> bool {
    method == Some(methods::INITIALIZE)
}

/// Whether `method` is a list whose items are filtered.
pub use crate::mcp::methods::is_list;

/// The result member holding the items of a filtered list.
pub(crate) fn list_member(method: &str) -> Option<&'static str> {
    methods::list_member(method)
}

/// An item of a list result is decided as the request that would use it:
/// the method, and the subject member of its `input.mcp`; `by_name`: a tool
/// or prompt, named by `name` (else a resource, named by `uri`).
pub(crate) fn listing_request(list_method: &str) -> (&'static str, &'static str, bool) {
    let kind = methods::list_items(list_method).unwrap_or(SubjectKind::Resource);
    (kind.use_method(), kind.member(), kind.param() == "name")
}
