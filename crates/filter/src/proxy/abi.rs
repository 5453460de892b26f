//! The module's host: every [`Host`] call made on the proxy-wasm ABI
//! directly (wasm32 only).
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

use super::host::{
    deserialize_map, serialize_map, serialize_path, Buffer, DispatchError, Host, HostError, Map,
    NOT_FOUND, OK,
};
use mcp_policy_core::host::{Level, MetricKind};
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};
use std::ptr::{null, null_mut};
use std::time::Duration;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
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
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
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

/// The proxy-wasm host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Abi;

/// One host call made (counted in profiling builds, feature stage-timing).
#[inline(always)]
fn counted() {
    #[cfg(feature = "stage-timing")]
    super::profiler::host_call();
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

fn level(l: Level) -> LogLevel {
    match l {
        Level::Trace => LogLevel::Trace,
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
        Level::Critical => LogLevel::Critical,
    }
}

fn buffer(b: Buffer) -> BufferType {
    match b {
        Buffer::HttpRequestBody => BufferType::HttpRequestBody,
        Buffer::HttpResponseBody => BufferType::HttpResponseBody,
        Buffer::HttpCallResponseBody => BufferType::HttpCallResponseBody,
        Buffer::PluginConfiguration => BufferType::PluginConfiguration,
    }
}

fn map(m: Map) -> MapType {
    match m {
        Map::HttpRequestHeaders => MapType::HttpRequestHeaders,
        Map::HttpResponseHeaders => MapType::HttpResponseHeaders,
        Map::HttpCallResponseHeaders => MapType::HttpCallResponseHeaders,
    }
}

fn metric(k: MetricKind) -> MetricType {
    match k {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge => MetricType::Gauge,
        MetricKind::Histogram => MetricType::Histogram,
    }
}

impl Host for Abi {
    fn log(&self, l: Level, message: &str) -> Result<(), HostError> {
        counted();
        ok(unsafe { proxy_log(level(l) as u32, message.as_ptr(), message.len()) })
    }

    fn get_current_time(&self) -> Result<Duration, HostError> {
        counted();
        let mut nanos: u64 = 0;
        ok(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
        Ok(Duration::from_nanos(nanos))
    }

    fn log_level(&self) -> Result<Level, HostError> {
        counted();
        let mut l: u32 = 0;
        ok(unsafe { proxy_get_log_level(&mut l) })?;
        // The ABI's numbering: trace 0 … critical 5.
        Ok(match l {
            0 => Level::Trace,
            1 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Critical,
        })
    }

    fn micros() -> u64 {
        Abi.get_current_time().unwrap_or_default().as_micros() as u64
    }

    fn set_tick_period(&self, period: Duration) -> Result<(), HostError> {
        counted();
        let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
        ok(unsafe { proxy_set_tick_period_milliseconds(ms) })
    }

    fn get_buffer(
        &self,
        b: Buffer,
        start: usize,
        max_size: usize,
    ) -> Result<Option<Vec<u8>>, HostError> {
        counted();
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        match unsafe {
            proxy_get_buffer_bytes(buffer(b) as u32, start, max_size, &mut data, &mut size)
        } {
            OK => Ok(unsafe { owned(data, size) }),
            NOT_FOUND => Ok(None),
            s => Err(HostError(s)),
        }
    }

    fn set_buffer(
        &self,
        b: Buffer,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), HostError> {
        counted();
        ok(unsafe {
            proxy_set_buffer_bytes(buffer(b) as u32, start, size, value.as_ptr(), value.len())
        })
    }

    fn get_map_bytes(&self, m: Map) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        counted();
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        ok(unsafe { proxy_get_header_map_pairs(map(m) as u32, &mut data, &mut size) })?;
        match unsafe { owned(data, size) } {
            None => Ok(Vec::new()),
            // A map the host encoded wrongly: reported as a parse failure.
            Some(bytes) => deserialize_map(&bytes).ok_or(HostError(4)),
        }
    }

    fn get_map_value_bytes(&self, m: Map, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        counted();
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        match unsafe {
            proxy_get_header_map_value(map(m) as u32, key.as_ptr(), key.len(), &mut data, &mut size)
        } {
            OK => Ok(Some(unsafe { owned(data, size) }.unwrap_or_default())),
            NOT_FOUND => Ok(None),
            s => Err(HostError(s)),
        }
    }

    fn set_map_value(&self, m: Map, key: &str, value: Option<&str>) -> Result<(), HostError> {
        counted();
        ok(unsafe {
            match value {
                Some(v) => proxy_replace_header_map_value(
                    map(m) as u32,
                    key.as_ptr(),
                    key.len(),
                    v.as_ptr(),
                    v.len(),
                ),
                None => proxy_remove_header_map_value(map(m) as u32, key.as_ptr(), key.len()),
            }
        })
    }

    fn get_property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        counted();
        let path = serialize_path(path);
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        match unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) } {
            OK => Ok(unsafe { owned(data, size) }),
            NOT_FOUND => Ok(None),
            s => Err(HostError(s)),
        }
    }

    fn set_property(&self, path: &[&str], value: Option<&[u8]>) -> Result<(), HostError> {
        counted();
        let path = serialize_path(path);
        let (ptr, len) = value.map_or((null(), 0), |v| (v.as_ptr(), v.len()));
        ok(unsafe { proxy_set_property(path.as_ptr(), path.len(), ptr, len) })
    }

    fn get_shared_data(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
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

    fn set_shared_data(
        &self,
        key: &str,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> Result<(), HostError> {
        counted();
        let (ptr, len) = value.map_or((null(), 0), |v| (v.as_ptr(), v.len()));
        ok(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), ptr, len, cas.unwrap_or(0)) })
    }

    fn send_http_response(
        &self,
        status_code: u32,
        headers: &[(&str, &str)],
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

    fn dispatch_http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, DispatchError> {
        proxy_wasm::hostcalls::dispatch_http_call(cluster, headers.to_vec(), body, vec![], timeout)
            .map_err(|s| match s {
                Status::BadArgument => DispatchError::BadArgument,
                _ => DispatchError::InternalFailure,
            })
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        counted();
        let mut id: u32 = 0;
        ok(unsafe {
            proxy_define_metric(metric(kind) as u32, name.as_ptr(), name.len(), &mut id)
        })?;
        Ok(id)
    }

    fn increment_metric(&self, id: u32, offset: i64) -> Result<(), HostError> {
        counted();
        ok(unsafe { proxy_increment_metric(id, offset) })
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        counted();
        ok(unsafe { proxy_record_metric(id, value) })
    }

    fn trap(&self) -> ! {
        core::arch::wasm32::unreachable()
    }
}
