//! The policy engine: Rego modules compiled once per configuration with
//! `regorus`, evaluated once per MCP message.
//!
//! The policy's package is `mcp`. Two rules are read:
//! - `allow`: anything but `true` denies;
//! - `deny`: an optional set of strings; any member denies, and the members are
//!   the reasons.
//!
//! Both are read through one small entry module compiled alongside the
//! policy, so one evaluation yields the whole decision. Evaluation runs on
//! regorus' RVM bytecode VM; a policy that uses a construct the RVM compiler
//! does not support yet (for example `with`) is evaluated by the tree-walking
//! interpreter instead, and [`Policy::engine_kind`] says which one is in use.

mod compile;
mod decision;
mod errors;
mod evaluate;
mod read;
mod revision;

pub use compile::{json_to_value, MAX_BRACKET_NESTING, POLICY_PACKAGE};
pub use decision::{
    Denial, KillOrder, PolicyResult, RateLimitOrder, Redact, MAX_RATE_LIMIT_COST,
    RATE_LIMIT_HEADER_PREFIX,
};
pub use errors::{error_kind_of_reason, ErrorKind, PolicyError};
pub use evaluate::BuiltinErrors;
pub use read::OutputError;

use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Value};
use std::fmt;

/// Default bound on RVM instructions per evaluation (configurable).
pub const DEFAULT_MAX_INSTRUCTIONS: usize = 1_000_000;

/// Which evaluator runs the compiled policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// regorus' register-based bytecode VM (the fast path).
    Rvm,
    /// regorus' tree-walking interpreter (fallback for constructs the RVM
    /// compiler does not handle).
    Interpreter,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Rvm => "rvm",
            EngineKind::Interpreter => "interpreter",
        }
    }
}

/// One evaluation, kept while recording is on (see [`Policy::set_recording`]).
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The `input` document exactly as the policy saw it.
    pub input: Value,
    /// What [`Policy::evaluate`] returned for it.
    pub result: Result<PolicyResult, PolicyError>,
}

/// A compiled policy, ready to evaluate messages.
pub struct Policy {
    /// The interpreter, used when the RVM compiler cannot take the policy.
    engine: Engine,
    vm: Option<RegoVM>,
    /// Why the RVM compiler refused the policy (interpreter fallback).
    rvm_fallback_reason: Option<String>,
    revision: String,
    module_names: Vec<String>,
    /// Evaluations kept for the command-line tool; `None` (off) in the filter.
    recorded: Option<Vec<Evaluation>>,
    /// Rule definitions that do not decide lists (policy/listing/).
    listing: Vec<crate::policy::listing::CallDependent>,
    /// Why the sources rewritten for listing were not used.
    listing_fallback: Option<String>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("engine", &self.engine_kind())
            .field("revision", &self.revision)
            .field("modules", &self.module_names)
            .finish()
    }
}

impl Policy {
    /// Compile `modules` (name, Rego source) with `data` (a JSON object, or
    /// `None`). Fails with the first problem found; nothing is half-loaded.
    ///
    /// The sources are first rewritten so that rules depending on the call
    /// do not decide lists (policy/listing/); should the rewritten sources
    /// not compile, the originals are used and
    /// [`Policy::listing_fallback`] says why.
    pub fn compile(
        modules: &[(String, String)],
        data: Option<&serde_json::Value>,
        max_instructions: usize,
    ) -> Result<Policy, PolicyError> {
        let c = compile::compile(modules, data, max_instructions)?;
        Ok(Policy {
            engine: c.engine,
            vm: c.vm,
            rvm_fallback_reason: c.rvm_fallback_reason,
            revision: c.revision,
            module_names: c.module_names,
            recorded: None,
            listing: c.listing,
            listing_fallback: c.listing_fallback,
        })
    }

    /// The rule definitions found to depend on the call, which therefore do
    /// not decide list items (docs/input.md, "Listing").
    pub fn call_dependent_rules(&self) -> &[crate::policy::listing::CallDependent] {
        &self.listing
    }

