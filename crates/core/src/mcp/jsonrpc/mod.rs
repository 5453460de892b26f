//! The MCP wire model: JSON-RPC 2.0 messages as MCP carries them over
//! Streamable HTTP, for every released protocol version (2024-11-05 through
//! 2026-07-28).
//!
//! A body is parsed once, straight into regorus values (no intermediate
//! `serde_json::Value`), and classified as a request, a notification or a
//! client-sent response. The raw bytes are never re-serialised: an allowed
//! body is forwarded exactly as received, so the proxy and the server read
//! the same message.
//!
//! Parsing is strict where leniency would let the proxy and the server read a
//! message differently: duplicate top-level members, a `null` or fractional
//! `id`, non-object `params`, invalid UTF-8, trailing data and non-finite
//! numbers are all rejected; nesting, lone surrogates and costly numbers are
//! refused in every member by [`check_structure`] before serde reads the
//! body. Integers keep full precision (serde_json `arbitrary_precision`), as
//! the Python SDK does.
//!
//! The module is split by responsibility: [`message`] is the message model
//! (what a parsed body is), [`structure`] the structural pre-scan every body
//! goes through first, and [`parse`](mod@parse) reading a body (single or
//! batch) into the model.

mod message;
mod parse;
mod structure;

pub use message::{Body, Invalid, Kind, Message, Origin, ParseError};
pub(crate) use parse::id_value;
pub use parse::{parse, parse_shallow};
pub use structure::{
    check_structure, StructureError, MAX_EXPONENT, MAX_INTEGER_DIGITS, MAX_NESTING,
    MAX_NUMBER_DIGITS,
};

/// Every protocol version this build knows, oldest first.
pub const KNOWN_PROTOCOL_VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// The `_meta` key that carries the protocol version in 2026-07-28 requests.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key that carries client info in 2026-07-28 requests.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// The `_meta` key that carries client capabilities in 2026-07-28 requests.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
