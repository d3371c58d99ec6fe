//! [`Hardware`]: the machine a job ran on, as the worker's probe reads it, the wire carries it and
//! the coordinator stores, classes and places by it.
//!
//! Unknown or unlimited is `None` (no board, no cgroup limit), never a magic zero; the wire, which
//! has no optional scalars, says 0 or "" for `None`, and the conversions at each end map them.
//! Records stored before this type was shared wrote 0 and "" for `None`: they decode to `None`.

use serde::{Deserialize, Deserializer, Serialize};

/// A description of the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub cpu_model: String,
    /// Rust's name for the architecture, e.g. "x86_64", "aarch64".
    pub arch: String,
    pub physical_cores: u32,
    pub logical_cores: u32,
    /// SIMD features relevant to llama.cpp, normalised: avx, avx2, avx512f, fma, f16c, neon,
    /// dotprod, sve, i8mm, ...
    pub simd: Vec<String>,
    pub ram_total_bytes: u64,
    pub ram_available_bytes: u64,
    /// `PRETTY_NAME` from /etc/os-release.
    pub os: String,
    pub kernel: String,
    /// Board name from the device tree (e.g. a Raspberry Pi), absent on PCs and servers.
    #[serde(default, deserialize_with = "empty_is_none")]
    pub board: Option<String>,
    /// CPUs the cgroup may use (quota / period), when limited.
    #[serde(default, deserialize_with = "zero_cpus_is_none")]
    pub cgroup_cpu_limit: Option<f64>,
    /// Memory the cgroup may use, when limited.
    #[serde(default, deserialize_with = "zero_bytes_is_none")]
    pub cgroup_memory_limit_bytes: Option<u64>,
}

impl Hardware {
    /// CPUs actually usable: logical cores, capped by the cgroup CPU limit (rounded up); ≥ 1.
    pub fn effective_cpus(&self) -> u32 {
        let limit = self
            .cgroup_cpu_limit
            .filter(|l| l.is_finite() && *l > 0.0)
            .map_or(u32::MAX, |l| l.ceil().min(f64::from(u32::MAX)) as u32);
        self.logical_cores.min(limit).max(1)
    }

    /// Memory actually usable: available RAM, capped by the cgroup memory limit.
    pub fn effective_ram_bytes(&self) -> u64 {
        self.cgroup_memory_limit_bytes
            .map_or(self.ram_available_bytes, |l| {
                l.min(self.ram_available_bytes)
            })
    }
}

/// A string that is empty means none (the wire's and the old records' way of saying it).
pub fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A CPU limit of zero means none (the wire's and the old records' way of saying it); so does a
/// negative or non-finite one, which no machine has.
pub fn none_if_zero_cpus(v: f64) -> Option<f64> {
    (v.is_finite() && v > 0.0).then_some(v)
}

/// A memory limit of zero means none (the wire's and the old records' way of saying it).
pub fn none_if_zero_bytes(v: u64) -> Option<u64> {
    (v > 0).then_some(v)
}

fn empty_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(none_if_empty))
}

fn zero_cpus_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.and_then(none_if_zero_cpus))
}

fn zero_bytes_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.and_then(none_if_zero_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hw(logical: u32, cpu: Option<f64>, available: u64, mem: Option<u64>) -> Hardware {
        Hardware {
            logical_cores: logical,
            ram_available_bytes: available,
            cgroup_cpu_limit: cpu,
            cgroup_memory_limit_bytes: mem,
            ..Hardware::default()
        }
    }

    #[test]
    fn effective_limits() {
        assert_eq!(hw(8, None, 0, None).effective_cpus(), 8);
        assert_eq!(hw(8, Some(1.5), 0, None).effective_cpus(), 2);
        assert_eq!(hw(2, Some(16.0), 0, None).effective_cpus(), 2);
        assert_eq!(hw(4, Some(0.1), 0, None).effective_cpus(), 1);
        assert_eq!(hw(0, None, 0, None).effective_cpus(), 1);
        assert_eq!(hw(4, None, 1000, None).effective_ram_bytes(), 1000);
        assert_eq!(hw(4, None, 1000, Some(300)).effective_ram_bytes(), 300);
        assert_eq!(hw(4, None, 1000, Some(3000)).effective_ram_bytes(), 1000);
    }

    #[test]
    fn a_record_stored_with_zeros_and_empty_strings_decodes_to_none() {
        // What the coordinator stored before the type was shared.
        let old = r#"{"cpu_model":"EPYC","arch":"x86_64","physical_cores":2,"logical_cores":2,
            "simd":["avx2"],"ram_total_bytes":8,"ram_available_bytes":4,"os":"Debian",
            "kernel":"6.1","board":"","cgroup_cpu_limit":0.0,"cgroup_memory_limit_bytes":0}"#;
        let h: Hardware = serde_json::from_str(old).unwrap();
        assert_eq!(
            (h.board, h.cgroup_cpu_limit, h.cgroup_memory_limit_bytes),
            (None, None, None)
        );
        let limited = old
            .replace(r#""board":"""#, r#""board":"Raspberry Pi 5""#)
            .replace(r#""cgroup_cpu_limit":0.0"#, r#""cgroup_cpu_limit":1.5"#);
        let h: Hardware = serde_json::from_str(&limited).unwrap();
        assert_eq!(
            (h.board.as_deref(), h.cgroup_cpu_limit),
            (Some("Raspberry Pi 5"), Some(1.5))
        );
    }

    #[test]
    fn a_new_record_round_trips() {
        let h = Hardware {
            cpu_model: "Cortex-A76".into(),
            board: Some("Raspberry Pi 5".into()),
            cgroup_memory_limit_bytes: Some(1 << 30),
            ..hw(4, Some(2.0), 1 << 32, None)
        };
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Hardware>(&text).unwrap(), h);
        // Fields a record lacks (older or newer writers) are none, not an error.
        let sparse: Hardware = serde_json::from_str(
            r#"{"cpu_model":"x","arch":"x","physical_cores":1,"logical_cores":1,"simd":[],
            "ram_total_bytes":1,"ram_available_bytes":1,"os":"","kernel":""}"#,
        )
        .unwrap();
        assert_eq!(sparse.board, None);
    }

    #[test]
    fn wire_zeros_are_none() {
        assert_eq!(none_if_zero_cpus(0.0), None);
        assert_eq!(none_if_zero_cpus(-1.0), None);
        assert_eq!(none_if_zero_cpus(f64::NAN), None);
        assert_eq!(none_if_zero_bytes(0), None);
        assert_eq!(none_if_zero_bytes(5), Some(5));
        assert_eq!(none_if_empty(String::new()), None);
    }
}
