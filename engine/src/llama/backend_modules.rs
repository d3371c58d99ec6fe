//! ggml's CPU backend as loadable modules, for the `dynamic-backends` build: one library per x86
//! micro-architecture (`libggml-cpu-haswell.so`, `libggml-cpu-icelake.so`, …), of which ggml
//! loads the best one this CPU can run. That is how one image runs on any x86_64 host and still
//! uses AVX2 or AVX-512 where the host has them (docs/build.md); the static build compiles one
//! CPU backend in and needs none of this.
//!
//! The modules are looked for in, first to last: `$BENCHFARM_GGML_BACKENDS`; `backends/` next to
//! the executable; the directory llama-cpp-sys-2 built them into (a binary run from its own
//! target directory). A build that does not get exactly one CPU backend from there fails with
//! the directory it looked in, rather than running with none or with one it did not choose.

use std::path::{Path, PathBuf};

/// The environment variable naming the directory of ggml's backend modules.
pub(crate) const BACKENDS_ENV: &str = "BENCHFARM_GGML_BACKENDS";

/// The directory the modules are loaded from: the first of the env value, `<exe dir>/backends`
/// (if it exists) and the build's own output directory.
fn modules_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BACKENDS_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("backends")))
        .filter(|dir| dir.is_dir());
    beside.or_else(|| llama_cpp_sys_2::BACKENDS_DIR.map(PathBuf::from))
}

/// Loads ggml's backend modules once per process (called before the backend's init, which would
/// otherwise load modules from its own search path) and checks that a CPU device came with them.
pub(crate) fn load() -> Result<(), String> {
    let dir = modules_dir().ok_or_else(|| {
        format!("no directory of ggml backend modules: set {BACKENDS_ENV} to one holding libggml-cpu-*.so")
    })?;
    load_from(&dir)
}

fn load_from(dir: &Path) -> Result<(), String> {
    if dir.to_str().is_none() {
        // ggml takes the path as a C string; llama-cpp-2 would panic on a non-UTF-8 one.
        return Err(format!(
            "ggml backend directory {} is not UTF-8",
            dir.display()
        ));
    }
    if !dir.is_dir() {
        return Err(format!(
            "ggml backend directory {} does not exist (set {BACKENDS_ENV})",
            dir.display()
        ));
    }
    llama_cpp_2::llama_backend::load_backends_from_path(dir);
    let devices = llama_cpp_2::list_llama_ggml_backend_devices();
    let cpus = devices.iter().filter(|d| d.backend == "CPU").count();
    if cpus != 1 {
        // None: nothing this CPU can run in `dir`. More than one: modules were loaded before
        // (`load` is called once per process, so only by someone else), and timings would
        // depend on which of them ggml picks.
        return Err(format!(
            "{cpus} ggml CPU backends after loading {}: expected exactly one, from a libggml-cpu-*.so this CPU can run there",
            dir.display()
        ));
    }
    tracing::info!(dir = %dir.display(), devices = devices.len(), "ggml backend modules loaded");
    Ok(())
}
