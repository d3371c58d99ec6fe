//! What machine a benchmark ran on: CPU model and SIMD features, core counts, memory, OS, board
//! and container (cgroup) limits — the facts needed to compare tokens/second across workers.
//!
//! Everything is read from Linux pseudo-files (`/proc`, `/sys`, `/etc/os-release`). Each file has
//! a pure parser over `&str`, tested with real samples; [`detect`] only does the reading, and a
//! missing file (another OS, a locked-down container) leaves the field empty rather than failing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The machine's description is a domain type, shared with the coordinator: defined once.
pub use benchfarm_domain::Hardware;

/// Reads the machine's description; never fails (unknown fields are empty or `None`).
pub fn detect() -> Hardware {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cpu = read("/proc/cpuinfo")
        .map(|s| parse_cpuinfo(&s))
        .unwrap_or_default();
    let (ram_total_bytes, ram_available_bytes) = read("/proc/meminfo")
        .map(|s| parse_meminfo(&s))
        .unwrap_or_default();
    let fallback_cpus = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let logical_cores = if cpu.logical > 0 {
        cpu.logical
    } else {
        fallback_cpus
    };
    let cgroup = read("/proc/self/cgroup")
        .map(|s| parse_proc_self_cgroup(&s))
        .unwrap_or_default();
    Hardware {
        cpu_model: cpu.model.unwrap_or_else(|| "unknown".into()),
        arch: std::env::consts::ARCH.to_string(),
        physical_cores: cpu.physical.unwrap_or(logical_cores),
        logical_cores,
        simd: cpu.simd,
        ram_total_bytes,
        ram_available_bytes,
        os: read("/etc/os-release")
            .and_then(|s| parse_os_release(&s))
            .unwrap_or_else(|| std::env::consts::OS.to_string()),
        kernel: read("/proc/sys/kernel/osrelease")
            .map_or_else(String::new, |s| s.trim().to_string()),
        board: std::fs::read("/proc/device-tree/model")
            .ok()
            .and_then(|b| parse_device_tree_model(&b)),
        cgroup_cpu_limit: cgroup_cpu_limit(&cgroup),
        cgroup_memory_limit_bytes: cgroup_memory_limit(&cgroup),
    }
}

/// What /proc/cpuinfo says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CpuInfo {
    pub model: Option<String>,
    pub logical: u32,
    /// Distinct (package, core) pairs when the file lists them (x86); `None` otherwise.
    pub physical: Option<u32>,
    pub simd: Vec<String>,
}

/// x86 `flags` and aarch64 `Features` entries worth reporting, with the name to report them by.
const SIMD_FLAGS: &[(&str, &str)] = &[
    ("sse3", "sse3"),
    ("pni", "sse3"),
    ("ssse3", "ssse3"),
    ("sse4_1", "sse4_1"),
    ("sse4_2", "sse4_2"),
    ("avx", "avx"),
    ("avx2", "avx2"),
    ("fma", "fma"),
    ("f16c", "f16c"),
    ("avx_vnni", "avx_vnni"),
    ("avx512f", "avx512f"),
    ("avx512bw", "avx512bw"),
    ("avx512vl", "avx512vl"),
    ("avx512_vnni", "avx512_vnni"),
    ("avx512_bf16", "avx512_bf16"),
    ("amx_int8", "amx_int8"),
    ("asimd", "neon"),
    ("neon", "neon"),
    ("asimdhp", "fp16"),
    ("asimddp", "dotprod"),
    ("i8mm", "i8mm"),
    ("bf16", "bf16"),
    ("sve", "sve"),
    ("sve2", "sve2"),
];

/// Parses /proc/cpuinfo (x86 or ARM layout).
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let mut flags = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut physical_id = None;
    let mut arm_part = None;
    let mut arm_model = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => info.logical += 1,
            "model name" | "Processor" if info.model.is_none() && !value.is_empty() => {
                info.model = Some(value.to_string());
            }
            "flags" | "Features" => flags.extend(value.split_whitespace().map(str::to_string)),
            "physical id" => physical_id = Some(value.to_string()),
            "core id" => {
                cores.insert((physical_id.clone(), value.to_string()));
            }
            "CPU part" if arm_part.is_none() => arm_part = Some(value.to_string()),
            "Model" if arm_model.is_none() => arm_model = Some(value.to_string()),
            _ => {}
        }
    }
    if info.model.is_none() {
        info.model = arm_part
            .as_deref()
            .and_then(arm_core_name)
            .map(str::to_string)
            .or(arm_model);
    }
    if !cores.is_empty() {
        info.physical = u32::try_from(cores.len()).ok();
    }
    let simd: BTreeSet<&str> = SIMD_FLAGS
        .iter()
        .filter(|(flag, _)| flags.contains(*flag))
        .map(|(_, name)| *name)
        .collect();
    info.simd = simd.into_iter().map(str::to_string).collect();
    info
}

