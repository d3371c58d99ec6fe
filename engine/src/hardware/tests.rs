//! Tests of the hardware parsers against samples copied from real machines.

use super::*;

const X86_CPUINFO: &str = "\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
physical id\t: 0
siblings\t: 4
core id\t\t: 0
cpu cores\t: 2
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single pti fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid mpx avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves ida arat pku ospke avx512_vnni

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
physical id\t: 0
core id\t\t: 1
flags\t\t: fpu avx avx2

processor\t: 2
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu avx avx2

processor\t: 3
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
physical id\t: 0
core id\t\t: 1
flags\t\t: fpu avx avx2
";

const PI4_CPUINFO: &str = "\
processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

processor\t: 1
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

Hardware\t: BCM2835
Revision\t: c03114
Serial\t\t: 10000000a1b2c3d4
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
";

const GRAVITON3_CPUINFO: &str = "\
processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1
";

#[test]
fn x86_cpuinfo() {
    let info = parse_cpuinfo(X86_CPUINFO);
    assert_eq!(
        info.model.as_deref(),
        Some("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz")
    );
    assert_eq!(info.logical, 4);
    assert_eq!(info.physical, Some(2));
    for f in [
        "sse3",
        "ssse3",
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512_vnni",
    ] {
        assert!(
            info.simd.iter().any(|s| s == f),
            "missing {f} in {:?}",
            info.simd
        );
    }
    assert!(!info.simd.iter().any(|s| s == "neon" || s == "fpu"));
}

#[test]
fn raspberry_pi_cpuinfo() {
    let info = parse_cpuinfo(PI4_CPUINFO);
    assert_eq!(info.model.as_deref(), Some("Cortex-A72"));
    assert_eq!(info.logical, 2);
    assert_eq!(info.physical, None);
    assert_eq!(info.simd, vec!["neon"]);
}

#[test]
fn graviton_cpuinfo() {
    let info = parse_cpuinfo(GRAVITON3_CPUINFO);
    assert_eq!(info.model.as_deref(), Some("Neoverse-V1"));
    assert_eq!(
        info.simd,
        vec!["bf16", "dotprod", "fp16", "i8mm", "neon", "sve"]
    );
}

#[test]
fn unknown_arm_part_falls_back_to_model_line() {
    let text = PI4_CPUINFO.replace("0xd08", "0xfff");
    assert_eq!(
        parse_cpuinfo(&text).model.as_deref(),
        Some("Raspberry Pi 4 Model B Rev 1.4")
    );
    assert_eq!(parse_cpuinfo(""), CpuInfo::default());
}

#[test]
fn meminfo() {
    let text =
        "MemTotal:       16318412 kB\nMemFree:         1021340 kB\nMemAvailable:    9876544 kB\n";
    assert_eq!(parse_meminfo(text), (16318412 * 1024, 9876544 * 1024));
    // Old kernels have no MemAvailable.
    assert_eq!(
        parse_meminfo("MemTotal: 1000 kB\nMemFree: 400 kB\n"),
        (1000 * 1024, 400 * 1024)
    );
    assert_eq!(parse_meminfo("garbage"), (0, 0));
}

#[test]
fn os_release() {
    let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n";
    assert_eq!(
        parse_os_release(debian).as_deref(),
        Some("Debian GNU/Linux 12 (bookworm)")
    );
    assert_eq!(
        parse_os_release("PRETTY_NAME=Alpine\n").as_deref(),
        Some("Alpine")
    );
    assert_eq!(parse_os_release("NAME=x\n"), None);
}

#[test]
fn device_tree_model() {
    assert_eq!(
        parse_device_tree_model(b"Raspberry Pi 5 Model B Rev 1.0\0").as_deref(),
        Some("Raspberry Pi 5 Model B Rev 1.0")
    );
    assert_eq!(parse_device_tree_model(b"\0"), None);
}

#[test]
fn cgroup_v2_cpu_max() {
    assert_eq!(parse_cpu_max("max 100000\n"), None);
    assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
    assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
    assert_eq!(parse_cpu_max(""), None);
}

#[test]
fn cgroup_v1_cfs_quota() {
    assert_eq!(parse_cfs_quota("-1\n", "100000\n"), None);
    assert_eq!(parse_cfs_quota("200000\n", "100000\n"), Some(2.0));
    assert_eq!(parse_cfs_quota("200000", "0"), None);
}

#[test]
fn memory_limits() {
    assert_eq!(parse_memory_limit("max\n"), None);
    assert_eq!(parse_memory_limit("2147483648\n"), Some(2 << 30));
    // cgroup v1 "unlimited".
    assert_eq!(parse_memory_limit("9223372036854771712\n"), None);
}

#[test]
fn proc_self_cgroup() {
    let v2 = "0::/system.slice/benchfarm-worker.service\n";
    assert_eq!(
        parse_proc_self_cgroup(v2),
        CgroupPaths {
            v2: Some("/system.slice/benchfarm-worker.service".into()),
            ..CgroupPaths::default()
        }
    );
    let v1 = "12:memory:/docker/abc\n11:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n";
    let p = parse_proc_self_cgroup(v1);
    assert_eq!(p.v1_cpu.as_deref(), Some("/docker/abc"));
    assert_eq!(p.v1_memory.as_deref(), Some("/docker/abc"));
    assert_eq!(p.v2, None);
}

#[test]
fn detect_on_this_machine_is_plausible() {
    let h = detect();
    assert!(h.logical_cores >= 1);
    assert!(h.physical_cores >= 1 && h.physical_cores <= h.logical_cores);
    assert!(h.effective_cpus() >= 1 && h.effective_cpus() <= h.logical_cores);
    assert_eq!(h.arch, std::env::consts::ARCH);
    if cfg!(target_os = "linux") {
        assert!(h.ram_total_bytes > 0 && h.ram_available_bytes <= h.ram_total_bytes);
        assert!(!h.kernel.is_empty());
    }
}
