//! ggml's system info line, the one llama.cpp C call this crate makes without `llama-cpp-2`
//! (which does not wrap it), and hence the one place in the workspace that allows `unsafe`.
//!
//! The line lists what the build's backends were compiled with (e.g. `CPU : AVX2 = 1 | ...`);
//! [`crate::features`] parses it. It is read once per process: llama.cpp builds it in a
//! function-local static string, so two concurrent calls would race on that buffer.

use std::ffi::CStr;
use std::sync::OnceLock;

/// The build's system info line, as `llama_print_system_info()` returns it.
pub(crate) fn system_info() -> &'static str {
    static LINE: OnceLock<String> = OnceLock::new();
    LINE.get_or_init(read_system_info)
}

#[allow(unsafe_code)]
fn read_system_info() -> String {
    // SAFETY: `llama_print_system_info` takes no arguments and returns a pointer to a
    // NUL-terminated string owned by llama.cpp, valid until its next call; we copy it at once,
    // and the OnceLock above ensures no other call runs concurrently from this crate.
    let ptr = unsafe { llama_cpp_sys_2::llama_print_system_info() };
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated (see above).
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .trim()
        .to_string()
}
