//! The changes an allowed message asks for: its arguments rewritten, headers
//! set on the request and the response, a rate-limit descriptor.

use crate::mcp::jsonrpc::Message;
use crate::pipeline::actions::Forward;
use crate::pipeline::plugin::Plugin;
use crate::pipeline::subject;
use crate::policy::engine::PolicyResult;

/// Why the changes a policy asks for cannot be carried out (the message
/// is then denied with this as its reason: fail closed).
#[derive(Debug)]
pub enum ChangeRefused {
    /// The request's headers are not held, so they cannot be changed.
    HeadersNotHeld,
    /// `rewrite` on a method without arguments to rewrite.
    NoArguments(String),
    /// The arguments could not be rewritten (`mcp::rewrite`'s reason).
    Rewrite(crate::mcp::rewrite::RewriteError),
}

impl std::fmt::Display for ChangeRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeRefused::HeadersNotHeld => f.write_str(
                "the policy changes the request (rewrite/request_headers/rate_limit), which needs hold_headers: true",
            ),
            ChangeRefused::NoArguments(method) => write!(
                f,
                "`rewrite` applies to tools/call and prompts/get arguments, not {method}"
            ),
            ChangeRefused::Rewrite(reason) => reason.fmt(f),
        }
    }
}

impl std::error::Error for ChangeRefused {}

impl Plugin {
    /// The changes an allowed message asks for, into `fwd`; `Err` when
    /// they cannot be carried out, which denies the message.
    pub(super) fn mutations(
        &self,
        m: &Message<'_>,
        body: &[u8],
        r: &PolicyResult,
        fwd: &mut Forward,
    ) -> Result<(), ChangeRefused> {
        if !self.settings.hold_headers
            && (!r.rewrite.is_empty() || !r.request_headers.is_empty() || r.rate_limit.is_some())
        {
            return Err(ChangeRefused::HeadersNotHeld);
        }
        if !r.rewrite.is_empty() {
            if !subject::takes_arguments(m.method()) {
                return Err(ChangeRefused::NoArguments(
                    m.method().unwrap_or(m.kind.as_str()).to_string(),
                ));
            }
            fwd.body = Some(
                crate::mcp::rewrite::arguments(body, &r.rewrite).map_err(ChangeRefused::Rewrite)?,
            );
        }
        fwd.request_headers = r.request_headers.clone();
        if let Some(rl) = &r.rate_limit {
            fwd.request_headers.extend(rl.headers());
        }
        fwd.response_headers = r.response_headers.clone();
        Ok(())
    }
}
