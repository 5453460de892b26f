#![no_main]
// See src/fuzzing.rs: mcp_policy_core::fuzzing::request.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_policy_core::fuzzing::request(data));
