//! A recorded request driven through `pipeline::Plugin` exactly as the
//! proxy-wasm adapter drives it: the request headers (with the request
//! attributes the policy can read), then, unless the pipeline answered at
//! the headers, the whole body with the session store. The policy records
//! every evaluation it makes
//! ([`crate::policy::engine::Policy::set_recording`]); each is paired with
//! the message it decided.

use super::explain::Explanation;
use super::message::Request;
use crate::mcp::attributes::Needs;
use crate::mcp::jsonrpc::{self, Body};
use crate::pipeline::request::{BodyAction, Decided, Forward, HeadersAction, LocalReply, Plugin};
use crate::policy::engine::Evaluation;
use crate::policy::input::HttpRequest;
use crate::state::store::MemoryStore;

/// What the filter did with the request.
pub enum Outcome {
    Forwarded(Forward),
    Replied(LocalReply),
}

impl Outcome {
    /// An input document evaluated on its own (no request path): only the
    /// policy's answer.
    pub fn from_input(allowed: bool) -> Outcome {
        if allowed {
            Outcome::Forwarded(Forward::default())
        } else {
            Outcome::Replied(LocalReply {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                log: String::new(),
            })
        }
    }

    pub fn forwarded(&self) -> bool {
        matches!(self, Outcome::Forwarded(_))
    }
}

/// One message (or the transport request) and what happened to it.
pub struct Entry {
    pub kind: String,
    pub method: Option<String>,
    pub name: Option<String>,
    pub id: Option<String>,
    pub decided: Option<Decided>,
    pub evaluation: Option<Evaluation>,
    /// Filled in by the caller ([`super::explain::Explainer`]).
    pub explanation: Option<Result<Explanation, String>>,
    /// A batch element that is not a valid message.
    pub invalid: Option<String>,
}

/// The request as the filter sees it: headers and the attributes it reads.
pub fn http_request(req: &Request, needs: Needs) -> Result<HttpRequest, String> {
    let mut http = HttpRequest::from_headers(req.headers.clone());
    let attributes = req.attributes.to_attributes()?;
    http.attributes = attributes.visible(needs);
    Ok(http)
}

/// Drive the pipeline as the proxy-wasm adapter does: headers (with the
/// request attributes the policy reads), then, unless answered, the whole
/// body with the session store at `now_ms`. `Err` is a request that cannot
/// be built (attributes the filter could not have).
pub fn drive(
    plugin: &mut Plugin,
    req: &Request,
    needs: Needs,
    store: &MemoryStore,
    now_ms: u64,
) -> Result<(Outcome, Vec<Entry>), String> {
    let http = http_request(req, needs)?;
    let end_of_stream = req.body.is_none();
    let action = plugin.on_request_headers(&http, end_of_stream);
    let body = req.body.clone().unwrap_or_default();
    let (outcome, decided) = match action {
        HeadersAction::Forward(f) => (Outcome::Forwarded(f), Vec::new()),
        HeadersAction::Reply(r) => (Outcome::Replied(r), Vec::new()),
        HeadersAction::Inspect => match plugin.check_body_size(body.len()) {
            Some(r) => (Outcome::Replied(r), Vec::new()),
            None => {
                let (a, d) = plugin.on_request_body_with(&http, &body, Some((store, now_ms)));
                match a {
                    BodyAction::Forward(f) => (Outcome::Forwarded(f), d),
                    BodyAction::Reply(r) => (Outcome::Replied(r), d),
                }
            }
        },
    };
    let evaluations = plugin.policy.take_recorded();
    let mut entries = Vec::new();
    if decided.is_empty() {
        // A transport request (decided at the headers), or a request
        // answered before the policy ran.
        if let Some(ev) = evaluations.into_iter().next() {
            entries.push(Entry {
                kind: "transport".into(),
                method: Some(http.method.clone()),
                name: Some(http.path.clone()),
                id: None,
                decided: None,
                evaluation: Some(ev),
                explanation: None,
                invalid: None,
            });
        }
        return Ok((outcome, entries));
    }
    let items: Vec<Result<jsonrpc::Message<'_>, jsonrpc::Invalid>> = match jsonrpc::parse(&body) {
        Ok(Body::Single(m)) => vec![Ok(m)],
        Ok(Body::Batch(items)) => items,
        Err(_) => Vec::new(),
    };
    let batch = items.len() > 1 || matches!(jsonrpc::parse(&body), Ok(Body::Batch(_)));
    // Match each evaluation to its message: by `input.mcp.batch.index` in a
    // batch (a message denied before the policy, e.g. a session hijack, has
    // none).
    let mut by_index: Vec<Option<Evaluation>> =
        (0..items.len().max(decided.len())).map(|_| None).collect();
    for ev in evaluations {
        let index = if batch {
            match &ev.input["mcp"]["batch"]["index"] {
                regorus::Value::Number(n) => n.as_u64().map(|i| i as usize),
                _ => None,
            }
        } else {
            Some(0)
        };
        if let Some(slot) = index.and_then(|i| by_index.get_mut(i)) {
            *slot = Some(ev);
        }
    }
    for (i, d) in decided.into_iter().enumerate() {
        let evaluation = by_index.get_mut(i).and_then(Option::take);
        let entry = match items.get(i) {
            Some(Ok(m)) => Entry {
                kind: m.kind.as_str().into(),
                method: m.method().map(str::to_string),
                name: m.routing_name().map(str::to_string),
                id: m.id_raw.map(|r| r.get().to_string()),
                decided: Some(d),
                evaluation,
                explanation: None,
                invalid: None,
            },
            Some(Err(inv)) => Entry {
                kind: "invalid".into(),
                method: None,
                name: None,
                id: inv.id_raw.clone(),
                invalid: Some(inv.reason.clone()),
                decided: Some(d),
                evaluation: None,
                explanation: None,
            },
            None => Entry {
                kind: "message".into(),
                method: Some(d.method.clone()),
                name: None,
                id: None,
                decided: Some(d),
                evaluation,
                explanation: None,
                invalid: None,
            },
        };
        entries.push(entry);
    }
    Ok((outcome, entries))
}

/// One line about a replayed message of a session, and whether it was
/// forwarded.
pub fn summary(i: usize, o: &Outcome, entries: &[Entry]) -> (String, bool) {
    let what: Vec<String> = entries
        .iter()
        .map(|e| {
            let mut t = e.method.clone().unwrap_or_else(|| e.kind.clone());
            if let Some(n) = &e.name {
                t.push_str(&format!(" {n:?}"));
            }
            t
        })
        .collect();
    let what = if what.is_empty() {
        "(refused before the policy)".to_string()
    } else {
        what.join(", ")
    };
    (format!("[{i}] {what}"), o.forwarded())
}
