//! Fuzz target: `benchfarm_coordinator::untrusted::scripted_parse` (see that module for what it covers).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = benchfarm_coordinator::untrusted::scripted_parse(data);
});
