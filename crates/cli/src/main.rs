//! `mcp-policy`: check, evaluate and test policies offline with the
//! filter's own core (crates/cli/src/, docs/cli.md).

fn main() -> std::process::ExitCode {
    mcp_policy_cli::main()
}
