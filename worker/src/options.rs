//! Worker options beyond [`crate::JoinConfig`]: where the engine runs, the model cache (`--cache`,
//! `--cache-max`), and the simulation knobs (`--max-ram`, `--speed-factor`) that let one machine
//! play a heterogeneous farm in tests.
//!
//! They live apart from `JoinConfig` so that adding one never breaks code that builds a
//! `JoinConfig` literal (the e2e harness does); build these with `..WorkerOptions::default()`.

use std::path::PathBuf;

use benchfarm_engine::hardware::Hardware;

/// Where a slot runs its engine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EngineMode {
    /// In the worker process: a llama.cpp abort or an OOM kill takes the whole worker down.
    /// The library default, because a library host (a test binary) has no `engine-host`
    /// subcommand to start.
    #[default]
    InProcess,
    /// In a supervised child process, `program engine-host`, one per slot: a crash costs one job.
    /// `worker join` uses this with its own executable unless told `--engine in-process`.
    Child { program: PathBuf },
}

/// Options with defaults that keep the worker's plain behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    pub engine: EngineMode,
    /// Report at most this much RAM (total, available and any cgroup limit), to pose as a
    /// smaller machine. `None`: report what the machine has.
    pub max_ram_bytes: Option<u64>,
    /// Simulation knob: scripted models run this many times faster on this worker
    /// (tokens_per_second multiplied, load_ms divided). No effect on GGUF models.
    pub speed_factor: f64,
    /// `--allow-scripted-faults`: run scripted models' test features (`[[faults]]`, `delay_ms`,
    /// `load_ms`, synthetic times over 10 s a job). Off, such a job is refused (not counted
    /// toward this worker's quarantine): for tests and the lab's chaos scenarios only.
    pub allow_scripted_faults: bool,
    /// The model cache's directory (`--cache`); `None`: `STATE/models`.
    pub cache_dir: Option<PathBuf>,
    /// The model cache's limit (`--cache-max`); `None`: the disk's free space less a reserve.
    pub cache_max_bytes: Option<u64>,
    /// Remote models this worker may call (`--remote`): model names, or URL prefixes.
    pub remotes: Vec<String>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            engine: EngineMode::InProcess,
            max_ram_bytes: None,
            speed_factor: 1.0,
            allow_scripted_faults: false,
            cache_dir: None,
            cache_max_bytes: None,
            remotes: Vec::new(),
        }
    }
}

/// Why an option value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error(
        "invalid size {0:?}: expected a number of bytes with an optional unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 1GB or 512MiB"
    )]
    Size(String),
    #[error("invalid speed factor {0:?}: expected a positive number, e.g. 0.5 or 2")]
    SpeedFactor(String),
}

/// Parses a size such as `1GB` (10^9 bytes), `512MiB` (2^29 bytes), `1.5GiB` or `4096`
/// (`benchfarm_modelfile::size`, the parser the coordinator's sizes use too).
pub fn parse_size(text: &str) -> Result<u64, OptionError> {
    benchfarm_modelfile::size::parse_size(text).map_err(|_| OptionError::Size(text.to_string()))
}

/// Parses `--speed-factor`: a positive, finite number.
pub fn parse_speed_factor(text: &str) -> Result<f64, OptionError> {
    match text.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(OptionError::SpeedFactor(text.to_string())),
    }
}

/// The API-key variables this worker tells the coordinator it has: with `--remote` given, the
/// names of the set, non-empty environment variables that may name a key (`*_KEY`, `*_TOKEN`;
/// see [`benchfarm_modelfile::is_key_env_name`]), sorted. Never a value, and nothing at all
/// without `--remote`.
pub fn remote_key_envs(
    remotes: &[String],
    env: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<String> {
    if remotes.is_empty() {
        return Vec::new();
    }
    let mut names: Vec<String> = env
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| benchfarm_modelfile::is_key_env_name(name))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Caps the RAM figures in `hardware` at `max`. An absent cgroup limit stays absent: the total
/// is capped already, and inventing a cgroup would misdescribe the machine further.
pub fn cap_ram(hardware: &mut Hardware, max: u64) {
    hardware.ram_total_bytes = hardware.ram_total_bytes.min(max);
    hardware.ram_available_bytes = hardware.ram_available_bytes.min(max);
    hardware.cgroup_memory_limit_bytes = hardware.cgroup_memory_limit_bytes.map(|l| l.min(max));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_size("1.5GiB"), Ok(3 * 512 * 1024 * 1024));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 2 gb "), Ok(2_000_000_000));
        assert_eq!(parse_size("64k"), Ok(64_000));
        for bad in ["", "GB", "1XB", "-1GB", "0", "1.2.3MB", "0.1B"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        let err = parse_size("lots").unwrap_err().to_string();
        assert!(err.contains("\"lots\"") && err.contains("512MiB"), "{err}");
    }

    #[test]
    fn only_set_key_variable_names_are_reported_and_only_with_remotes() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect::<Vec<(std::ffi::OsString, std::ffi::OsString)>>()
        };
        let vars = env(&[
            ("PROVIDER_API_KEY", "sk-secret"),
            ("HF_TOKEN", "hf_x"),
            ("EMPTY_KEY", ""),
            ("HOME", "/root"),
            ("lower_key", "x"),
        ]);
        let names = remote_key_envs(&["cloud".into()], vars.clone());
        assert_eq!(names, vec!["HF_TOKEN", "PROVIDER_API_KEY"]);
        assert!(!names.iter().any(|n| n.contains("secret")));
        assert!(remote_key_envs(&[], vars).is_empty());
    }

    #[test]
    fn speed_factors_must_be_positive() {
        assert_eq!(parse_speed_factor("0.5"), Ok(0.5));
        assert_eq!(parse_speed_factor("3"), Ok(3.0));
        for bad in ["0", "-1", "inf", "NaN", "fast"] {
            assert!(parse_speed_factor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ram_is_capped_everywhere_it_is_reported() {
        let mut h = benchfarm_engine::hardware::detect();
        h.ram_total_bytes = 16_000_000_000;
        h.ram_available_bytes = 12_000_000_000;
        h.cgroup_memory_limit_bytes = Some(8_000_000_000);
        cap_ram(&mut h, 1_000_000_000);
        assert_eq!(h.ram_total_bytes, 1_000_000_000);
        assert_eq!(h.ram_available_bytes, 1_000_000_000);
        assert_eq!(h.cgroup_memory_limit_bytes, Some(1_000_000_000));
        assert_eq!(h.effective_ram_bytes(), 1_000_000_000);
        h.cgroup_memory_limit_bytes = None;
        cap_ram(&mut h, 500);
        assert_eq!(h.cgroup_memory_limit_bytes, None);
        assert_eq!(h.ram_total_bytes, 500);
        // A cap above what the machine has changes nothing.
        cap_ram(&mut h, u64::MAX);
        assert_eq!(h.ram_total_bytes, 500);
    }
}
