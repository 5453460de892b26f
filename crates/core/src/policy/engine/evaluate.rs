//! Evaluating a compiled policy for one input: on the RVM when it took the
//! policy, else on the interpreter; runtime errors become policy errors of
//! their kind, located in the module that raised them.

use super::compile::{ENTRY_MODULE_NAME, ENTRY_POINT};
use super::decision::PolicyResult;
use super::errors::{ErrorKind, PolicyError};
use super::read::read_decision;
use regorus::rvm::vm::RegoVM;
use regorus::{Engine, Value};
use std::fmt;

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

/// Evaluate the entry rule for `input` and read the decision.
pub(super) fn run(
    engine: &mut Engine,
    vm: Option<&mut RegoVM>,
    input: Value,
) -> Result<PolicyResult, PolicyError> {
    let out = match vm {
        Some(vm) => {
            vm.set_input(input);
            vm.execute_entry_point_by_name(ENTRY_POINT)
                .map_err(|e| vm_error(vm, &e))?
        }
        None => {
            engine.set_input(input);
            engine
                .eval_rule(ENTRY_POINT.to_string())
                .map_err(|e| interpreter_error(&e))?
        }
    };
    read_decision(&out).map_err(|e| PolicyError::new(e.to_string()).with_kind(ErrorKind::Output))
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
