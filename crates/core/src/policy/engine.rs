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

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// The Rego package a policy must declare.
pub const POLICY_PACKAGE: &str = "mcp";
/// The rule the entry module exposes to the engine.
const ENTRY_POINT: &str = "data.mcp_policy_entry.decision";
const ENTRY_MODULE_NAME: &str = "<mcp-policy entry>";

/// The entry module: one rule gathering the whole decision.
fn entry_module(modules: &[(String, String)]) -> String {
    let mut m = String::from(
        "package mcp_policy_entry\n\ndefault allow := false\n\nallow if data.mcp.allow == true\n\n\
         default deny := []\n\ndeny := data.mcp.deny\n\n",
    );
    let mut fields = vec!["\"allow\": allow".to_string(), "\"deny\": deny".to_string()];
    for out in crate::policy::outputs::OPTIONAL_OUTPUTS {
        if modules.iter().any(|(_, src)| src.contains(out)) {
            m.push_str(&format!(
                "default {out} := null\n\n{out} := data.mcp.{out}\n\n"
            ));
            fields.push(format!("\"{out}\": {out}"));
        }
    }
    m.push_str(&format!("decision := {{{}}}\n", fields.join(", ")));
    m
}

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

/// What kind of problem a [`PolicyError`] is. Evaluation errors are
/// counted by kind (`mcp_policy_errors.kind.<kind>`, docs/metrics.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The policy does not compile or load (configure time).
    Compile,
    /// A builtin or an operator failed on its operands (`to_number("abc")`,
    /// `1 / 0`, `"a" + 1`, a regular expression that does not compile…).
    Builtin,
    /// A complete rule or function produced two different values.
    Conflict,
    /// The instruction budget or the time budget ran out.
    Limit,
    /// A decision rule has a value of the wrong shape (`deny` not a set of
    /// strings, a malformed `denial`…).
    Output,
    /// Anything else the engine reported.
    Engine,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Compile => "compile",
            ErrorKind::Builtin => "builtin",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Limit => "limit",
            ErrorKind::Output => "output",
            ErrorKind::Engine => "engine",
        }
    }
}

/// How a builtin that fails at run time is read (configuration key
/// `policy_errors`, docs/configuration.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuiltinErrors {
    /// The evaluation stops with an error, and the message is denied (OPA's
    /// `strict-builtin-errors`). The default: a policy error never lets a
    /// message through.
    #[default]
    Deny,
    /// The failing expression is undefined, as OPA reads it by default.
    /// Conflicts and budgets still deny.
    Undefined,
}

/// A problem found while compiling modules and data, or while evaluating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// `module:line:column` of the problem, when it is in a module.
    pub location: Option<String>,
    /// One line saying what is wrong.
    pub message: String,
    pub kind: ErrorKind,
}

impl PolicyError {
    fn new(message: impl Into<String>) -> Self {
        PolicyError {
            location: None,
            message: message.into(),
            kind: ErrorKind::Compile,
        }
    }

    fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// From a regorus error, whose text looks like `--> file:line:col`,
    /// the source excerpt, then `error: message`, possibly nested (a
    /// compilation error wrapping the specific one). The innermost location
    /// and every message are kept, on one line.
    pub fn from_regorus(err: &dyn fmt::Display, module: Option<&str>) -> Self {
        let text = err.to_string();
        let mut location = None;
        let mut messages: Vec<&str> = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(loc) = t.strip_prefix("--> ") {
                location = Some(loc.trim().to_string());
            } else if let Some(m) = t.strip_prefix("error: ") {
                let m = m.trim().trim_end_matches(':').trim();
                if !m.is_empty() {
                    messages.push(m);
                }
            }
        }
        let message = if messages.is_empty() {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            messages.join(": ")
        };
        PolicyError {
            location: location.or_else(|| module.map(str::to_string)),
            message,
            kind: ErrorKind::Compile,
        }
    }
}

impl fmt::Display for PolicyError {
    /// Configure-time problems read `file:line:col: message`; evaluation
    /// errors say their kind first (`builtin error at a.rego:4:12: to_number:
    /// could not parse string as number`), which the metrics read back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.location) {
            (ErrorKind::Compile, Some(l)) => write!(f, "{l}: {}", self.message),
            (ErrorKind::Compile, None) => write!(f, "{}", self.message),
            (k, Some(l)) => write!(f, "{} error at {l}: {}", k.as_str(), self.message),
            (k, None) => write!(f, "{} error: {}", k.as_str(), self.message),
        }
    }
}

/// The kind of a `policy evaluation failed: …` reason (see
/// [`PolicyError`]'s `Display`), for the `mcp_policy_errors` counter.
pub fn error_kind_of_reason(reason: &str) -> Option<&'static str> {
    let rest = reason.strip_prefix("policy evaluation failed: ")?;
    [
        ErrorKind::Builtin,
        ErrorKind::Conflict,
        ErrorKind::Limit,
        ErrorKind::Output,
        ErrorKind::Engine,
    ]
    .into_iter()
    .map(ErrorKind::as_str)
    .find(|k| {
        rest.strip_prefix(k)
            .is_some_and(|r| r.starts_with(" error"))
    })
    .or(Some("engine"))
}

impl std::error::Error for PolicyError {}

/// The policy's answer for one message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyResult {
    /// `allow` evaluated to exactly `true`.
    pub allow: bool,
    /// The members of `deny`, in the set's (sorted) order.
    pub deny: Vec<String>,
    /// `denial`: how to answer if the message is denied.
    pub denial: Denial,
    /// `rewrite`: argument name (or JSON pointer into the arguments,
    /// starting with `/`) → new value.
    pub rewrite: Vec<(String, Value)>,
    /// `request_headers`: set on the request forwarded upstream.
    pub request_headers: Vec<(String, String)>,
    /// `response_headers`: set on the response to the client.
    pub response_headers: Vec<(String, String)>,
    /// `labels`: recorded with the decision.
    pub labels: Vec<String>,
    /// `kill`: deny this and every further message of the session (or
    /// principal) until the kill expires or is cleared.
    pub kill: Option<KillOrder>,
    /// `clear_kill`: lift a kill on this session/principal (operators push
    /// this through policy data).
    pub clear_kill: bool,
    /// `reveal`: argument names shown as they are in the audit event.
    pub reveal: Vec<String>,
    /// `dry_run`: reasons that would deny, recorded but not enforced (to
    /// roll out one new rule under an enforced policy).
    pub dry_run: Vec<String>,
    /// `rate_limit`: a rate-limit descriptor for Envoy's rate-limit filters
    /// (docs/decision.md#rate-limit-descriptors).
    pub rate_limit: Option<RateLimitOrder>,
    /// `visible`: when deciding one item of a list (`input.mcp.listing`),
    /// an explicit answer to "is this item listed" (else: listed when the
    /// synthesized request is not denied).
    pub visible: Option<bool>,
    /// `redact`: which findings of a result to replace in the forwarded
    /// result (server-to-client responses).
    pub redact: Redact,
}