/// Names of common Arm cores by `CPU part` (ARM Ltd. implementer), for a readable CPU model.
fn arm_core_name(part: &str) -> Option<&'static str> {
    let part = u32::from_str_radix(part.trim_start_matches("0x"), 16).ok()?;
    Some(match part {
        0xd03 => "Cortex-A53",
        0xd04 => "Cortex-A35",
        0xd05 => "Cortex-A55",
        0xd07 => "Cortex-A57",
        0xd08 => "Cortex-A72",
        0xd09 => "Cortex-A73",
        0xd0a => "Cortex-A75",
        0xd0b => "Cortex-A76",
        0xd0c => "Neoverse-N1",
        0xd0d => "Cortex-A77",
        0xd40 => "Neoverse-V1",
        0xd41 => "Cortex-A78",
        0xd44 => "Cortex-X1",
        0xd46 => "Cortex-A510",
        0xd47 => "Cortex-A710",
        0xd48 => "Cortex-X2",
        0xd49 => "Neoverse-N2",
        0xd4b => "Cortex-A78C",
        0xd4f => "Neoverse-V2",
        0xd80 => "Cortex-A520",
        0xd81 => "Cortex-A720",
        _ => return None,
    })
}

/// (MemTotal, MemAvailable) in bytes from /proc/meminfo; MemFree when MemAvailable is absent.
pub fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            kb.checked_mul(1024)
        })
    };
    let total = field("MemTotal").unwrap_or(0);
    let available = field("MemAvailable")
        .or_else(|| field("MemFree"))
        .unwrap_or(0);
    (total, available)
}

/// `PRETTY_NAME` from /etc/os-release, unquoted.
pub fn parse_os_release(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// /proc/device-tree/model: a NUL-terminated string.
pub fn parse_device_tree_model(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches('\0').trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// cgroup v2 `cpu.max` ("<quota> <period>" or "max <period>") as a CPU count.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota = parts.next()?;
    let period = parts.next().unwrap_or("100000");
    cpu_quota(quota, period)
}

/// cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` as a CPU count (-1 means unlimited).
pub fn parse_cfs_quota(quota: &str, period: &str) -> Option<f64> {
    cpu_quota(quota.trim(), period.trim())
}

fn cpu_quota(quota: &str, period: &str) -> Option<f64> {
    let quota: f64 = quota.parse().ok()?;
    let period: f64 = period.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Limits at or above this are "unlimited" in disguise (cgroup v1 reports ~2^63 rounded to pages).
const ABSURD_MEMORY_LIMIT: u64 = 1 << 60;

/// cgroup v2 `memory.max` or v1 `memory.limit_in_bytes`; `None` for "max" or absurd values.
pub fn parse_memory_limit(text: &str) -> Option<u64> {
    let value: u64 = text.trim().parse().ok()?;
    (value > 0 && value < ABSURD_MEMORY_LIMIT).then_some(value)
}

/// This process's cgroup paths from /proc/self/cgroup.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CgroupPaths {
    /// The unified (v2) hierarchy path, from the "0::<path>" line.
    pub v2: Option<String>,
    /// v1 paths of the cpu and memory controllers.
    pub v1_cpu: Option<String>,
    pub v1_memory: Option<String>,
}

/// Parses /proc/self/cgroup ("hierarchy-id:controllers:path" per line).
pub fn parse_proc_self_cgroup(text: &str) -> CgroupPaths {
    let mut paths = CgroupPaths::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            paths.v2 = Some(path.to_string());
        }
        for c in controllers.split(',') {
            match c {
                "cpu" => paths.v1_cpu = Some(path.to_string()),
                "memory" => paths.v1_memory = Some(path.to_string()),
                _ => {}
            }
        }
    }
    paths
}

/// Candidate files: the process's own cgroup first, then the mount root (which is the
/// process's cgroup inside a container with a cgroup namespace).
fn candidates(mount: &str, own: Option<&str>, file: &str) -> Vec<PathBuf> {
    let root = Path::new(mount);
    let mut out = Vec::new();
    if let Some(own) = own {
        let own = own.trim_start_matches('/');
        if !own.is_empty() {
            out.push(root.join(own).join(file));
        }
    }
    out.push(root.join(file));
    out
}

fn first_readable(paths: &[PathBuf]) -> Option<String> {
    paths.iter().find_map(|p| std::fs::read_to_string(p).ok())
}

fn cgroup_cpu_limit(paths: &CgroupPaths) -> Option<f64> {
    if let Some(text) = first_readable(&candidates(
        "/sys/fs/cgroup",
        paths.v2.as_deref(),
        "cpu.max",
    )) {
        return parse_cpu_max(&text);
    }
    for mount in ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"] {
        let quota = first_readable(&candidates(
            mount,
            paths.v1_cpu.as_deref(),
            "cpu.cfs_quota_us",
        ));
        let period = first_readable(&candidates(
            mount,
            paths.v1_cpu.as_deref(),
            "cpu.cfs_period_us",
        ));
        if let (Some(q), Some(p)) = (quota, period) {
            return parse_cfs_quota(&q, &p);
        }
    }
    None
}

fn cgroup_memory_limit(paths: &CgroupPaths) -> Option<u64> {
    if let Some(text) = first_readable(&candidates(
        "/sys/fs/cgroup",
        paths.v2.as_deref(),
        "memory.max",
    )) {
        return parse_memory_limit(&text);
    }
    first_readable(&candidates(
        "/sys/fs/cgroup/memory",
        paths.v1_memory.as_deref(),
        "memory.limit_in_bytes",
    ))
    .and_then(|t| parse_memory_limit(&t))
}

#[cfg(test)]
mod tests;
