//! The proxy-wasm host calls the adapter makes, called on the ABI directly.
//!
//! The SDK's `proxy_wasm::hostcalls` functions `panic!` on any status they
//! do not expect (and declare the host's return value as an enum, which a
//! status outside it would make undefined behaviour). A panic traps the VM,
//! and Envoy then fails every request on that worker. Here every status the
//! host returns is a `Result`, and every buffer it hands back is decoded
//! with bounds checks: nothing in this module can panic.
//!
//! Only `dispatch_http_call` stays with the SDK: its dispatcher must
//! register the call's token to route the answer back to the root context.
//! The map and path encodings are plain functions, tested natively.

use std::convert::TryFrom;

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

#[cfg(target_arch = "wasm32")]
pub use abi::*;

#[cfg(target_arch = "wasm32")]
mod abi {
    use super::{
        deserialize_map, serialize_map, serialize_path, HostError, CAS_MISMATCH, NOT_FOUND, OK,
    };
    use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
    use std::ptr::{null, null_mut};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
        fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
        fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            return_buffer_data: *mut *mut u8,
            return_buffer_size: *mut usize,
        ) -> u32;
        fn proxy_set_buffer_bytes(
            buffer_type: u32,
            start: usize,
            size: usize,
            buffer_data: *const u8,
            buffer_size: usize,
        ) -> u32;
        fn proxy_get_header_map_pairs(
            map_type: u32,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
        fn proxy_get_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        fn proxy_replace_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_remove_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
        ) -> u32;
        fn proxy_get_property(
            path_data: *const u8,
            path_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        fn proxy_set_property(
            path_data: *const u8,
            path_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_get_shared_data(
            key_data: *const u8,
            key_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
            return_cas: *mut u32,
        ) -> u32;
        fn proxy_set_shared_data(
            key_data: *const u8,
            key_size: usize,
            value_data: *const u8,
            value_size: usize,
            cas: u32,
        ) -> u32;
        fn proxy_send_local_response(
            status_code: u32,
            status_code_details_data: *const u8,
            status_code_details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        #[allow(dead_code)]
        fn proxy_continue_stream(stream_type: u32) -> u32;
        fn proxy_define_metric(
            metric_type: u32,
            name_data: *const u8,
            name_size: usize,
            return_id: *mut u32,
        ) -> u32;
        fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
        fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    }

    /// One host call made (counted in profiling builds, feature stage-timing).
    #[inline(always)]
    fn counted() {
        #[cfg(feature = "stage-timing")]
        crate::profiler::host_call();
    }

    fn ok(status: u32) -> Result<(), HostError> {
        if status == OK {
            Ok(())
        } else {
            Err(HostError(status))
        }
    }

    /// Take ownership of a buffer the host allocated (with the module's own
    /// allocator, through `proxy_on_memory_allocate`).
    ///
    /// # Safety
    /// `data` is null or was allocated by this module's allocator for
    /// exactly `size` bytes, and is not used elsewhere.
    unsafe fn owned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
        if data.is_null() {
            None
        } else {
            Some(Vec::from_raw_parts(data, size, size))
        }
    }

    pub fn log(level: LogLevel, message: &str) -> Result<(), HostError> {
        counted();
        ok(unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) })
    }

    pub fn get_current_time() -> Result<SystemTime, HostError> {
        counted();
        let mut nanos: u64 = 0;
        ok(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
        Ok(UNIX_EPOCH + Duration::from_nanos(nanos))
    }

    pub fn set_tick_period(period: Duration) -> Result<(), HostError> {
        counted();
        let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        ok(unsafe { proxy_set_tick_period_milliseconds(ms) })
    }

    pub fn get_buffer(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
    ) -> Result<Option<Vec<u8>>, HostError> {
        counted();
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        match unsafe {
            proxy_get_buffer_bytes(buffer_type as u32, start, max_size, &mut data, &mut size)
        } {
            OK => Ok(unsafe { owned(data, size) }),
            NOT_FOUND => Ok(None),
            s => Err(HostError(s)),
        }
    }

    pub fn set_buffer(
        buffer_type: BufferType,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), HostError> {
        counted();
        ok(unsafe {
            proxy_set_buffer_bytes(buffer_type as u32, start, size, value.as_ptr(), value.len())
        })
    }

    pub fn get_map_bytes(map_type: MapType) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        counted();
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        ok(unsafe { proxy_get_header_map_pairs(map_type as u32, &mut data, &mut size) })?;
        match unsafe { owned(data, size) } {
            None => Ok(Vec::new()),
            // A map the host encoded wrongly: reported as a parse failure.
            Some(bytes) => deserialize_map(&bytes).ok_or(HostError(4)),
        }
    }

    /// Header-map pairs with values as text (invalid UTF-8 replaced).
    #[allow(dead_code)] // for adapter paths that pause and resume
    pub fn get_map(map_type: MapType) -> Result<Vec<(String, String)>, HostError> {
        Ok(get_map_bytes(map_type)?
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect())
    }

    pub fn get_map_value_bytes(map_type: MapType, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        counted();
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        match unsafe {
            proxy_get_header_map_value(
                map_type as u32,
                key.as_ptr(),
                key.len(),
                &mut data,
                &mut size,
            )
        } {
            OK => Ok(Some(unsafe { owned(data, size) }.unwrap_or_default())),
            NOT_FOUND => Ok(None),
            s => Err(HostError(s)),
        }
    }

    /// A header's value as text (invalid UTF-8 replaced).
    pub fn get_map_value(map_type: MapType, key: &str) -> Result<Option<String>, HostError> {
        Ok(get_map_value_bytes(map_type, key)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Set (replace) a header, or remove it with `None`.
    pub fn set_map_value(
        map_type: MapType,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), HostError> {
        counted();
        ok(unsafe {
            match value {
                Some(v) => proxy_replace_header_map_value(
                    map_type as u32,
                    key.as_ptr(),
                    key.len(),
                    v.as_ptr(),
                    v.len(),
                ),
                None => proxy_remove_header_map_value(map_type as u32, key.as_ptr(), key.len()),
            }
        })
    }

    pub fn get_property(path: Vec<&str>) -> Result<Option<Vec<u8>>, HostError> {
        counted();
        let path = serialize_path(&path);
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        match unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) } {
            OK => Ok(unsafe { owned(data, size) }),
            NOT_FOUND => Ok(None),
            s => Err(HostError(s)),
        }
    }

    pub fn set_property(path: Vec<&str>, value: Option<&[u8]>) -> Result<(), HostError> {
        counted();
        let path = serialize_path(&path);
        let (ptr, len) = value.map_or((null(), 0), |v| (v.as_ptr(), v.len()));
        ok(unsafe { proxy_set_property(path.as_ptr(), path.len(), ptr, len) })
    }

    /// A shared-data value and its CAS token; `(None, None)` when absent.
    pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        counted();
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        let mut cas: u32 = 0;
        match unsafe {
            proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas)
        } {
            OK => Ok((unsafe { owned(data, size) }, (cas != 0).then_some(cas))),
            NOT_FOUND => Ok((None, None)),
            s => Err(HostError(s)),
        }
    }

    /// Store a shared-data value; with `cas`, only if it was not changed
    /// since it was read (`Err(HostError(CAS_MISMATCH))` otherwise).
    pub fn set_shared_data(
        key: &str,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> Result<(), HostError> {
        counted();
        let (ptr, len) = value.map_or((null(), 0), |v| (v.as_ptr(), v.len()));
        ok(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), ptr, len, cas.unwrap_or(0)) })
    }

    /// Whether an error is a CAS mismatch.
    pub fn is_cas_mismatch(e: HostError) -> bool {
        e.0 == CAS_MISMATCH
    }

    pub fn send_http_response(
        status_code: u32,
        headers: Vec<(&str, &str)>,
        body: Option<&[u8]>,
    ) -> Result<(), HostError> {
        counted();
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let headers = serialize_map(&pairs);
        let (bptr, blen) = body.map_or((null(), 0), |b| (b.as_ptr(), b.len()));
        ok(unsafe {
            proxy_send_local_response(
                status_code,
                null(),
                0,
                bptr,
                blen,
                headers.as_ptr(),
                headers.len(),
                -1,
            )
        })
    }

    /// Let a paused request continue (stream type 0: the request).
    #[allow(dead_code)] // for adapter paths that pause and resume
    pub fn resume_http_request() -> Result<(), HostError> {
        counted();
        ok(unsafe { proxy_continue_stream(0) })
    }

    /// Let a paused response continue (stream type 1: the response).
    #[allow(dead_code)] // for adapter paths that pause and resume
    pub fn resume_http_response() -> Result<(), HostError> {
        counted();
        ok(unsafe { proxy_continue_stream(1) })
    }

    pub fn define_metric(metric_type: MetricType, name: &str) -> Result<u32, HostError> {
        counted();
        let mut id: u32 = 0;
        ok(unsafe { proxy_define_metric(metric_type as u32, name.as_ptr(), name.len(), &mut id) })?;
        Ok(id)
    }

    pub fn increment_metric(metric_id: u32, offset: i64) -> Result<(), HostError> {
        counted();
        ok(unsafe { proxy_increment_metric(metric_id, offset) })
    }

    pub fn record_metric(metric_id: u32, value: u64) -> Result<(), HostError> {
        counted();
        ok(unsafe { proxy_record_metric(metric_id, value) })
    }
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
