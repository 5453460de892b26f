//! Session state around a decision: which records a request touches
//! ([`StateKeys`]), one load of them before the evaluation ([`Loaded`]:
//! the binding check, `input.session` and `input.rate`, kills in force) and
//! one record after (the call, the binding, a kill order); the binding of
//! a new session, and the requests a resumed stream still owes.

use super::exchange::Exchange;
use crate::mcp::jsonrpc::Message;
use crate::mcp::routing::Routing;
use crate::pipeline::actions::{Decided, LocalReply, Outcome};
use crate::pipeline::error::StateError;
use crate::pipeline::plugin::Plugin;
use crate::pipeline::replies;
use crate::pipeline::subject;
use crate::policy::engine::KillOrder;
use crate::policy::input::{self, HttpRequest};
use crate::state::store::{Call, Kill, Record, States, Update};
use regorus::Value;
use std::collections::BTreeMap;

/// Which records a message touches: its session (`s:<Mcp-Session-Id>`, or
/// for session-less traffic such as 2026-07-28, the principal's) and its
/// principal's (`p:<principal>`, for per-identity rates and kills).
pub struct StateKeys {
    session_id: Option<String>,
    session: Option<String>,
    principal: Option<String>,
    principal_raw: Option<String>,
}

impl StateKeys {
    pub(super) fn new(http: &HttpRequest, routing: &Routing) -> StateKeys {
        let principal_raw = http.attributes.principal();
        let principal = principal_raw.as_ref().map(|p| format!("p:{p}"));
        let session_id = routing.session_id.clone();
        let session = session_id
            .as_ref()
            .map(|s| format!("s:{s}"))
            .or_else(|| principal.clone());
        StateKeys {
            session_id,
            session,
            principal,
            principal_raw,
        }
    }

    /// Session binding applies: a session id is presented (a session bound
    /// to a principal refuses anyone else, including no one).
    pub(super) fn bindable(&self) -> bool {
        self.session_id.is_some()
    }

    fn principal_shown(&self) -> String {
        self.principal_raw
            .clone()
            .unwrap_or_else(|| "an unauthenticated caller".into())
    }

    /// `input.session.id`: the Mcp-Session-Id, else the principal.
    fn session_display(&self) -> Option<String> {
        self.session_id
            .clone()
            .or_else(|| self.principal_raw.clone())
    }
}

/// The reason a session bound to another principal refuses this caller.
fn bound_elsewhere(id: &str, keys: &StateKeys) -> String {
    format!(
        "session {id} belongs to another principal (Mcp-Session-Id presented by {})",
        keys.principal_shown()
    )
}

/// The records of a message's session and principal, read once before
/// the evaluation.
pub(super) struct Loaded {
    session: Option<Record>,
    /// The principal's own record, when it is not the session's.
    principal: Option<Record>,
}

impl Loaded {
    pub(super) fn load(st: &States<'_>, keys: &StateKeys) -> Loaded {
        let session = keys.session.as_ref().and_then(|k| st.get(k));
        let principal = match (&keys.principal, &keys.session) {
            (Some(p), Some(s)) if p == s => None,
            (Some(p), _) => st.get(p),
            _ => None,
        };
        Loaded { session, principal }
    }

    /// A session is bound to the principal that first used it: anyone
    /// else presenting its id is refused (session hijacking). The refusal
    /// is the filter's own, decided before any policy.
    pub(super) fn binding_refusal(&self, keys: &StateKeys) -> Option<Outcome> {
        let (id, rec) = (keys.session_id.as_ref()?, self.session.as_ref()?);
        let bound = rec.principal.as_ref()?;
        if keys.principal_raw.as_deref() == Some(bound.as_str()) {
            return None;
        }
        Some(Outcome {
            allowed: false,
            reasons: vec![bound_elsewhere(id, keys)],
            result: Default::default(),
            eval_us: 0,
            core: true,
        })
    }

    /// `input.session` and `input.rate`, for a policy that reads state.
    pub(super) fn input(
        &self,
        st: &States<'_>,
        keys: &StateKeys,
        m: &Message<'_>,
    ) -> Vec<(&'static str, Value)> {
        let now = st.now;
        let empty = Record::fresh(now);
        let srec = self.session.as_ref().unwrap_or(&empty);
        let prec = if keys.principal == keys.session {
            srec
        } else {
            self.principal.as_ref().unwrap_or(&empty)
        };
        let window = st.settings.rate_window_seconds * 1000;
        let tool = m
            .routing_name()
            .filter(|_| subject::is_tool_call(m.method()));
        let mut values = Vec::with_capacity(2);
        if let Some(id) = keys.session_display() {
            values.push(("session", srec.session_value(&id, now)));
        }
        let mut rate = BTreeMap::new();
        if keys.session.is_some() {
            rate.insert(Value::from("session"), srec.rate_value(tool, now, window));
        }
        if keys.principal.is_some() {
            rate.insert(Value::from("identity"), prec.rate_value(tool, now, window));
        }
        values.push(("rate", Value::from(rate)));
        values
    }

