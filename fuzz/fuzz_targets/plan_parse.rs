//! Fuzz target: `benchfarm_coordinator::untrusted::plan_parse`, against a directory holding the
//! suite and scripted model a plan may name (made once per process).
#![no_main]

use std::sync::OnceLock;

static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let base = BASE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        benchfarm_coordinator::untrusted::plan_base(dir.path()).expect("the plan's files");
        dir
    });
    let _ = benchfarm_coordinator::untrusted::plan_parse(data, base.path());
});
