//! One message: its decision (the tool's definition, the session state
//! loaded once, the evaluation, the state recorded once), its audit
//! record, and what is done with a single message's body.

use super::approval::{approval_record, strip_approval};
use super::exchange::Exchange;
use super::session::{self, Loaded, StateKeys};
use super::watch::is_modern;
use crate::mcp::jsonrpc::Message;
use crate::mcp::keys::key;
use crate::mcp::routing::Routing;
use crate::observe::audit;
use crate::pipeline::actions::{BodyAction, Decided, Forward, Outcome, ToolsWatch};
use crate::pipeline::plugin::Plugin;
use crate::pipeline::replies;
use crate::pipeline::subject::{self, Subject};
use crate::policy::input::{self, BatchPosition};
use crate::state::store::{SessionSettings, States, Store};
use regorus::Value;

/// What every message of one body is decided with.
pub(super) struct Context<'a> {
    /// The request's parts of `input` (`input.http`, identity…), built once.
    pub(super) http: Vec<(&'static str, Value)>,
    /// The routing headers, read once and checked against the body.
    pub(super) routing: Routing,
    /// Session state, when the policy reads it or a session id is
    /// presented (binding).
    pub(super) state: Option<StateContext<'a>>,
    /// The store of tool definitions, when the policy reads them.
    pub(super) defs: Option<&'a dyn Store>,
    /// The filter's approval state on a single message, checked
    /// (approval/; `input.approval` is in `http` when approved).
    pub(super) approval: crate::approval::Check,
}

/// The shared store, the time and the keys of one body's session state.
pub(super) struct StateContext<'a> {
    pub(super) store: &'a dyn Store,
    pub(super) now: u64,
    pub(super) settings: SessionSettings,
    pub(super) keys: StateKeys,
}

impl StateContext<'_> {
    fn states(&self) -> States<'_> {
        States {
            store: self.store,
            settings: &self.settings,
            now: self.now,
        }
    }
}

impl Plugin {
    /// Decide one message: the session state is loaded once before the
    /// evaluation (a session bound to someone else is refused without
    /// one) and recorded once after it.
    pub(super) fn decide(
        &mut self,
        ex: &Exchange<'_>,
        ctx: &Context<'_>,
        m: &Message<'_>,
        batch: Option<BatchPosition>,
    ) -> Outcome {
        let definition = match (
            ctx.defs,
            subject::is_tool_call(m.method()),
            m.routing_name(),
        ) {
            (Some(store), true, Some(name)) => {
                crate::catalog::tools::definition(store, &ex.upstream, name)
            }
            _ => None,
        };
        if let crate::approval::Check::Refused(_, reason, _) = &ctx.approval {
            return crate::approval::refusal(reason.clone());
        }
        let Some(sc) = &ctx.state else {
            let mut o = self.evaluate(input::for_message_with(
                &ctx.http,
                &ctx.routing,
                m,
                batch,
                definition,
            ));
            crate::approval::gate(&mut o, &ctx.approval);
            return o;
        };
        let st = sc.states();
        let loaded = Loaded::load(&st, &sc.keys);
        if let Some(refused) = loaded.binding_refusal(&sc.keys) {
            return refused;
        }
        let mut shared = ctx.http.clone();
        if self.needs.state {
            shared.extend(loaded.input(&st, &sc.keys, m));
        }
        let mut o = self.evaluate(input::for_message_with(
            &shared,
            &ctx.routing,
            m,
            batch,
            definition,
        ));
        crate::approval::gate(&mut o, &ctx.approval);
        loaded.enforce_kills(st.now, &mut o);
        session::record(&st, &sc.keys, m, &mut o);
        o
    }

    /// A body of one message: decided, then forwarded (with the changes
    /// the policy asks for and what to watch in the answer) or answered.
    pub(super) fn decide_single(
        &mut self,
        ex: &Exchange<'_>,
        ctx: &Context<'_>,
        m: &Message<'_>,
        body: &[u8],
    ) -> (BodyAction, Vec<Decided>) {
        let mut o = self.decide(ex, ctx, m, None);
        let mut fwd = Forward::default();
        if o.allowed {
            if let Err(reason) = self.mutations(m, body, &o.result, &mut fwd) {
                o.allowed = false;
                o.reasons = vec![reason.to_string()];
            }
        }
        if o.allowed && subject::is_initialize(m.method()) && ctx.routing.session_id.is_none() {
            fwd.bind_on_response = ex.http.attributes.principal();
        }
        if o.allowed && subject::is_tools_list(m.method()) {
            if let (Some(_), Some(id)) = (ctx.defs, m.id_raw) {
                fwd.watch = Some(ToolsWatch {
                    id_raw: id.get().to_string(),
                    upstream: ex.upstream.clone(),
                    replace: m.params[&key("cursor")] == Value::Undefined,
                });
            }
        }
        if o.allowed {
            self.watch_response(ex, &ctx.routing, &[m], Vec::new(), &mut fwd);
        }
        let mut approval = None;
        if crate::approval::wants_question(&o) {
            match self.ask_approval(ex, ctx, m, &o, body) {
                Ok(q) => approval = Some(q),
                Err(reason) => o.reasons = vec![reason],
            }
        } else if o.allowed && ctx.approval.ours() {
            if let Err(reason) =
                strip_approval(body, &ctx.approval, &mut fwd, self.settings.hold_headers)
            {
                o.allowed = false;
                o.reasons = vec![reason];
            }
        }
        let mut d = decided_for(m, &o, self.settings.audit.arguments_digest);
        approval_record(&mut d, &o, &ctx.approval, approval.as_ref());
        if let Some((reply, _)) = approval {
            return (BodyAction::Reply(reply), vec![d]);
        }
        let action = if o.allowed {
            BodyAction::Forward(fwd)
        } else {
            let modern = is_modern(m, &ctx.routing);
            BodyAction::Reply(replies::denial_reply(
                m,
                &o,
                modern,
                self.settings.deny_code,
            ))
        };
        (action, vec![d])
    }
}

/// The decision on one message and its audit record (`digest`: with the
/// arguments' digest, configuration `audit.arguments_digest`).
pub(super) fn decided_for(m: &Message<'_>, o: &Outcome, digest: bool) -> Decided {
    let method = m.method().unwrap_or(m.kind.as_str()).to_string();
    let mut d = Decided::new(m.kind.as_str(), method, o.allowed, o.reasons.clone()).with_outcome(o);
    d.core = o.core;
    let r = &mut d.record;
    let name = m.routing_name().map(str::to_string);
    match subject::request_subject(m.method()) {
        Some(Subject::Tool) => r.tool = name,
        Some(Subject::Prompt) => r.prompt = name,
        Some(Subject::Resource) => r.resource = name,
        None => {}
    }
    if subject::takes_arguments(m.method()) {
        let args = &m.params[&key("arguments")];
        let empty = Value::new_object();
        let a = if *args == Value::Undefined {
            &empty
        } else {
            args
        };
        if digest {
            r.arguments_digest = audit::digest(a);
        }
        r.arguments_revealed = audit::revealed(a, &o.result.reveal);
    }
    r.kill = o.result.kill.as_ref().map(|k| k.reason.clone());
    r.clear_kill = o.result.clear_kill;
    r.protocol_version = m.meta_protocol_version().map(str::to_string);
    d
}
