//! The MCP method vocabulary the code switches on, in one place: the method
//! names, which methods name a subject (a tool, a prompt or a resource) and
//! by which `params` member, and which list methods are filtered per caller
//! with the result member holding their items.
//!
//! Everything that asks "what does this method act on?" (the parser's
//! schema checks, the `Mcp-Name` header, the policy input's named fields,
//! list filtering, tool facts) reads it from here.

pub const INITIALIZE: &str = "initialize";
pub const TOOLS_CALL: &str = "tools/call";
pub const TOOLS_LIST: &str = "tools/list";
pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
pub const PROMPTS_GET: &str = "prompts/get";
pub const PROMPTS_LIST: &str = "prompts/list";
pub const RESOURCES_READ: &str = "resources/read";
pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
pub const RESOURCES_LIST: &str = "resources/list";
pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
pub const COMPLETION_COMPLETE: &str = "completion/complete";
pub const TASKS_LIST: &str = "tasks/list";

/// What a request acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectKind {
    Tool,
    Prompt,
    Resource,
}

impl SubjectKind {
    /// The `params` member (and list item member) the subject is named by:
    /// `name` for tools and prompts, `uri` for resources.
    pub const fn param(self) -> &'static str {
        match self {
            SubjectKind::Tool | SubjectKind::Prompt => "name",
            SubjectKind::Resource => "uri",
        }
    }

    /// The member of `input.mcp` that describes the subject.
    pub fn member(self) -> &'static str {
        match self {
            SubjectKind::Tool => "tool",
            SubjectKind::Prompt => "prompt",
            SubjectKind::Resource => "resource",
        }
    }

    /// Whether the request carries `params.arguments` for the subject.
    pub fn has_arguments(self) -> bool {
        matches!(self, SubjectKind::Tool | SubjectKind::Prompt)
    }

    /// The method that uses a subject of this kind (what a listed item
    /// would be called, fetched or read with).
    pub fn use_method(self) -> &'static str {
        match self {
            SubjectKind::Tool => TOOLS_CALL,
            SubjectKind::Prompt => PROMPTS_GET,
            SubjectKind::Resource => RESOURCES_READ,
        }
    }
}

/// The methods that name a subject: (method, kind, whether the 2026-07-28
/// transport requires an `Mcp-Name` header mirroring it).
const SUBJECTS: [(&str, SubjectKind, bool); 5] = [
    (TOOLS_CALL, SubjectKind::Tool, true),
    (PROMPTS_GET, SubjectKind::Prompt, true),
    (RESOURCES_READ, SubjectKind::Resource, true),
    (RESOURCES_SUBSCRIBE, SubjectKind::Resource, false),
    (RESOURCES_UNSUBSCRIBE, SubjectKind::Resource, false),
];

/// The subject a method names, and the `params` member that names it:
/// `tools/call` → (Tool, `"name"`), `prompts/get` → (Prompt, `"name"`),
/// `resources/read`, `resources/subscribe`, `resources/unsubscribe` →
/// (Resource, `"uri"`). `None` for every other method.
pub fn subject(method: &str) -> Option<(SubjectKind, &'static str)> {
    SUBJECTS
        .iter()
        .find(|(m, _, _)| *m == method)
        .map(|(_, k, _)| (*k, k.param()))
}

/// Whether the 2026-07-28 transport requires an `Mcp-Name` header for the
/// method (`tools/call`, `resources/read`, `prompts/get`).
pub fn requires_routing_name(method: &str) -> bool {
    SUBJECTS
        .iter()
        .any(|(m, _, required)| *required && *m == method)
}

/// The list methods whose results are filtered per caller: (method, result
/// member holding the items, what the items are).
pub const LISTS: [(&str, &str, SubjectKind); 4] = [
    (TOOLS_LIST, TOOLS_MEMBER, SubjectKind::Tool),
    (PROMPTS_LIST, "prompts", SubjectKind::Prompt),
    (RESOURCES_LIST, "resources", SubjectKind::Resource),
    (
        RESOURCES_TEMPLATES_LIST,
        "resourceTemplates",
        SubjectKind::Resource,
    ),
];

/// The member of a `tools/list` result holding the tools.
pub const TOOLS_MEMBER: &str = "tools";

/// Whether `method` is a list whose items are filtered.
pub fn is_list(method: &str) -> bool {
    LISTS.iter().any(|(m, _, _)| *m == method)
}

/// The result member holding a list method's items (`tools/list` →
/// `"tools"`, …, `resources/templates/list` → `"resourceTemplates"`).
pub fn list_member(method: &str) -> Option<&'static str> {
    LISTS
        .iter()
        .find(|(m, _, _)| *m == method)
        .map(|(_, member, _)| *member)
}

/// What the items of a list method are (`tools/list` → Tool, …).
pub fn list_items(method: &str) -> Option<SubjectKind> {
    LISTS
        .iter()
        .find(|(m, _, _)| *m == method)
        .map(|(_, _, kind)| *kind)
}

/// Whether a method's params may carry a pagination `cursor`: the filtered
/// lists and `tasks/list`.
pub fn is_paginated(method: &str) -> bool {
    is_list(method) || method == TASKS_LIST
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn subjects() {
        assert_eq!(subject("tools/call"), Some((SubjectKind::Tool, "name")));
        assert_eq!(subject("prompts/get"), Some((SubjectKind::Prompt, "name")));
        for m in [
            "resources/read",
            "resources/subscribe",
            "resources/unsubscribe",
        ] {
            assert_eq!(subject(m), Some((SubjectKind::Resource, "uri")), "{m}");
        }
        assert_eq!(subject("tools/list"), None);
        assert_eq!(subject("completion/complete"), None);
        let required: Vec<&str> = SUBJECTS
            .iter()
            .map(|(m, _, _)| *m)
            .filter(|m| requires_routing_name(m))
            .collect();
        assert_eq!(required, ["tools/call", "prompts/get", "resources/read"]);
    }

    #[test]
    fn lists() {
        assert_eq!(list_member("tools/list"), Some("tools"));
        assert_eq!(list_member("prompts/list"), Some("prompts"));
        assert_eq!(list_member("resources/list"), Some("resources"));
        assert_eq!(
            list_member("resources/templates/list"),
            Some("resourceTemplates")
        );
        assert_eq!(list_member("tasks/list"), None);
        assert!(is_list("tools/list") && !is_list("tools/call"));
        assert!(is_paginated("tasks/list") && !is_paginated("ping"));
        assert_eq!(list_items("prompts/list"), Some(SubjectKind::Prompt));
        assert_eq!(
            list_items("resources/templates/list").map(SubjectKind::use_method),
            Some("resources/read")
        );
    }
}
