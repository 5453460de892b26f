//! The host, as the adapter's contexts see it: the [`Host`] trait (every
//! proxy-wasm call the adapter makes, each status a `Result`), the types of
//! its arguments, and the ABI's encodings. The module's host is `abi::Abi`
//! (wasm32); the tests' is a mock that records every call.
//!
//! The map and path encodings are plain functions, tested natively.

use mcp_policy_core::host::{Level, MetricKind};
use std::convert::TryFrom;
use std::time::Duration;

/// A host call failed: the raw status the host returned (see the proxy-wasm
/// ABI: 1 not found, 2 bad argument, 3 serialization failure, 4 parse
/// failure, 7 empty, 8 CAS mismatch, 10 internal failure, 12
/// unimplemented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            1 => "not found",
            2 => "bad argument",
            3 => "serialization failure",
            4 => "parse failure",
            7 => "empty",
            8 => "CAS mismatch",
            10 => "internal failure",
            12 => "unimplemented",
            _ => "unknown status",
        };
        write!(f, "host status {} ({name})", self.0)
    }
}

pub const OK: u32 = 0;
pub const NOT_FOUND: u32 = 1;
pub const CAS_MISMATCH: u32 = 8;

/// Encode header pairs as the ABI wants them: a count, then each name's and
/// value's length (u32 little-endian), then each name and value followed by
/// a NUL.
pub fn serialize_map(map: &[(&str, &[u8])]) -> Vec<u8> {
    let size = 4 + map
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (k, v) in map {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in map {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(<[u8; 4]>::try_from(b).ok()?) as usize)
}

/// Decode the ABI's header-map encoding; `None` when it is malformed.
/// Names that are not UTF-8 are decoded lossily (Envoy validates header
/// names, so this does not happen with it).
pub fn deserialize_map(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let n = u32_at(bytes, 0)?;
    // Each pair takes at least 8 bytes of sizes and 2 NULs.
    if n > bytes.len() / 10 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let mut p = 4usize.checked_add(n.checked_mul(8)?)?;
    for i in 0..n {
        let s = 4 + i * 8;
        let klen = u32_at(bytes, s)?;
        let vlen = u32_at(bytes, s + 4)?;
        let key = bytes.get(p..p.checked_add(klen)?)?;
        p = p.checked_add(klen)?.checked_add(1)?;
        let value = bytes.get(p..p.checked_add(vlen)?)?;
        p = p.checked_add(vlen)?.checked_add(1)?;
        out.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
    }
    Some(out)
}

/// A property path (`["metadata", "filter_metadata"]`) as the ABI wants it:
/// the parts joined by NUL.
pub fn serialize_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

/// The buffers the adapter reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    HttpRequestBody,
    HttpResponseBody,
    HttpCallResponseBody,
    PluginConfiguration,
}

/// The header maps the adapter reads and writes (named as in the ABI).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    HttpRequestHeaders,
    HttpResponseHeaders,
    HttpCallResponseHeaders,
}

/// What a stream callback tells the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

/// An HTTP call that could not be dispatched: the host's status, named as
/// the SDK names it (the logs show this name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchError {
    BadArgument,
    InternalFailure,
}

/// Every host call the adapter makes. Reads that fail are errors, never
/// panics; `micros` is the plugin's clock (a plain function: the core's
/// `Plugin` keeps it as a function pointer).
pub trait Host: Clone + 'static {
    fn log(&self, level: Level, message: &str) -> Result<(), HostError>;
    /// Since the epoch.
    fn get_current_time(&self) -> Result<Duration, HostError>;
    /// The proxy's log level (lines below it are dropped by the host).
    fn log_level(&self) -> Result<Level, HostError>;
    /// Microseconds since the epoch (zero if the host cannot tell).
    fn micros() -> u64;
    fn set_tick_period(&self, period: Duration) -> Result<(), HostError>;
    fn get_buffer(
        &self,
        buffer: Buffer,
        start: usize,
        max_size: usize,
    ) -> Result<Option<Vec<u8>>, HostError>;
    fn set_buffer(
        &self,
        buffer: Buffer,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), HostError>;
    /// Every pair of a header map, in one call.
    fn get_map_bytes(&self, map: Map) -> Result<Vec<(String, Vec<u8>)>, HostError>;
    fn get_map_value_bytes(&self, map: Map, key: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// A header's value as text (invalid UTF-8 replaced).
    fn get_map_value(&self, map: Map, key: &str) -> Result<Option<String>, HostError> {
        Ok(self
            .get_map_value_bytes(map, key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
    /// Set (replace) a header, or remove it with `None`.
    fn set_map_value(&self, map: Map, key: &str, value: Option<&str>) -> Result<(), HostError>;
    fn get_property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
    fn set_property(&self, path: &[&str], value: Option<&[u8]>) -> Result<(), HostError>;
    /// A shared-data value and its CAS token; `(None, None)` when absent.
    fn get_shared_data(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError>;
    /// Store a shared-data value; with `cas`, only if it was not changed
    /// since it was read (`Err(HostError(CAS_MISMATCH))` otherwise).
    fn set_shared_data(
        &self,
        key: &str,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> Result<(), HostError>;
    fn send_http_response(
        &self,
        status: u32,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(), HostError>;
    /// An HTTP call to `cluster`; its answer comes to the root context
    /// under the returned token.
    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, DispatchError>;
    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError>;
    fn increment_metric(&self, id: u32, offset: i64) -> Result<(), HostError>;
    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError>;
    /// Fail the VM (fault injection, `debug.trap_header`).
    fn trap(&self) -> !;
}

/// Whether an error is a CAS mismatch.
pub fn is_cas_mismatch(e: HostError) -> bool {
    e.0 == CAS_MISMATCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip() {
        let pairs: Vec<(&str, &[u8])> =
            vec![(":method", b"POST"), ("x-a", b""), ("x-b", b"\xff\x00v")];
        let bytes = serialize_map(&pairs);
        let back = deserialize_map(&bytes).unwrap();
        assert_eq!(
            back,
            vec![
                (":method".to_string(), b"POST".to_vec()),
                ("x-a".to_string(), Vec::new()),
                ("x-b".to_string(), b"\xff\x00v".to_vec()),
            ]
        );
        assert_eq!(deserialize_map(&[]), Some(Vec::new()));
        assert_eq!(deserialize_map(&serialize_map(&[])), Some(Vec::new()));
    }

    #[test]
    fn malformed_maps_are_refused_not_panicked_on() {
        let good = serialize_map(&[("name", b"value".as_slice())]);
        for cut in 0..good.len() {
            // Every truncation is refused (or, for a cut after the last NUL
            // of a value, still decodes what is complete).
            let _ = deserialize_map(&good[..cut]);
        }
        assert_eq!(deserialize_map(&good[..good.len() - 2]), None);
        // A count far beyond the buffer.
        assert_eq!(deserialize_map(&[0xff, 0xff, 0xff, 0xff, 0, 0]), None);
        // Lengths that overflow.
        let mut b = vec![1, 0, 0, 0];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        assert_eq!(deserialize_map(&b), None);
    }

    #[test]
    fn paths_are_nul_joined() {
        assert_eq!(
            serialize_path(&["metadata", "filter_metadata"]),
            b"metadata\0filter_metadata"
        );
        assert_eq!(serialize_path(&[]), b"");
    }

    #[test]
    fn errors_name_the_status() {
        assert_eq!(HostError(8).to_string(), "host status 8 (CAS mismatch)");
        assert_eq!(HostError(99).to_string(), "host status 99 (unknown status)");
    }
}
