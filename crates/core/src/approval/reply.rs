//! The question (an `InputRequiredResult` with a form elicitation and the
//! signed state) and the retry's body with the filter's own round trip
//! taken out.

use super::keys::ApprovalSettings;
use super::verify::Call;
use super::{state, APPROVE_FIELD, MIN_VERSION, NEEDS_CONFIRMATION, RESPONSE_KEY};
use crate::mcp::jsonrpc::Message;
use crate::mcp::keys::key;
use crate::pipeline::actions::{LocalReply, Outcome};
use regorus::Value;
use serde_json::json;

/// The longest rendering of the arguments shown to the person.
const MAX_SHOWN: usize = 4000;
/// The `_meta` key of the client's capabilities (2026-07-28).
const CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";

/// What asking needs besides the message and its outcome.
pub(crate) struct Ask<'a> {
    pub settings: Option<&'a ApprovalSettings>,
    pub call: Option<&'a Call>,
    /// The protocol version the message speaks, and whether it is
    /// 2026-07-28 or later.
    pub version: Option<&'a str>,
    pub modern: bool,
    pub now_ms: u64,
    /// The approval id of this question.
    pub nonce: String,
}

/// The question, or why it cannot be asked (the message is then denied
/// with that reason).
pub(crate) fn question(
    ask: &Ask<'_>,
    m: &Message<'_>,
    o: &Outcome,
    body: &[u8],
) -> Result<LocalReply, String> {
    let why = o.result.confirm.join("; ");
    let needs = format!("{NEEDS_CONFIRMATION} ({why})");
    let (Some(call), Some(id)) = (ask.call, m.id_raw) else {
        return Err(format!(
            "{needs}, which the filter asks only for tools/call, not {}",
            m.method().unwrap_or(m.kind.as_str())
        ));
    };
    if !ask.modern {
        return Err(format!(
            "{needs}, which needs MCP {MIN_VERSION} or later (input_required results); this client speaks {}",
            ask.version.unwrap_or("an earlier version")
        ));
    }
    let caps = &m.params[&key("_meta")][&Value::from(CAPABILITIES_META)];
    if caps[&Value::from("elicitation")] == Value::Undefined {
        return Err(format!(
            "{needs}, but the client did not declare the elicitation capability"
        ));
    }
    let Some(settings) = ask.settings else {
        return Err(format!(
            "{needs}, but no approval keys are configured (`approval.keys`)"
        ));
    };
    let kid = settings.signing().map(|k| k.id.as_str()).unwrap_or("");
    let now_s = ask.now_ms / 1000;
    let claims = call.claims(
        kid,
        now_s,
        settings.ttl_seconds,
        ask.nonce.clone(),
        upstream_round_trip(m),
    );
    let Some(state) =
        state::encode(settings, &claims).filter(|s| s.len() <= state::MAX_STATE_BYTES)
    else {
        return Err(format!(
            "{needs}, but the approval state could not be signed within {} bytes (the server's own round trip is too large to carry)",
            state::MAX_STATE_BYTES
        ));
    };
    let result = json!({
        "resultType": "input_required",
        "inputRequests": {
            RESPONSE_KEY: {
                "method": "elicitation/create",
                "params": {
                    "mode": "form",
                    "message": shown(call, o, m, body),
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            APPROVE_FIELD: {
                                "type": "boolean",
                                "title": "Approve this call",
                                "description": format!("Run {} with the arguments shown", call.tool),
                                "default": false
                            }
                        },
                        "required": [APPROVE_FIELD]
                    }
                }
            }
        },
        "requestState": state,
    });
    let mut headers = crate::pipeline::replies::json_headers();
    headers.extend(o.result.response_headers.iter().cloned());
    Ok(LocalReply {
        status: 200,
        headers,
        body: format!(r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#, id.get()).into_bytes(),
        log: format!(
            "asked for confirmation of tools/call {:?}: {why}",
            call.tool
        ),
    })
}

/// The text the person reads: the policy's messages, the tool and the
/// arguments as the server would get them (after the policy's `rewrite`,
/// so what it redacts stays redacted).
fn shown(call: &Call, o: &Outcome, m: &Message<'_>, body: &[u8]) -> String {
    let args = if o.result.rewrite.is_empty() {
        serde_json::to_string(&m.params[&key("arguments")]).ok()
    } else {
        crate::mcp::rewrite::arguments(body, &o.result.rewrite)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("params")?.get("arguments").map(|a| a.to_string()))
    };
    let mut args = args.unwrap_or_else(|| "(none)".into());
    if args.len() > MAX_SHOWN {
        let mut end = MAX_SHOWN;
        while !args.is_char_boundary(end) {
            end -= 1;
        }
        args.truncate(end);
        args.push_str(" …");
    }
    format!(
        "Confirm this call.\n{}\nTool: {}\nArguments: {args}",
        o.result.confirm.join("\n"),
        call.tool
    )
}

/// The upstream server's own round trip on a call the filter asks about:
/// its `requestState` and the `inputResponses` other than the filter's,
/// kept in the signed state and restored on the approved call.
fn upstream_round_trip(m: &Message<'_>) -> Option<serde_json::Value> {
    let mut o = serde_json::Map::new();
    let state = &m.params[&key("requestState")];
    if let Ok(s) = state.as_string() {
        if !s.starts_with(state::STATE_PREFIX) {
            o.insert("requestState".into(), serde_json::Value::from(s.as_ref()));
        }
    }
    if let Ok(r) = m.params[&key("inputResponses")].as_object() {
        let kept: serde_json::Map<String, serde_json::Value> = r
            .iter()
            .filter_map(|(k, v)| {
                let k = k.as_string().ok()?;
                if k.as_ref() == RESPONSE_KEY {
                    return None;
                }
                Some((k.to_string(), serde_json::to_value(v).ok()?))
            })
            .collect();
        if !kept.is_empty() {
            o.insert("inputResponses".into(), serde_json::Value::Object(kept));
        }
    }
    (!o.is_empty()).then_some(serde_json::Value::Object(o))
}

/// The approved call's body as the server gets it: the filter's round trip
/// (`requestState`, `inputResponses`) replaced by the upstream's own round
/// trip the question interrupted (`upstream`, signed with the question),
/// or removed when there was none. Anything else the client put in those
/// members was not part of the question and is dropped.
pub fn strip(body: &[u8], upstream: Option<&serde_json::Value>) -> Result<Vec<u8>, String> {
    let mut v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("the approved call's body could not be read: {e}"))?;
    let Some(params) = v.get_mut("params").and_then(|p| p.as_object_mut()) else {
        return Err("the approved call has no params object".into());
    };
    params.remove("requestState");
    params.remove("inputResponses");
    if let Some(u) = upstream.and_then(|u| u.as_object()) {
        for name in ["requestState", "inputResponses"] {
            if let Some(x) = u.get(name) {
                params.insert(name.into(), x.clone());
            }
        }
    }
    serde_json::to_vec(&v).map_err(|e| format!("the approved call could not be rewritten: {e}"))
}