    /// A kill in force denies (unless the policy clears it); a kill the
    /// policy orders denies this message too.
    pub(super) fn enforce_kills(&self, now: u64, o: &mut Outcome) {
        let killed: Option<Kill> = self
            .session
            .as_ref()
            .and_then(|r| r.kill(now).cloned())
            .or_else(|| self.principal.as_ref().and_then(|r| r.kill(now).cloned()));
        if let Some(k) = &killed {
            if !o.result.clear_kill {
                o.allowed = false;
                o.reasons = vec![format!("session killed: {}", k.reason)];
            }
        }
        if let Some(order) = &o.result.kill {
            o.allowed = false;
            let already = killed.is_some() && !o.result.clear_kill;
            if !already && !o.reasons.contains(&order.reason) {
                o.reasons.push(order.reason.clone());
            }
        }
    }
}

/// Record the decided call (and any kill or binding) under
/// compare-and-swap: the session's record, then the principal's. A store
/// that cannot be written denies (the filter's own refusal).
pub(super) fn record(st: &States<'_>, keys: &StateKeys, m: &Message<'_>, o: &mut Outcome) {
    let call = Call {
        t: st.now,
        method: m.method().unwrap_or(m.kind.as_str()).to_string(),
        name: m.routing_name().map(str::to_string),
        labels: o.result.labels.clone(),
        allowed: o.allowed,
    };
    let ttl_ms = |order: &KillOrder| {
        order
            .ttl_seconds
            .unwrap_or(st.settings.kill_ttl_seconds)
            .saturating_mul(1000)
    };
    let kill_for = |principal: bool| {
        o.result
            .kill
            .as_ref()
            .filter(|k| k.principal == principal)
            .map(|k| (k.reason.clone(), ttl_ms(k)))
    };
    let mut result = Ok(());
    if let Some(key) = &keys.session {
        let is_principal_key = keys.session == keys.principal;
        result = st.update(
            key,
            &Update {
                call: Some(call.clone()),
                bind: keys
                    .principal_raw
                    .as_deref()
                    .filter(|_| keys.session_id.is_some()),
                kill: if is_principal_key {
                    o.result
                        .kill
                        .as_ref()
                        .map(|k| (k.reason.clone(), ttl_ms(k)))
                } else {
                    kill_for(false)
                },
                clear_kill: o.result.clear_kill,
            },
        );
    }
    if let (Some(pkey), true) = (&keys.principal, keys.principal != keys.session) {
        if result.is_ok() {
            result = st.update(
                pkey,
                &Update {
                    call: Some(call),
                    bind: None,
                    kill: kill_for(true),
                    clear_kill: o.result.clear_kill,
                },
            );
        }
    }
    if let Err(e) = result {
        o.allowed = false;
        o.reasons = vec![format!("session state unavailable: {e}")];
        o.core = true;
    }
}

impl Plugin {
    /// A transport request (no body) on a session bound to someone else.
    pub(super) fn check_transport_binding(
        &self,
        ex: &Exchange<'_>,
        routing: &Routing,
    ) -> Option<(LocalReply, Decided)> {
        let (store, clock) = ex.store?;
        let keys = StateKeys::new(ex.http, routing);
        let (id, key) = (keys.session_id.as_ref()?, keys.session.as_ref()?);
        let settings = &self.settings.sessions;
        let now = clock.now_ms();
        let rec = States {
            store,
            settings,
            now,
        }
        .get(key)?;
        let bound = rec.principal.as_ref()?;
        if keys.principal_raw.as_deref() == Some(bound.as_str()) {
            return None;
        }
        let reasons = vec![bound_elsewhere(id, &keys)];
        let reply = replies::transport_refusal(ex.http, &reasons, self.settings.deny_code);
        let mut d = Decided::new("transport", ex.http.method.clone(), false, reasons);
        d.core = true;
        Some((reply, d))
    }

    /// Bind a session id the server just minted (in its answer to an
    /// `initialize`) to the principal that asked.
    pub fn bind_session(
        &self,
        store: &dyn crate::state::store::Store,
        now: u64,
        session_id: &str,
        principal: &str,
    ) -> Result<(), StateError> {
        let settings = &self.settings.sessions;
        States {
            store,
            settings,
            now,
        }
        .update(
            &format!("s:{session_id}"),
            &Update {
                call: None,
                bind: Some(principal),
                kill: None,
                clear_kill: false,
            },
        )
        .map_err(StateError)
    }

    /// A GET that resumes an interrupted stream of a session
    /// (`Last-Event-ID`): the requests that stream left unanswered
    /// ([`crate::state::resume`]).
    pub(super) fn resumed_origins(
        &self,
        ex: &Exchange<'_>,
        routing: &Routing,
    ) -> Vec<input::Origin> {
        let (Some((store, clock)), Some(_), Some(session)) = (
            ex.store,
            ex.http.header("last-event-id"),
            routing.session_id.as_deref(),
        ) else {
            return Vec::new();
        };
        crate::state::resume::recall(store, clock.now_ms(), &ex.upstream, session)
    }
}