/// The `rate_limit` output: descriptor entries and a cost, handed to Envoy's
/// `local_ratelimit` / `ratelimit` filters as request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitOrder {
    /// Entry key → value, in key order. Keys are `[a-z0-9_]`, 1–32 bytes.
    pub entries: Vec<(String, String)>,
    /// Hits this message adds (Envoy's `hits_addend`); 1 unless given.
    pub cost: u64,
}

/// Request headers carrying a `rate_limit` descriptor: one
/// `x-mcp-ratelimit-<key>` per entry, and `x-mcp-ratelimit-cost`.
pub const RATE_LIMIT_HEADER_PREFIX: &str = "x-mcp-ratelimit-";

/// The largest `rate_limit.cost`.
pub const MAX_RATE_LIMIT_COST: u64 = 1_000_000;

impl RateLimitOrder {
    /// The request headers that carry this descriptor.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = self
            .entries
            .iter()
            .map(|(k, v)| (format!("{RATE_LIMIT_HEADER_PREFIX}{k}"), v.clone()))
            .collect();
        h.push((
            format!("{RATE_LIMIT_HEADER_PREFIX}cost"),
            self.cost.to_string(),
        ));
        h
    }
}

/// The `redact` output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Redact {
    /// Nothing is redacted.
    #[default]
    None,
    /// `redact := true`: every finding.
    All,
    /// A set of detector names and/or kinds.
    Only(Vec<String>),
}

impl Redact {
    /// Whether a finding of this kind from this detector is redacted.
    pub fn selects(&self, kind: &str, detector: &str) -> bool {
        match self {
            Redact::None => false,
            Redact::All => true,
            Redact::Only(names) => names.iter().any(|n| n == kind || n == detector),
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Redact::None
    }
}

/// The `kill` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillOrder {
    pub reason: String,
    /// Kill the principal (every session of it), not just the session.
    pub principal: bool,
    pub ttl_seconds: Option<u64>,
}

/// The `denial` output: the form of the answer to a denied message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Denial {
    /// Answer a denied `tools/call` with a tool result carrying
    /// `isError: true` (the model reads it and can adapt) instead of a
    /// JSON-RPC error.
    pub as_tool_result: bool,
    /// JSON-RPC error code (instead of `deny_code`).
    pub code: Option<i64>,
    /// The message (instead of `Denied by policy: <reasons>`).
    pub message: Option<String>,
    /// HTTP status of the answer (instead of 200).
    pub http_status: Option<u32>,
}

