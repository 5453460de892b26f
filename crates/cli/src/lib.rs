//! The `mcp-policy` command-line tool: check, evaluate and test policies
//! offline with the very code the filter runs (docs/cli.md).
//!
//! - `check`: compile modules and data as the filter does; report errors as
//!   `file:line:column: message`, the engine the policy runs on, and
//!   references to `input` paths the filter never provides.
//! - `eval`: send a recorded message through the filter's request path
//!   (`pipeline::Plugin`) and print the decision, the reasons, the rules
//!   that produced them and the reply the filter would send.
//! - `test`: run the `test_` rules (`opa test` convention).
//!
//! Exit codes: 0 ok / allowed / all tests pass; 1 denied / a test failed /
//! the policy does not compile; 2 usage error (bad arguments, a file that
//! cannot be read).
//!
//! Outside tests, unwrap/expect/panic and unchecked indexing are compile
//! errors here as in the core (`[workspace.lints]`).
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub use mcp_policy_core::replay::explain;

pub mod load;
pub use mcp_policy_core::replay::message;

mod check;
mod eval;
mod test;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Success: the policy compiles, the message is allowed, every test passes.
pub const EXIT_OK: u8 = 0;
/// The policy does not compile, the message is denied, or a test failed.
pub const EXIT_FAIL: u8 = 1;
/// Bad arguments, or a file that cannot be read.
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "mcp-policy",
    version,
    about = "Check, evaluate and test mcp-policy Rego policies offline, with the filter's own engine and request path.",
    after_help = "Exit codes: 0 ok (compiles / allowed / tests pass), 1 not ok (compile error / denied / test failed), 2 usage error.\nDocumentation: docs/cli.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compile policies and data as the filter does; report errors, the engine, unknown input paths and constructs that fail at run time.
    #[command(after_help = "\
Compiles the policy modules (every .rego except *_test.rego) and data exactly as the filter's
configuration would, then the test modules, then analyses them statically (docs/cli.md):
input paths docs/input.md does not document, sprintf calls that cannot format, constructs
regorus decides differently from OPA. Findings are printed as
`file:line:column: severity: message; suggestion`.

Folders are walked recursively: *.rego files are modules, files named data.json are data
mounted at their folder's path. Explicit .json files are data at the root. A .tar.gz or
.tgz file is a policy bundle (OPA's layout, docs/bundles.md), read as the filter reads it.

Exit codes: 0 ok (warnings allowed, except undocumented input paths unless
--allow-unknown-input; none with --strict), 1 errors, 2 usage error.")]
    Check(CheckArgs),
    /// Decide a recorded MCP message (JSON-RPC body or captured HTTP request) as the filter would.
    #[command(after_help = "\
MESSAGE is a JSON-RPC body (a message or a batch, sent byte for byte as POST /mcp with
content-type: application/json, plus the 2026-07-28 routing headers when its _meta names that
version) or a captured HTTP request: {\"method\", \"path\", \"authority\", \"headers\", \"body\" |
\"body_text\", \"attributes\"}. `-` reads standard input. See docs/cli.md.

The message goes through the filter's request path (header checks, parsing, routing-header
checks, the policy once per message), so a parse error or a header mismatch is answered exactly
as in the proxy. The output shows each message's decision, the reasons, the allow/deny rule
definitions that produced them, and the HTTP reply the filter would send.

Exit codes: 0 forwarded (allowed), 1 answered by the filter (denied or refused), 2 usage error.")]
    Eval(Box<EvalArgs>),
    /// Run the Rego tests (every test_ rule, the `opa test` convention).
    #[command(after_help = "\
Every rule named test_* (without arguments) in every module is a test. A test passes when it
evaluates to true; false, undefined or an error fails it. PATH defaults to policies/.

Exit codes: 0 every test passed, 1 a test failed, none was found or a module does not compile,
2 usage error.")]
    Test(TestArgs),
}

