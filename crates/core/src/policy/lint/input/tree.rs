//! The documented input (docs/input.md) as a tree the lint looks paths up
//! in.

/// A node of the documented input.
#[derive(Debug, Clone, Copy)]
pub enum Node {
    /// A scalar (string, number, boolean): nothing below it.
    Leaf,
    /// Whatever the client or a verifier sent: any path below is valid.
    Open,
    /// An object with exactly these members.
    Obj(&'static [(&'static str, Node)]),
    /// An array or set whose elements are all this.
    Each(&'static Node),
}

use Node::{Each, Leaf, Obj, Open};

/// A rate counter (`input.rate.session`, `input.rate.identity`).
const RATE: Node = Obj(&[("window", Leaf), ("tools", Open)]);

/// The documented `input` (docs/input.md).
pub const INPUT: Node = Obj(&[
    (
        "mcp",
        Obj(&[
            ("kind", Leaf),
            ("direction", Leaf),
            ("listing", Leaf),
            ("list_method", Leaf),
            ("findings", Open),
            ("method", Leaf),
            ("id", Leaf),
            ("params", Open),
            ("result", Open),
            ("error", Open),
            ("protocol_version", Leaf),
            ("session_id", Leaf),
            ("client", Open),
            ("capabilities", Open),
            (
                "headers",
                Obj(&[("method", Leaf), ("name", Leaf), ("params", Open)]),
            ),
            ("batch", Obj(&[("index", Leaf), ("size", Leaf)])),
            (
                "tool",
                Obj(&[("name", Leaf), ("arguments", Open), ("definition", Open)]),
            ),
            (
                "prompt",
                Obj(&[("name", Leaf), ("arguments", Open), ("definition", Open)]),
            ),
            (
                "resource",
                Obj(&[("uri", Leaf), ("template", Leaf), ("definition", Open)]),
            ),
            (
                "completion",
                Obj(&[("ref", Open), ("argument", Open), ("context", Open)]),
            ),
            ("logging", Obj(&[("level", Leaf)])),
            ("task", Obj(&[("id", Leaf)])),
            ("cancelled", Obj(&[("request_id", Leaf), ("reason", Leaf)])),
            (
                "progress",
                Obj(&[
                    ("token", Leaf),
                    ("progress", Leaf),
                    ("total", Leaf),
                    ("message", Leaf),
                ]),
            ),
            ("cursor", Leaf),
        ]),
    ),
    (
        "http",
        Obj(&[
            ("method", Leaf),
            ("path", Leaf),
            ("host", Leaf),
            ("scheme", Leaf),
            ("headers", Open),
        ]),
    ),
    ("identity", Obj(&[("claims", Open), ("subject", Leaf)])),
    ("source", Obj(&[("address", Leaf), ("principal", Leaf)])),
    ("connection", Obj(&[("tls_version", Leaf), ("mtls", Leaf)])),
    ("xds", Obj(&[("route_name", Leaf), ("cluster_name", Leaf)])),
    (
        "session",
        Obj(&[
            ("id", Leaf),
            ("started_ms", Leaf),
            (
                "calls",
                Each(&Obj(&[
                    ("time_ms", Leaf),
                    ("method", Leaf),
                    ("name", Leaf),
                    ("tool", Leaf),
                    ("labels", Each(&Leaf)),
                    ("allowed", Leaf),
                ])),
            ),
            ("labels", Each(&Leaf)),
            ("principal", Leaf),
            (
                "killed",
                Obj(&[("reason", Leaf), ("at_ms", Leaf), ("until_ms", Leaf)]),
            ),
        ]),
    ),
    ("rate", Obj(&[("session", RATE), ("identity", RATE)])),
    (
        "approval",
        Obj(&[
            ("id", Leaf),
            ("key_id", Leaf),
            ("by", Leaf),
            ("asked_at", Leaf),
            ("at", Leaf),
            ("expires_at", Leaf),
        ]),
    ),
]);

/// Open-ended objects whose keys the filter lower-cases (header names).
pub(super) const LOWER_CASE_KEYS: [&str; 2] = ["input.http.headers", "input.mcp.headers.params"];

pub(super) fn step(node: Node, key: &str) -> Option<Node> {
    match node {
        Open => Some(Open),
        Leaf => None,
        Each(element) => Some(*element),
        Obj(members) => members.iter().find(|(k, _)| *k == key).map(|(_, n)| *n),
    }
}

/// Every documented path, for the documentation test and `--help`.
pub fn documented_paths() -> Vec<(String, &'static str)> {
    fn go(prefix: &str, node: Node, out: &mut Vec<(String, &'static str)>) {
        if let Obj(members) = node {
            for (k, n) in members {
                let p = format!("{prefix}.{k}");
                out.push((
                    p.clone(),
                    match n {
                        Leaf => "value",
                        Open => "open",
                        Obj(_) => "object",
                        Each(_) => "list",
                    },
                ));
                match n {
                    Each(element) => go(&format!("{p}[_]"), **element, out),
                    other => go(&p, *other, out),
                }
            }
        }
    }
    let mut out = Vec::new();
    go("input", INPUT, &mut out);
    out
}
