//! Stage timing for profiling the request path (feature `stage-timing`,
//! never in a shipped build): wall time per stage accumulated per VM, and
//! the host calls made per request, reported every 2,000 requests. `make
//! profile-build` builds it. The contexts (`root`, `http`) time their stages
//! and log the report; the host calls (`abi`) count themselves. Recording
//! is one core call (`observe::report`), timed as
//! `record_headers`/`record_body`; the `rec_*` stages are its host calls
//! (counters, the histogram, log lines, filter-state writes).

use std::cell::RefCell;
pub const NAMES: [&str; N] = [
    "req_headers_total",
    "get_headers",
    "read_attributes",
    "on_request_headers",
    "record_headers",
    "req_body_total",
    "get_body",
    "on_request_body",
    "log_allowed",
    "record_body",
    "forward",
    "resp_headers_total",
    "resp_body_total",
    "response_feed",
    "record_response",
    "set_buffer",
    "rec_count",
    "rec_histogram",
    "rec_log",
    "rec_properties",
    "attr_metadata",
    "attr_peer",
    "",
    "",
];
const N: usize = 24;
thread_local! {
    static ACC: RefCell<([u64; N], [u64; N], u64)> = const { RefCell::new(([0; N], [0; N], 0)) };
    static HOST_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}
/// Every proxy-wasm host call (`abi.rs`), reported per request.
pub fn host_call() {
    HOST_CALLS.with(|c| c.set(c.get() + 1));
}
pub fn now() -> u64 {
    let mut t = 0u64;
    // SAFETY: the WASI clock call writes one u64 to the pointer given.
    unsafe {
        let _ = wasi_clock(1, 1, &mut t);
    }
    t
}
#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    #[link_name = "clock_time_get"]
    fn wasi_clock(id: u32, precision: u64, out: *mut u64) -> u16;
}
pub fn add(i: usize, ns: u64) {
    ACC.with(|a| {
        let mut a = a.borrow_mut();
        if let Some(t) = a.0.get_mut(i) {
            *t += ns;
        }
        if let Some(c) = a.1.get_mut(i) {
            *c += 1;
        }
    });
}
/// One request done: every 2,000 requests, the line the adapter logs.
pub fn request_done() -> Option<String> {
    let line = ACC.with(|a| {
        let mut a = a.borrow_mut();
        a.2 += 1;
        if a.2 % 2000 != 0 {
            return None;
        }
        let calls = HOST_CALLS.with(|c| c.replace(0));
        let mut s = format!(
            "mcp-policy stage-timing: host_calls_per_request={:.1}; mean us over calls:",
            calls as f64 / a.2 as f64
        );
        for ((name, total), count) in NAMES.iter().zip(a.0.iter()).zip(a.1.iter()) {
            if *count > 0 {
                s.push_str(&format!(
                    " {name}={:.1}/{count}",
                    *total as f64 / *count as f64 / 1000.0
                ));
            }
        }
        *a = ([0; N], [0; N], 0);
        Some(s)
    });
    line
}