impl PolicyResult {
    /// The message may pass: allowed and nothing denies it.
    pub fn permits(&self) -> bool {
        self.allow && self.deny.is_empty()
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
    /// Rule definitions that do not decide lists (policy/listing.rs).
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
    /// do not decide lists (policy/listing.rs); should the rewritten sources
    /// not compile, the originals are used and
    /// [`Policy::listing_fallback`] says why.
    pub fn compile(
        modules: &[(String, String)],
        data: Option<&serde_json::Value>,
        max_instructions: usize,
    ) -> Result<Policy, PolicyError> {
        // Before any parsing: the parser is exponential in bracket nesting.
        for (name, source) in modules {
            check_nesting(name, source)?;
        }
        // `not` reads an undefined operand as OPA does (policy/negation.rs).
        let negated = crate::policy::negation::transform(modules);
        let modules_in = modules;
        let modules: &[(String, String)] = negated.as_deref().unwrap_or(modules);
        let listing = crate::policy::listing::transform(modules);
        let mut policy = match &listing {
            Some(t) => match Self::compile_sources(&t.modules, data, max_instructions) {
                Ok(p) => p,
                Err(e) => {
                    let mut p = Self::compile_sources(modules, data, max_instructions)?;
                    p.listing_fallback = Some(e.to_string());
                    p
                }
            },
            None => Self::compile_sources(modules, data, max_instructions)?,
        };
        if policy.listing_fallback.is_none() {
            policy.listing = listing.map(|t| t.rules).unwrap_or_default();
        }
        policy.revision = revision_of(modules_in, data);
        Ok(policy)
    }

    fn compile_sources(
        modules: &[(String, String)],
        data: Option<&serde_json::Value>,
        max_instructions: usize,
    ) -> Result<Policy, PolicyError> {
        if modules.is_empty() {
            return Err(PolicyError::new("no Rego modules given"));
        }
        let mut engine = Engine::new();
        // Rego v1 (OPA 1.x) syntax is the default for new engines; say so.
        engine.set_rego_v0(false);
        let mut declares_mcp = false;
        // Nesting was checked on the author's sources (`compile`): the
        // rewrites add a level of braces at most.
        for (name, source) in modules {
            let package = engine
                .add_policy(name.clone(), source.clone())
                .map_err(|e| PolicyError::from_regorus(&e, Some(name)))?;
            if package == format!("data.{POLICY_PACKAGE}") {
                declares_mcp = true;
            }
        }
        if !declares_mcp {
            return Err(PolicyError::new(format!(
                "no module declares `package {POLICY_PACKAGE}` (the package whose `allow` and `deny` rules decide)"
            )));
        }
        engine
            .add_policy(ENTRY_MODULE_NAME.into(), entry_module(modules))
            .map_err(|e| PolicyError::new(format!("internal entry module: {e}")))?;
        let data_value = match data {
            None => None,
            Some(d @ serde_json::Value::Object(_)) => Some(json_to_value(d)?),
            Some(_) => return Err(PolicyError::new("`data` must be a JSON object")),
        };
        if let Some(d) = &data_value {
            engine
                .add_data(d.clone())
                .map_err(|e| PolicyError::new(format!("data: {e}")))?;
        }
        let entry: regorus::Rc<str> = ENTRY_POINT.into();
        let compiled = engine
            .compile_with_entrypoint(&entry)
            .map_err(|e| PolicyError::from_regorus(&e, None))?;

        // The RVM compiler also resolves every function call, so unknown
        // functions are reported here, at configuration time. Constructs it
        // does not implement yet (`with`, partial objects with constant keys,
        // `print`…) fall back to the interpreter.
        let (vm, rvm_fallback_reason) =
            match Compiler::compile_from_policy(&compiled, &[ENTRY_POINT]) {
                Ok(program) => (Some(new_vm(program, data_value, max_instructions)?), None),
                Err(e) => {
                    if e.to_string().contains("Unknown function") {
                        return Err(PolicyError::from_regorus(&e, None));
                    }
                    (None, Some(PolicyError::from_regorus(&e, None).to_string()))
                }
            };

        // The interpreter counts evaluation steps against the same budget
        // as the RVM's instructions: bounded by work done, whatever the
        // clock says (max_eval_ms bounds its wall time as well).
        engine.set_work_budget(Some(max_instructions as u64));

        let revision = revision_of(modules, data);
        Ok(Policy {
            engine,
            vm,
            rvm_fallback_reason,
            revision,
            module_names: modules.iter().map(|(n, _)| n.clone()).collect(),
            recorded: None,
            listing: Vec::new(),
            listing_fallback: None,
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
    /// message is denied.
    pub fn set_interpreter_time_limit(&mut self, limit: std::time::Duration) {
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
        let out = match &mut self.vm {
            Some(vm) => {
                vm.set_input(input);
                vm.execute_entry_point_by_name(ENTRY_POINT)
                    .map_err(|e| vm_error(vm, &e))?
            }
            None => {
                self.engine.set_input(input);
                self.engine
                    .eval_rule(ENTRY_POINT.to_string())
                    .map_err(|e| interpreter_error(&e))?
            }
        };
        read_decision(&out).map_err(|e| PolicyError::new(e).with_kind(ErrorKind::Output))
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

/// An RVM error as a policy error: its kind, and the module, line and
/// column of the instruction that raised it (the program keeps a span per
/// instruction).
fn vm_error(vm: &RegoVM, e: &regorus::rvm::vm::VmError) -> PolicyError {
    use regorus::rvm::vm::VmError as E;
    let kind = match e {
        E::BuiltinFailed { .. }
        | E::ArithmeticError { .. }
        | E::InvalidAddition { .. }
        | E::InvalidSubtraction { .. }
        | E::InvalidMultiplication { .. }
        | E::InvalidDivision { .. }
        | E::InvalidModulo { .. }
        | E::ModuloOnFloat { .. }
        | E::NumericOverflow { .. }
        | E::RegexSizeLimitExceeded { .. } => ErrorKind::Builtin,
        E::RuleConflict { .. } => ErrorKind::Conflict,
        E::InstructionLimitExceeded { .. }
        | E::TimeLimitExceeded { .. }
        | E::MemoryLimitExceeded { .. }
        | E::MemoryBudgetExceeded { .. } => ErrorKind::Limit,
        _ => ErrorKind::Engine,
    };
    let text = e.to_string();
    // Every VmError ends with `(pc=N)`, the instruction that raised it.
    let pc = text
        .rsplit_once("pc=")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<usize>().ok());
    let program = vm.get_program();
    let location = pc
        .filter(|&pc| pc != 0)
        .and_then(|pc| program.get_instruction_span(pc))
        .and_then(|span| {
            let file = program.sources.get(span.source_index)?;
            (file.name != ENTRY_MODULE_NAME)
                .then(|| format!("{}:{}:{}", file.name, span.line, span.column))
        });
    // The text without the pc, and without the builtin's own placeholder
    // position (`<builtin>:1:1`).
    let mut message = match text.rsplit_once(" (pc=") {
        Some((m, _)) => m.to_string(),
        None => text.clone(),
    };
    if let E::BuiltinFailed {
        name, message: m, ..
    } = e
    {
        let inner = PolicyError::from_regorus(&m.as_str(), None).message;
        message = format!("{name}: {inner}");
    }
    PolicyError {
        location,
        message,
        kind,
    }
}

/// An interpreter error as a policy error (its text carries the location).
fn interpreter_error(e: &dyn fmt::Display) -> PolicyError {
    let mut p = PolicyError::from_regorus(e, None);
    let m = p.message.as_str();
    p.kind = if m.contains("conflict")
        || m.contains("multiple outputs")
        || m.contains("multiple times")
    {
        ErrorKind::Conflict
    } else if m.contains("time limit") || m.contains("limit exceeded") || m.contains("exceeded") {
        ErrorKind::Limit
    } else if p.location.is_some() {
        ErrorKind::Builtin
    } else {
        ErrorKind::Engine
    };
    p
}

fn new_vm(
    program: Arc<Program>,
    data: Option<Value>,
    max_instructions: usize,
) -> Result<RegoVM, PolicyError> {
    let mut vm = RegoVM::new();
    vm.load_program(program);
    if let Some(d) = data {
        vm.set_data(d)
            .map_err(|e| PolicyError::new(format!("data: {e}")))?;
    }
    vm.set_max_instructions(max_instructions);
    vm.set_strict_builtin_errors(true);
    Ok(vm)
}

/// The deepest nesting of `[` and `{` a module may have. regorus 0.14.1's
/// parser takes time exponential in this depth (it tries each bracket two
/// ways): 16 levels take about 0.3 s natively, 20 about 4 s, 30 hours.
/// Found by fuzzing the configuration; a configuration must not be able to
/// stall the proxy when it loads.
pub const MAX_BRACKET_NESTING: usize = 16;

/// Refuse a module whose brackets nest deeper than
/// [`MAX_BRACKET_NESTING`], outside strings and comments.
fn check_nesting(name: &str, source: &str) -> Result<(), PolicyError> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => {
                            if c == '\n' {
                                line += 1;
                            }
                            break;
                        }
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if c == '`' {
                        break;
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_BRACKET_NESTING {
                    return Err(PolicyError::new(format!(
                        "{name}:{line}: brackets nested deeper than {MAX_BRACKET_NESTING} levels (the Rego parser's time grows exponentially with nesting)"
                    )));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Convert a `serde_json::Value` into a regorus value. The text goes
/// through the same structural pre-scan as every body
/// ([`crate::mcp::jsonrpc::check_structure`]): numbers keep their literal
/// (`arbitrary_precision`), and regorus would build `0e20000000` in `data`
/// (configuration or bundle) as an exact 10^20000000.
pub fn json_to_value(v: &serde_json::Value) -> Result<Value, PolicyError> {
    let text = serde_json::to_string(v).map_err(|e| PolicyError::new(e.to_string()))?;
    crate::mcp::jsonrpc::check_structure(text.as_bytes())
        .map_err(|e| PolicyError::new(e.to_string()))?;
    Value::from_json_str(&text).map_err(|e| PolicyError::new(e.to_string()))
}

fn read_decision(out: &Value) -> Result<PolicyResult, String> {
    let mut r = read_allow_deny(out)?;
    r.denial = read_denial(&out["denial"])?;
    r.rewrite = match &out["rewrite"] {
        Value::Undefined | Value::Null => Vec::new(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| match k {
                Value::String(k) if !k.is_empty() => Ok((k.to_string(), v.clone())),
                _ => Err("`rewrite` keys must be non-empty strings".to_string()),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "`rewrite` must be an object, got {}",
                type_name(other)
            ))
        }
    };
    r.request_headers = read_headers(&out["request_headers"], "request_headers")?;
    r.response_headers = read_headers(&out["response_headers"], "response_headers")?;
    r.kill = read_kill(&out["kill"])?;
    r.rate_limit = read_rate_limit(&out["rate_limit"])?;
    r.clear_kill = matches!(&out["clear_kill"], Value::Bool(true));
    r.reveal = string_set(&out["reveal"], "reveal")?;
    r.dry_run = string_set(&out["dry_run"], "dry_run")?;
    r.visible = match &out["visible"] {
        Value::Undefined | Value::Null => None,
        Value::Bool(b) => Some(*b),
        other => {
            return Err(format!(
                "`visible` must be a boolean, got {}",
                type_name(other)
            ))
        }
    };
    r.redact = match &out["redact"] {
        Value::Undefined | Value::Null | Value::Bool(false) => Redact::None,
        Value::Bool(true) => Redact::All,
        v @ (Value::Set(_) | Value::Array(_)) => {
            let names = string_set(v, "redact")?;
            if names.is_empty() {
                Redact::None
            } else {
                Redact::Only(names)
            }
        }
        other => {
            return Err(format!(
                "`redact` must be true or a set of detector names/kinds, got {}",
                type_name(other)
            ))
        }
    };
    r.labels = match &out["labels"] {
        Value::Undefined | Value::Null => Vec::new(),
        Value::Set(s) => s.iter().map(reason_text).collect(),
        Value::Array(a) => a.iter().map(reason_text).collect(),
        other => {
            return Err(format!(
                "`labels` must be a set of strings, got {}",
                type_name(other)
            ))
        }
    };
    Ok(r)
}

fn string_set(v: &Value, rule: &str) -> Result<Vec<String>, String> {
    match v {
        Value::Undefined | Value::Null => Ok(Vec::new()),
        Value::Set(s) => Ok(s.iter().map(reason_text).collect()),
        Value::Array(a) => Ok(a.iter().map(reason_text).collect()),
        other => Err(format!(
            "`{rule}` must be a set of strings, got {}",
            type_name(other)
        )),
    }
}

fn read_rate_limit(v: &Value) -> Result<Option<RateLimitOrder>, String> {
    let o = match v {
        Value::Undefined | Value::Null => return Ok(None),
        Value::Object(o) => o,
        other => {
            return Err(format!(
                "`rate_limit` must be an object, got {}",
                type_name(other)
            ))
        }
    };
    for k in o.keys() {
        if !matches!(k, Value::String(s) if matches!(s.as_ref(), "entries" | "cost")) {
            return Err(format!(
                "`rate_limit` has an unknown field {k} (expected `entries` and `cost`)"
            ));
        }
    }
    let entries = match &v["entries"] {
        Value::Object(e) if !e.is_empty() => e,
        Value::Object(_) => return Err("`rate_limit.entries` is empty".into()),
        other => {
            return Err(format!(
                "`rate_limit.entries` must be an object, got {}",
                type_name(other)
            ))
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    for (k, val) in entries.iter() {
        let Value::String(key) = k else {
            return Err("`rate_limit.entries` keys must be strings".into());
        };
        if key.is_empty()
            || key.len() > 32
            || key.as_ref() == "cost"
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "`rate_limit.entries`: {key:?} is not a valid key ([a-z0-9_], 1 to 32 characters, not \"cost\")"
            ));
        }
        let value = match val {
            Value::String(s) => s.to_string(),
            Value::Number(_) | Value::Bool(_) => val.to_string(),
            other => {
                return Err(format!(
                    "`rate_limit.entries.{key}` must be a string, got {}",
                    type_name(other)
                ))
            }
        };
        if value.is_empty() || value.len() > 256 || value.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(format!(
                "`rate_limit.entries.{key}` must be 1 to 256 bytes without control characters"
            ));
        }
        out.push((key.to_string(), value));
    }
    let cost = match &v["cost"] {
        Value::Undefined => 1,
        n => n
            .as_u64()
            .ok()
            .filter(|c| *c <= MAX_RATE_LIMIT_COST)
            .ok_or_else(|| {
                format!(
                    "`rate_limit.cost` must be an integer from 0 to {MAX_RATE_LIMIT_COST}, got {n}"
                )
            })?,
    };
    Ok(Some(RateLimitOrder { entries: out, cost }))
}

fn read_kill(v: &Value) -> Result<Option<KillOrder>, String> {
    match v {
        Value::Undefined | Value::Null | Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(KillOrder {
            reason: "killed by policy".into(),
            principal: false,
            ttl_seconds: None,
        })),
        Value::String(s) => Ok(Some(KillOrder {
            reason: s.to_string(),
            principal: false,
            ttl_seconds: None,
        })),
        Value::Object(_) => {
            let reason = match &v["reason"] {
                Value::String(s) => s.to_string(),
                Value::Undefined => "killed by policy".to_string(),
                other => {
                    return Err(format!(
                        "`kill.reason` must be a string, got {}",
                        type_name(other)
                    ))
                }
            };
            let principal = match &v["scope"] {
                Value::Undefined => false,
                Value::String(s) if s.as_ref() == "session" => false,
                Value::String(s) if s.as_ref() == "principal" => true,
                other => {
                    return Err(format!(
                        "`kill.scope` must be \"session\" or \"principal\", got {other}"
                    ))
                }
            };
            let ttl_seconds = match &v["ttl_seconds"] {
                Value::Undefined => None,
                n => Some(n.as_u64().ok().filter(|t| *t > 0).ok_or_else(|| {
                    format!("`kill.ttl_seconds` must be a positive integer, got {n}")
                })?),
            };
            Ok(Some(KillOrder {
                reason,
                principal,
                ttl_seconds,
            }))
        }
        other => Err(format!(
            "`kill` must be a string, true or an object, got {}",
            type_name(other)
        )),
    }
}

fn read_denial(v: &Value) -> Result<Denial, String> {
    let mut d = Denial::default();
    match v {
        Value::Undefined | Value::Null => return Ok(d),
        Value::Object(_) => {}
        other => {
            return Err(format!(
                "`denial` must be an object, got {}",
                type_name(other)
            ))
        }
    }
    match &v["as"] {
        Value::Undefined | Value::Null => {}
        Value::String(s) if s.as_ref() == "error" => {}
        Value::String(s) if s.as_ref() == "tool_result" => d.as_tool_result = true,
        other => {
            return Err(format!(
                "`denial.as` must be \"error\" or \"tool_result\", got {other}"
            ))
        }
    }
    match &v["code"] {
        Value::Undefined | Value::Null => {}
        n => {
            let code = n
                .as_i64()
                .map_err(|_| format!("`denial.code` must be an integer, got {n}"))?;
            if (-32768..=-32000).contains(&code) {
                return Err(format!(
                    "`denial.code` {code} is in the range JSON-RPC reserves (-32768 to -32000)"
                ));
            }
            d.code = Some(code);
        }
    }
    match &v["message"] {
        Value::Undefined | Value::Null => {}
        Value::String(s) => d.message = Some(s.to_string()),
        other => {
            return Err(format!(
                "`denial.message` must be a string, got {}",
                type_name(other)
            ))
        }
    }
    match &v["http_status"] {
        Value::Undefined | Value::Null => {}
        n => {
            let status = n
                .as_u32()
                .ok()
                .filter(|s| (200..=599).contains(s))
                .ok_or_else(|| {
                    format!("`denial.http_status` must be an HTTP status (200-599), got {n}")
                })?;
            d.http_status = Some(status);
        }
    }
    Ok(d)
}

fn read_headers(v: &Value, rule: &str) -> Result<Vec<(String, String)>, String> {
    let o = match v {
        Value::Undefined | Value::Null => return Ok(Vec::new()),
        Value::Object(o) => o,
        other => {
            return Err(format!(
                "`{rule}` must be an object, got {}",
                type_name(other)
            ))
        }
    };
    let mut out = Vec::new();
    for (k, v) in o.iter() {
        let Value::String(name) = k else {
            return Err(format!("`{rule}` names must be strings"));
        };
        let name = name.to_ascii_lowercase();
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(format!("`{rule}`: {name:?} is not a valid header name"));
        }
        if name.starts_with(':')
            || matches!(
                name.as_str(),
                "content-length" | "host" | "transfer-encoding"
            )
        {
            return Err(format!("`{rule}` may not set {name}"));
        }
        let value = reason_text(v);
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!(
                "`{rule}`: the value of {name} contains a line break"
            ));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn read_allow_deny(out: &Value) -> Result<PolicyResult, String> {
    let allow = matches!(&out["allow"], Value::Bool(true));
    let deny = match &out["deny"] {
        Value::Undefined | Value::Null | Value::Bool(false) => Vec::new(),
        Value::Bool(true) => vec!["denied by policy".to_string()],
        Value::Set(s) => s.iter().map(reason_text).collect(),
        Value::Array(a) => a.iter().map(reason_text).collect(),
        other => {
            return Err(format!(
                "`deny` must be a set of strings, got {}",
                type_name(other)
            ))
        }
    };
    Ok(PolicyResult {
        allow,
        deny,
        ..PolicyResult::default()
    })
}

fn reason_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}

fn revision_of(modules: &[(String, String)], data: Option<&serde_json::Value>) -> String {
    let mut sorted: Vec<&(String, String)> = modules.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, source) in sorted {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((source.len() as u64).to_le_bytes());
        h.update(source.as_bytes());
    }
    // serde_json objects are key-sorted (no preserve_order), so this is canonical.
    let data_text = data.map(|d| d.to_string()).unwrap_or_default();
    h.update(data_text.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> Policy {
        Policy::compile(
            &[("p.rego".into(), src.into())],
            None,
            DEFAULT_MAX_INSTRUCTIONS,
        )
        .expect("compiles")
    }

    fn input(json: &str) -> Value {
        Value::from_json_str(json).expect("json")
    }

    #[test]
    fn allow_and_deny_are_read() {
        let mut p = compile(
            r#"package mcp
default allow := false
allow if input.mcp.method == "tools/call"
deny contains "no secrets" if input.mcp.tool.name == "secret"
"#,
        );
        assert_eq!(p.engine_kind(), EngineKind::Rvm);
        let r = p
            .evaluate(input(
                r#"{"mcp":{"method":"tools/call","tool":{"name":"x"}}}"#,
            ))
            .unwrap();
        assert!(r.permits());
        let r = p
            .evaluate(input(
                r#"{"mcp":{"method":"tools/call","tool":{"name":"secret"}}}"#,
            ))
            .unwrap();
        assert!(r.allow);
        assert_eq!(r.deny, vec!["no secrets".to_string()]);
        let r = p.evaluate(input(r#"{"mcp":{"method":"ping"}}"#)).unwrap();
        assert!(!r.allow && !r.permits());
    }

    #[test]
    fn allow_must_be_exactly_true() {
        let mut p = compile("package mcp\nallow := \"yes\"\n");
        assert!(!p.evaluate(input("{}")).unwrap().permits());
        let mut p = compile("package mcp\nallow := 1\n");
        assert!(!p.evaluate(input("{}")).unwrap().permits());
    }

    #[test]
    fn missing_allow_denies_and_deny_alone_is_fine() {
        let mut p = compile("package mcp\ndeny contains \"x\" if input.a == 1\n");
        let r = p.evaluate(input(r#"{"a":2}"#)).unwrap();
        assert!(!r.allow && r.deny.is_empty());
    }

    #[test]
    fn optional_outputs_are_read() {
        let mut p = compile(
            r#"package mcp
allow := true
denial := {"as": "tool_result", "code": 4001, "message": "nope", "http_status": 403}
rewrite["limit"] := 10
request_headers := {"X-MCP-Tool": "echo"}
response_headers["x-policy"] := "v1"
labels contains "sensitive_read"
"#,
        );
        let r = p.evaluate(input("{}")).unwrap();
        assert!(r.denial.as_tool_result);
        assert_eq!(r.denial.code, Some(4001));
        assert_eq!(r.denial.message.as_deref(), Some("nope"));
        assert_eq!(r.denial.http_status, Some(403));
        assert_eq!(r.rewrite, vec![("limit".to_string(), Value::from(10u64))]);
        assert_eq!(
            r.request_headers,
            vec![("x-mcp-tool".to_string(), "echo".to_string())]
        );
        assert_eq!(
            r.response_headers,
            vec![("x-policy".to_string(), "v1".to_string())]
        );
        assert_eq!(r.labels, vec!["sensitive_read".to_string()]);
    }

    #[test]
    fn bad_optional_outputs_are_evaluation_errors() {
        for bad in [
            "denial := {\"code\": -32001}",
            "denial := {\"as\": \"html\"}",
            "denial := {\"http_status\": 99}",
            "request_headers := {\"bad name\": \"x\"}",
            "request_headers := {\"x-a\": \"a\\r\\nb\"}",
            "request_headers := {\"content-length\": \"1\"}",
            "rewrite := [1]",
            "labels := \"x\"",
        ] {
            let mut p = compile(&format!("package mcp\nallow := true\n{bad}\n"));
            assert!(p.evaluate(input("{}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limit_is_read_and_checked() {
        let mut p = compile(
            "package mcp\nallow := true\nrate_limit := {\"entries\": {\"principal\": \"sub:alice\", \"tool\": input.t}, \"cost\": 3}\n",
        );
        let r = p.evaluate(input(r#"{"t":"query"}"#)).unwrap();
        let rl = r.rate_limit.expect("rate_limit");
        assert_eq!(rl.cost, 3);
        assert_eq!(
            rl.headers(),
            vec![
                (
                    "x-mcp-ratelimit-principal".to_string(),
                    "sub:alice".to_string()
                ),
                ("x-mcp-ratelimit-tool".to_string(), "query".to_string()),
                ("x-mcp-ratelimit-cost".to_string(), "3".to_string()),
            ]
        );
        let mut p =
            compile("package mcp\nallow := true\nrate_limit := {\"entries\": {\"tool\": \"t\"}}\n");
        assert_eq!(p.evaluate(input("{}")).unwrap().rate_limit.unwrap().cost, 1);
        for bad in [
            "rate_limit := {\"entries\": {}}",
            "rate_limit := {\"entries\": {\"Tool\": \"x\"}}",
            "rate_limit := {\"entries\": {\"cost\": \"x\"}}",
            "rate_limit := {\"entries\": {\"t\": \"\"}}",
            "rate_limit := {\"entries\": {\"t\": \"a\\nb\"}}",
            "rate_limit := {\"entries\": {\"t\": [1]}}",
            "rate_limit := {\"entries\": {\"t\": \"x\"}, \"cost\": -1}",
            "rate_limit := {\"entries\": {\"t\": \"x\"}, \"cost\": 1.5}",
            "rate_limit := {\"entries\": {\"t\": \"x\"}, \"cost\": 1000001}",
            "rate_limit := {\"entries\": {\"t\": \"x\"}, \"weight\": 1}",
            "rate_limit := \"x\"",
        ] {
            let mut p = compile(&format!("package mcp\nallow := true\n{bad}\n"));
            assert!(p.evaluate(input("{}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn multiple_reasons_are_kept() {
        let mut p =
            compile("package mcp\nallow := true\ndeny contains \"b\"\ndeny contains \"a\"\n");
        let r = p.evaluate(input("{}")).unwrap();
        assert_eq!(r.deny, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn data_numbers_regorus_would_expand_are_refused() {
        // Configuration or bundle `data` reaches regorus too: the same
        // pre-scan as bodies, so `0e20000000` is refused, not built.
        let module = [(
            "p.rego".to_string(),
            "package mcp\nallow := true\n".to_string(),
        )];
        let data: serde_json::Value =
            serde_json::from_str(r#"{"limits": {"x": 0e20000000}}"#).unwrap();
        let t = std::time::Instant::now();
        let e = Policy::compile(&module, Some(&data), DEFAULT_MAX_INSTRUCTIONS).unwrap_err();
        assert!(e.to_string().contains("exponent"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let data: serde_json::Value =
            serde_json::from_str(r#"{"x": [1e-5, 1.5E+3, -0.0]}"#).unwrap();
        assert!(Policy::compile(&module, Some(&data), DEFAULT_MAX_INSTRUCTIONS).is_ok());
    }

    #[test]
    fn data_is_visible() {
        let data = serde_json::json!({"blocked": ["rm"]});
        let mut p = Policy::compile(
            &[(
                "p.rego".into(),
                "package mcp\nallow := true\ndeny contains \"blocked\" if input.t in data.blocked\n"
                    .into(),
            )],
            Some(&data),
            DEFAULT_MAX_INSTRUCTIONS,
        )
        .unwrap();
        assert_eq!(p.evaluate(input(r#"{"t":"rm"}"#)).unwrap().deny.len(), 1);
        assert_eq!(p.evaluate(input(r#"{"t":"ls"}"#)).unwrap().deny.len(), 0);
    }

    #[test]
    fn compile_errors_name_module_and_line() {
        let err = Policy::compile(
            &[("bad.rego".into(), "package mcp\n\nallow if {\n".into())],
            None,
            DEFAULT_MAX_INSTRUCTIONS,
        )
        .unwrap_err();
        assert_eq!(err.location.as_deref(), Some("bad.rego:4:1"));
        assert!(!err.message.contains('\n'), "{}", err.message);
        assert!(err.to_string().starts_with("bad.rego:4:1: "), "{err}");
    }

    #[test]
    fn unknown_functions_are_compile_errors() {
        let err = Policy::compile(
            &[(
                "f.rego".into(),
                "package mcp\n\nallow if nope.fn(1)\n".into(),
            )],
            None,
            DEFAULT_MAX_INSTRUCTIONS,
        )
        .unwrap_err();
        assert_eq!(err.location.as_deref(), Some("f.rego:3:10"));
        assert!(err.message.contains("nope.fn"), "{err}");
    }

    #[test]
    fn nested_compile_errors_keep_the_specific_message() {
        let err = Policy::compile(
            &[(
                "a.rego".into(),
                "package mcp\nallow if { x := nope.fn(\"a\"); x }\n".into(),
            )],
            None,
            DEFAULT_MAX_INSTRUCTIONS,
        )
        .unwrap_err();
        assert!(err.message.contains("nope.fn"), "{err}");
        assert!(
            err.location
                .as_deref()
                .is_some_and(|l| l.starts_with("a.rego:2:")),
            "{err}"
        );
    }

    #[test]
    fn constructs_the_rvm_lacks_fall_back_to_the_interpreter() {
        let mut p = compile("package mcp\nlimits[\"a\"] := 1\nallow if limits.a == 1\n");
        assert_eq!(p.engine_kind(), EngineKind::Interpreter);
        assert!(p.evaluate(input("{}")).unwrap().permits());
        let mut p = compile("package mcp\nallow if { print(\"x\"); true }\n");
        assert_eq!(p.engine_kind(), EngineKind::Interpreter);
        assert!(p.evaluate(input("{}")).unwrap().permits());
    }

    // Native only: its two-million-element comprehension crashes Node's WASI
    // runner (a SIGSEGV in node, not a wasm trap). Inside Envoy the same
    // budget is shown by tests/e2e/test_e2e_http.py
    // (test_the_interpreter_fallback_is_bounded_by_time).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn the_interpreter_is_bounded_by_time() {
        let mut p = Policy::compile(
            &[("p.rego".into(), RUNAWAY_ON_THE_INTERPRETER.into())],
            None,
            u32::MAX as usize,
        )
        .expect("compiles");
        assert_eq!(p.engine_kind(), EngineKind::Interpreter);
        p.set_interpreter_time_limit(std::time::Duration::from_millis(20));
        let err = p.evaluate(input("{}")).unwrap_err();
        assert!(err.to_string().to_lowercase().contains("time"), "{err}");
        assert_eq!(err.kind, ErrorKind::Limit);
    }

    const RUNAWAY_ON_THE_INTERPRETER: &str = "package mcp\nallow if { x with input as {\"a\": 1} }\nx if count([y | some y in numbers.range(1, 2000000); y % 7 == 0]) > 0\n";

    #[test]
    fn the_interpreter_is_bounded_by_work_done() {
        let mut p = Policy::compile(
            &[("p.rego".into(), RUNAWAY_ON_THE_INTERPRETER.into())],
            None,
            10_000,
        )
        .expect("compiles");
        assert_eq!(p.engine_kind(), EngineKind::Interpreter);
        // No time limit at all: the step budget alone stops it.
        let err = p.evaluate(input("{}")).unwrap_err();
        assert!(err.to_string().contains("work budget of 10000"), "{err}");
        assert_eq!(err.kind, ErrorKind::Limit);
        // A small policy fits in the same budget.
        let mut ok = Policy::compile(
            &[(
                "p.rego".into(),
                "package mcp\nallow if x with input as {\"a\": 1}\nx if input.a == 1\n".into(),
            )],
            None,
            10_000,
        )
        .expect("compiles");
        assert!(ok.evaluate(input("{}")).unwrap().allow);
    }

    #[test]
    fn with_falls_back_to_the_interpreter() {
        let mut p =
            compile("package mcp\nallow if x with input as {\"a\": 1}\nx if input.a == 1\n");
        assert_eq!(p.engine_kind(), EngineKind::Interpreter);
        assert!(p.evaluate(input("{}")).unwrap().permits());
    }

    #[test]
    fn package_mcp_is_required() {
        let err = Policy::compile(
            &[("x.rego".into(), "package other\nallow := true\n".into())],
            None,
            DEFAULT_MAX_INSTRUCTIONS,
        )
        .unwrap_err();
        assert!(err.message.contains("package mcp"), "{err}");
    }

    #[test]
    fn builtins_authors_need_are_available() {
        let mut p = compile(
            r#"package mcp
allow if {
    regex.match(`^read_[a-z]+$`, input.t)
    glob.match("files/*", ["/"], input.p)
    time.now_ns() > 0
    startswith(input.t, "read_")
    json.unmarshal("{\"a\":1}").a == 1
    count({1, 2} | {3}) == 3
    net.cidr_contains("10.0.0.0/8", "10.1.2.3")
    base64.decode("eA==") == "x"
    urlquery.encode("a b&c") == "a+b%26c"
    urlquery.decode("caf%C3%A9+x") == "café x"
    urlquery.encode_object({"q": "ü/ß"}) == "q=%C3%BC%2F%C3%9F"
    urlquery.decode_object("a=1&a=2&b=%E2%9C%93") == {"a": ["1", "2"], "b": ["✓"]}
    time.clock([0, "UTC"]) == [0, 0, 0]
}
"#,
        );
        assert!(p
            .evaluate(input(r#"{"t":"read_file","p":"files/a"}"#))
            .unwrap()
            .permits());
    }

    #[test]
    fn runaway_policies_hit_the_instruction_budget() {
        let mut p = Policy::compile(
            &[(
                "loop.rego".into(),
                "package mcp\nallow if { count([x | some x in numbers.range(1, 100000)]) > 0 }\n"
                    .into(),
            )],
            None,
            1000,
        )
        .unwrap();
        assert_eq!(p.engine_kind(), EngineKind::Rvm);
        assert!(p.evaluate(input("{}")).is_err());
    }

    #[test]
    fn revision_is_stable_and_order_independent() {
        let a = revision_of(&[("a".into(), "1".into()), ("b".into(), "2".into())], None);
        let b = revision_of(&[("b".into(), "2".into()), ("a".into(), "1".into())], None);
        assert_eq!(a, b);
        assert!(a.starts_with("sha256:"));
        let c = revision_of(
            &[("a".into(), "1".into())],
            Some(&serde_json::json!({"x": 1})),
        );
        assert_ne!(a, c);
    }

    #[test]
    fn deeply_nested_brackets_are_refused_before_parsing() {
        let module = |open: &str, close: &str, n: usize| {
            format!(
                "package mcp\nimport rego.v1\ndefault allow := true\nx := {}1{}\n",
                open.repeat(n),
                close.repeat(n)
            )
        };
        let compile = |src: String| Policy::compile(&[("p.rego".into(), src)], None, 1000);
        let e = compile(module("[", "]", 40)).unwrap_err().to_string();
        assert!(
            e.contains("p.rego:4: brackets nested deeper than 16"),
            "{e}"
        );
        assert!(compile(module("[{\"a\":", "}]", 9)).is_err());
        assert!(compile(module("[", "]", MAX_BRACKET_NESTING)).is_ok());
        // Brackets in strings, raw strings and comments do not count.
        let quoted = format!(
            "package mcp\nimport rego.v1\n# {}\nx := \"{}\\\"\"\ny := `{}`\ndefault allow := true\n",
            "[".repeat(40),
            "{".repeat(40),
            "[".repeat(40)
        );
        assert!(compile(quoted).is_ok());
    }

    fn decide(src: &str, json: &str) -> Result<PolicyResult, PolicyError> {
        let full = format!("package mcp\n\nimport rego.v1\n\ndefault allow := true\n\n{src}\n");
        let mut p = compile(&full);
        p.evaluate(input(json))
    }

    #[test]
    fn policy_errors_inside_deny_rules_deny_with_kind_and_line() {
        let args = r#"{"mcp": {"tool": {"name": "t", "arguments": {"limit": "abc"}}}}"#;
        let e = decide(
            "deny contains \"too many\" if to_number(input.mcp.tool.arguments.limit) > 5",
            args,
        )
        .expect_err("a failing builtin in a deny rule denies");
        assert_eq!(e.kind, ErrorKind::Builtin);
        assert!(
            e.location
                .as_deref()
                .is_some_and(|l| l.starts_with("p.rego:7:")),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with("builtin error at p.rego:7:"),
            "{e}"
        );
        assert!(e.message.contains("to_number"), "{e}");
        // Under `not`, in `every` and in comprehensions too.
        for src in [
            "deny contains \"x\" if not to_number(input.mcp.tool.arguments.limit)",
            "deny contains \"x\" if every y in [1] { to_number(input.mcp.tool.arguments.limit) > y }",
            "deny contains \"x\" if count([1 | to_number(input.mcp.tool.arguments.limit)]) == 0",
            "deny contains \"x\" if input.mcp.tool.arguments.limit + 1 > 0",
        ] {
            let e = decide(src, args).expect_err(src);
            assert_eq!(e.kind, ErrorKind::Builtin, "{src}: {e}");
        }
        // A comparison across types is not an error (OPA orders by type).
        let r = decide(
            "deny contains \"big\" if input.mcp.tool.arguments.limit > 5",
            args,
        )
        .unwrap();
        assert_eq!(r.deny, vec!["big".to_string()]);
    }

    #[test]
    fn conflicting_values_are_errors() {
        let e = decide(
            "x := 1 if true\nx := 2 if true\ndeny contains \"one\" if x == 1",
            "{}",
        )
        .expect_err("conflict");
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert!(
            e.to_string().starts_with("conflict error at p.rego:"),
            "{e}"
        );
        let e = decide(
            "f(a) := 1 if a\nf(a) := 2 if a\ndeny contains \"one\" if f(true) == 1",
            "{}",
        )
        .expect_err("function conflict");
        assert_eq!(e.kind, ErrorKind::Conflict);
        // The same value twice is no conflict.
        assert!(decide(
            "x := 1 if true\nx := 1 if true\ndeny contains \"one\" if x == 1",
            "{}"
        )
        .is_ok());
    }

    #[test]
    fn else_follows_a_body_without_a_value() {
        let r = decide(
            "r := x if { x := input.nope } else := \"fallback\"\ndeny contains r if true",
            "{}",
        )
        .unwrap();
        assert_eq!(r.deny, vec!["fallback".to_string()]);
        let r = decide(
            "r := x if { some x in input.empty } else := \"none\"\ndeny contains r if true",
            r#"{"empty": []}"#,
        )
        .unwrap();
        assert_eq!(r.deny, vec!["none".to_string()]);
    }

    #[test]
    fn builtin_errors_can_be_read_as_undefined() {
        let src = "package mcp\n\nimport rego.v1\n\ndefault allow := true\n\n\
                   deny contains \"x\" if to_number(input.v) > 5\n";
        for interpreter in [false, true] {
            let mut p = compile(src);
            if interpreter {
                p.use_interpreter();
            }
            assert!(p.evaluate(input(r#"{"v": "abc"}"#)).is_err());
            p.set_builtin_errors(BuiltinErrors::Undefined);
            let r = p.evaluate(input(r#"{"v": "abc"}"#)).unwrap();
            assert!(r.permits(), "interpreter={interpreter}");
        }
    }

    #[test]
    fn error_kinds_are_read_back_from_reasons() {
        assert_eq!(
            error_kind_of_reason("policy evaluation failed: builtin error at a.rego:1:2: x"),
            Some("builtin")
        );
        assert_eq!(
            error_kind_of_reason("policy evaluation failed: limit error: Execution stopped"),
            Some("limit")
        );
        assert_eq!(error_kind_of_reason("tool is blocked"), None);
    }

    #[test]
    fn numbers_in_strings_are_never_built_digit_by_digit() {
        // regorus 0.14.1 built 10^N exactly for `0e20000000` (seconds of
        // CPU from 10 bytes); the patched parser reads zero as zero and
        // refuses values past 4300 digits (vendor/regorus/PATCHES.md).
        let d = |src: &str| decide(src, "{}");
        let r = d("deny contains sprintf(\"%v\", [to_number(\"0e20000000\")]) if true").unwrap();
        assert_eq!(r.deny, vec!["0".to_string()]);
        let r =
            d("deny contains sprintf(\"%v\", [json.unmarshal(\"[0e20000000]\")]) if true").unwrap();
        assert_eq!(r.deny, vec!["[0]".to_string()]);
        let e = d("deny contains \"x\" if to_number(\"1e20000000\") > 0").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Builtin, "{e}");
        let long = format!("1{}", "0".repeat(5000));
        let e = decide(
            "deny contains \"x\" if to_number(input.n) > 0",
            &format!("{{\"n\": \"{long}\"}}"),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Builtin, "{e}");
        // Ordinary values are exact as before.
        let r = d("deny contains sprintf(\"%v\", [to_number(\"12345678901234567890\")]) if true")
            .unwrap();
        assert_eq!(r.deny, vec!["12345678901234567890".to_string()]);
        let r = d("deny contains sprintf(\"%v\", [to_number(\"1.5e3\")]) if true").unwrap();
        assert_eq!(r.deny, vec!["1500".to_string()]);
    }

    #[test]
    fn one_object_key_with_two_values_is_a_conflict() {
        // The order of a client's pairs must not choose the value.
        let pairs = r#"{"p": [{"k": "role", "v": "admin"}, {"k": "role", "v": "user"}]}"#;
        for interpreter in [false, true] {
            let mut p = compile(
                "package mcp\n\nimport rego.v1\n\ndefault allow := true\n\n\
                 deny contains \"admin\" if {\n\tm := {x.k: x.v | some x in input.p}\n\tm.role == \"admin\"\n}\n",
            );
            if interpreter {
                p.use_interpreter();
            }
            let e = p.evaluate(input(pairs)).expect_err("conflict");
            assert_eq!(
                e.kind,
                ErrorKind::Conflict,
                "interpreter={interpreter}: {e}"
            );
        }
        let e = decide(
            "limit[t] := 1 if some t in input.a\nlimit[t] := 2 if some t in input.b\ndeny contains \"x\" if limit.x > 1",
            r#"{"a": ["x"], "b": ["x"]}"#,
        )
        .expect_err("partial object conflict");
        assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
        // The same value twice is fine.
        assert!(decide(
            "deny contains \"x\" if { m := {x.k: 1 | some x in input.p}; m.role == 2 }",
            pairs
        )
        .is_ok());
    }
}