/// Output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// One JSON document on standard output, for tools.
    Json,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Rego files, data .json files, policy bundles (.tar.gz), or folders.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Treat every warning as an error (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// Report references to undocumented input paths as warnings without failing (exit 0).
    #[arg(long)]
    pub allow_unknown_input: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Policy files or folders, then the message file (last), unless --message is given.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The message file (instead of the last PATH). `-` reads standard input.
    #[arg(long, short = 'm', value_name = "FILE")]
    pub message: Option<PathBuf>,
    /// Evaluate a ready-made input document instead of a message (skips the request path).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["message", "header", "raw"])]
    pub input: Option<PathBuf>,
    /// Add or replace a request header (repeatable): NAME=VALUE or 'NAME: VALUE'.
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE", value_parser = message::parse_header_flag)]
    pub header: Vec<(String, String)>,
    /// Read the message file as a bare body even if it looks like a capture.
    #[arg(long)]
    pub raw: bool,
    /// For a bare 2026-07-28 body: do not add the routing headers a client sends.
    #[arg(long)]
    pub no_routing_headers: bool,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// A configuration setting, as in the filter's JSON configuration (repeatable), e.g. deny_code=4031.
    #[arg(long = "set", value_name = "KEY=JSON", value_parser = parse_setting)]
    pub set: Vec<(String, serde_json::Value)>,
    /// Print the input document the policy saw for each message.
    #[arg(long)]
    pub print_input: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// What the proxy knows about the caller (docs/input.md: input.identity,
/// input.source, input.connection, input.xds). A policy only sees the parts
/// it mentions, as in the filter.
#[derive(Args, Debug, Default)]
pub struct IdentityArgs {
    /// Verified JWT claims (a JSON object file), as jwt_authn would store them: input.identity.
    #[arg(long, value_name = "FILE", help_heading = "Caller")]
    pub claims: Option<PathBuf>,
    /// TLS peer principal (URI SAN, e.g. a SPIFFE ID): input.source.principal.
    #[arg(long, value_name = "ID", help_heading = "Caller")]
    pub principal: Option<String>,
    /// Downstream address ip:port: input.source.address.
    #[arg(long, value_name = "IP:PORT", help_heading = "Caller")]
    pub source_address: Option<String>,
    /// TLS version of the downstream connection, e.g. TLSv1.3: input.connection.tls_version.
    #[arg(long, value_name = "VERSION", help_heading = "Caller")]
    pub tls_version: Option<String>,
    /// The downstream connection is mutual TLS: input.connection.mtls.
    #[arg(long, help_heading = "Caller")]
    pub mtls: bool,
    /// Earlier messages of the session (a JSON array of messages or captures), decided first, in order, so the message sees their history and rates (input.session, input.rate).
    #[arg(long, value_name = "FILE", help_heading = "Caller")]
    pub session: Option<PathBuf>,
    /// Tool definitions the upstream listed (a tools/list response, its result, or an array of tools): input.mcp.tool.definition.
    #[arg(long, value_name = "FILE", help_heading = "Caller")]
    pub tools: Option<PathBuf>,
    /// Route name: input.xds.route_name.
    #[arg(long, value_name = "NAME", help_heading = "Caller")]
    pub route_name: Option<String>,
    /// Upstream cluster name: input.xds.cluster_name.
    #[arg(long, value_name = "NAME", help_heading = "Caller")]
    pub cluster_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Rego files, data .json files, policy bundles (.tar.gz), or folders.
    #[arg(value_name = "PATH", default_value = "policies")]
    pub paths: Vec<PathBuf>,
    /// Show why each failing test failed, and where it is.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Only run tests whose full name (data.pkg.test_x) contains this text.
    #[arg(long, value_name = "TEXT")]
    pub run: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

fn parse_setting(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=JSON, e.g. deny_code=4031"))?;
    let k = k.trim();
    if k.is_empty() || k == "policy" {
        return Err(format!(
            "{s:?}: KEY must be a configuration setting other than `policy`"
        ));
    }
    // A bare word that is not JSON is taken as a string.
    let value = serde_json::from_str(v.trim())
        .unwrap_or_else(|_| serde_json::Value::String(v.trim().to_string()));
    Ok((k.to_string(), value))
}

/// A failure that ends the command: a message for standard error and an
/// exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl From<load::LoadError> for Failure {
    fn from(e: load::LoadError) -> Failure {
        Failure {
            code: if e.usage { EXIT_USAGE } else { EXIT_FAIL },
            message: e.message,
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::Check(a) => check::run(&a, &mut out),
        Command::Eval(a) => eval::run(&a, &mut out),
        Command::Test(a) => test::run(&a, &mut out),
    };
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("mcp-policy: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// The filter configuration for the loaded files, plus `settings`
/// (`--set`), as JSON: exactly what the filter would be given.
pub(crate) fn config_json(
    loaded: &load::Loaded,
    settings: &[(String, serde_json::Value)],
) -> Result<Vec<u8>, Failure> {
    let modules: serde_json::Map<String, serde_json::Value> = loaded
        .policy_modules()
        .into_iter()
        .map(|(n, s)| (n, serde_json::Value::String(s)))
        .collect();
    let mut policy = serde_json::Map::new();
    policy.insert("modules".into(), serde_json::Value::Object(modules));
    if let Some(d) = loaded.data()? {
        policy.insert("data".into(), d);
    }
    let mut cfg = serde_json::Map::new();
    cfg.insert("policy".into(), serde_json::Value::Object(policy));
    for (k, v) in settings {
        cfg.insert(k.clone(), v.clone());
    }
    serde_json::to_vec(&serde_json::Value::Object(cfg)).map_err(|e| Failure::usage(e.to_string()))
}

/// Write, ignoring a closed pipe (`mcp-policy … | head`).
pub(crate) fn emit(out: &mut dyn Write, text: &str) {
    let _ = out.write_all(text.as_bytes());
}

pub(crate) fn emit_json(out: &mut dyn Write, v: &serde_json::Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    emit(out, &format!("{text}\n"));
}

pub(crate) use mcp_policy_core::replay::report::split_location;
