//! `mcp-policy`: check, evaluate and test policies offline with the
//! filter's own core (src/cli/, docs/cli.md).

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    mcp_policy::cli::main()
}

/// The tool runs on the host. A wasm32 build of the package (for example
/// `cargo test --target wasm32-wasip1`, which builds every binary) gets this
/// stub instead, so the CLI's dependencies stay out of wasm builds.
#[cfg(target_arch = "wasm32")]
fn main() -> std::process::ExitCode {
    eprintln!("mcp-policy: the command-line tool is built for the host, not for wasm32");
    std::process::ExitCode::from(2)
}
