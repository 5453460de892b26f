//! Offline replay: recorded MCP messages and sessions decided with the
//! filter's own request path (`pipeline::Plugin`), away from any proxy.
//!
//! Shared by the `mcp-policy` command-line tool (`eval`, crates/cli) and
//! the browser playground (crates/web), so both decide, explain and report
//! a message exactly alike:
//!
//! - [`message`]: a message file (a JSON-RPC body or a captured HTTP
//!   request) turned into the request the filter would see;
//! - [`drive`]: that request driven through the plugin as the proxy-wasm
//!   adapter drives it (headers, then the body with the session store),
//!   each message paired with the policy evaluation it got;
//! - [`explain`]: which `allow`/`deny` rule definitions produced a result;
//! - [`audit`]: the filter's audit log read back as a session, each event
//!   the request it describes (as far as the event tells);
//! - [`report`]: the JSON shape of a decided message and of the reply
//!   (`mcp-policy eval --format json`).
//!
//! The clock is the caller's (`now_ms` arguments): the CLI reads the
//! system time, the page its own.

pub mod audit;
pub mod drive;
pub mod explain;
pub mod message;
pub mod report;
