//! Fuzz target: `benchfarm_coordinator::untrusted::proto_submit` (see that module for what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = benchfarm_coordinator::untrusted::proto_submit(data);
});
