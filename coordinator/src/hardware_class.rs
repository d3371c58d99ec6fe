//! The hardware class of a worker: a stable, readable fingerprint that groups comparable machines.
//!
//! Two workers are in one class when they have the same CPU model, core count (as the worker may use
//! them: the cgroup limit counts), RAM bucket and compute backend; a worker can also name its class
//! with a `class` label (e.g. `class=pi5-8g`), which wins. Reports break scores and speeds down by it.
//!
//! A remote model's jobs run on the endpoint, not on the worker that calls it: their class is the
//! endpoint ([`endpoint_class`]: host, port and model id), so a per-hardware table never mixes a
//! worker's CPU with a cloud.

use crate::records::Hardware;

/// The class of a worker with this hardware, labels and backends.
pub fn hardware_class(
    hardware: &Hardware,
    labels: &std::collections::BTreeMap<String, String>,
    backends: &[String],
) -> String {
    if let Some(class) = labels.get("class").filter(|c| !c.trim().is_empty()) {
        return slug(class);
    }
    let cores = hardware.effective_cpus();
    // The machine's RAM, not what is free now: a class must not change while a worker runs.
    let ram = hardware
        .cgroup_memory_limit_bytes
        .map_or(hardware.ram_total_bytes, |l| {
            l.min(hardware.ram_total_bytes)
        });
    let backend = backends
        .iter()
        .find(|b| b.as_str() != "cpu")
        .map_or("cpu", |b| b.as_str());
    let cpu = if hardware.cpu_model.is_empty() {
        "unknown-cpu"
    } else {
        &hardware.cpu_model
    };
    slug(&format!(
        "{} {} {}c {}g {}",
        hardware.arch,
        cpu,
        cores,
        ram_bucket_gb(ram),
        backend
    ))
}

/// The class of a remote endpoint: `remote-` then its host (and port) and the model id.
pub fn endpoint_class(url: &str, model: &str) -> String {
    slug(&format!("remote {} {model}", endpoint_host(url)))
}

/// The `host[:port]` of a URL (what follows the scheme, up to the path).
pub fn endpoint_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

/// RAM rounded to a power-of-two bucket in GB (1, 2, 4, 8, ...), so a machine reporting 15.6 GB and one
/// reporting 16.0 GB fall in one class.
fn ram_bucket_gb(bytes: u64) -> u64 {
    let gb = (bytes as f64 / 1e9).round().max(1.0) as u64;
    gb.next_power_of_two()
}

/// Lowercase ASCII letters, digits and `_` (as in `x86_64`), runs of anything else as one `-`.
fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn hw(cores: u32, ram_gb: f64) -> Hardware {
        Hardware {
            cpu_model: "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz".into(),
            arch: "x86_64".into(),
            logical_cores: cores,
            physical_cores: cores,
            ram_total_bytes: (ram_gb * 1e9) as u64,
            ..Hardware::default()
        }
    }

    #[test]
    fn same_machine_same_class_and_buckets_absorb_small_differences() {
        let a = hardware_class(&hw(2, 15.6), &BTreeMap::new(), &["cpu".into()]);
        let b = hardware_class(&hw(2, 16.0), &BTreeMap::new(), &[]);
        assert_eq!(a, b);
        assert_eq!(
            a,
            "x86_64-intel-r-xeon-r-platinum-8375c-cpu-2-90ghz-2c-16g-cpu"
        );
        assert_ne!(a, hardware_class(&hw(4, 16.0), &BTreeMap::new(), &[]));
    }

    #[test]
    fn endpoints_are_classed_by_host_and_model() {
        assert_eq!(
            endpoint_class("https://api.example.com/v1", "provider/model-id"),
            "remote-api-example-com-provider-model-id"
        );
        assert_eq!(
            endpoint_class("http://127.0.0.1:8080/v1", "SmolLM2"),
            "remote-127-0-0-1-8080-smollm2"
        );
        assert_eq!(endpoint_host("http://h:1?x"), "h:1");
    }

    #[test]
    fn cgroup_limits_and_labels_count() {
        let mut h = hw(16, 64.0);
        h.cgroup_cpu_limit = Some(1.5);
        h.cgroup_memory_limit_bytes = Some(1_000_000_000);
        assert!(hardware_class(&h, &BTreeMap::new(), &[]).ends_with("-2c-1g-cpu"));
        let labels = BTreeMap::from([("class".to_string(), "Pi 5 / 8G".to_string())]);
        assert_eq!(hardware_class(&h, &labels, &[]), "pi-5-8g");
    }
}