    /// Why the sources rewritten for listing did not compile (a bug): the
    /// original sources are then in use, and lists are decided by every
    /// rule as written.
    pub fn listing_fallback(&self) -> Option<&str> {
        self.listing_fallback.as_deref()
    }

    /// When the policy runs on the interpreter: what the RVM compiler
    /// refused, as it said it (for `mcp-policy check`).
    pub fn rvm_fallback_reason(&self) -> Option<&str> {
        self.rvm_fallback_reason.as_deref()
    }

    /// Keep every evaluation (input and result) until
    /// [`Policy::take_recorded`]. Off by default; the filter never turns it
    /// on. The command-line tool uses it to show what the request path
    /// evaluated, without a second copy of that path.
    pub fn set_recording(&mut self, on: bool) {
        self.recorded = on.then(Vec::new);
    }

    /// Whether evaluations are being recorded (every one must then run).
    pub fn recording(&self) -> bool {
        self.recorded.is_some()
    }

    /// The evaluations kept since recording was turned on or last taken.
    pub fn take_recorded(&mut self) -> Vec<Evaluation> {
        match &mut self.recorded {
            Some(r) => std::mem::take(r),
            None => Vec::new(),
        }
    }

    /// Bound each evaluation on the interpreter by wall-clock time (the
    /// interpreter has no instruction counter; the RVM's budget is
    /// `max_instructions`). Running out is an evaluation error, so the
    /// message is denied. Not in the browser build (wasm32-unknown-unknown
    /// has no clock regorus can read: `Instant::now` traps there), where
    /// the author's own page runs the policy.
    pub fn set_interpreter_time_limit(&mut self, limit: std::time::Duration) {
        if cfg!(all(target_arch = "wasm32", target_os = "unknown")) {
            return;
        }
        if self.vm.is_none() {
            self.engine
                .set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                    limit,
                    check_interval: std::num::NonZeroU32::MIN.saturating_add(63),
                });
        }
    }

    /// Evaluate on the tree-walking interpreter even though the RVM took
    /// the policy (benchmarks compare the two; the filter never calls it).
    #[doc(hidden)]
    pub fn use_interpreter(&mut self) {
        self.vm = None;
    }

    /// Which evaluator this policy runs on.
    pub fn engine_kind(&self) -> EngineKind {
        if self.vm.is_some() {
            EngineKind::Rvm
        } else {
            EngineKind::Interpreter
        }
    }

    /// `sha256:` of the modules (sorted by name) and the data: the policy
    /// revision (logged when the configuration loads).
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Name this policy's revision (a bundle's `.manifest` revision).
    pub fn set_revision(&mut self, revision: String) {
        self.revision = revision;
    }

    pub fn module_names(&self) -> &[String] {
        &self.module_names
    }

    /// Evaluate the policy for one input. A runtime error (a builtin
    /// failing, conflicting rule values, the instruction budget) is an `Err`,
    /// which the caller turns into a denial.
    pub fn evaluate(&mut self, input: Value) -> Result<PolicyResult, PolicyError> {
        let kept = self.recorded.as_ref().map(|_| input.clone());
        let result = self.run(input);
        if let (Some(log), Some(input)) = (self.recorded.as_mut(), kept) {
            log.push(Evaluation {
                input,
                result: result.clone(),
            });
        }
        result
    }

    fn run(&mut self, input: Value) -> Result<PolicyResult, PolicyError> {
        evaluate::run(&mut self.engine, self.vm.as_mut(), input)
    }

    /// How builtin errors are read: [`BuiltinErrors::Deny`] unless set.
    pub fn set_builtin_errors(&mut self, mode: BuiltinErrors) {
        let strict = mode == BuiltinErrors::Deny;
        if let Some(vm) = &mut self.vm {
            vm.set_strict_builtin_errors(strict);
        }
        self.engine.set_strict_builtin_errors(strict);
    }
}

#[cfg(test)]
mod tests;
