//! CPU features in one vocabulary — ggml's own names — for what the CPU offers and what the
//! llama.cpp build uses, so the two can be compared and a build that leaves speed on the table
//! is flagged ("portable build: AVX2 unused").
//!
//! The build side comes from ggml's system info line (`llama_print_system_info()`), which lists
//! the SIMD extensions the CPU backend was *compiled* with, e.g.
//! `CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | OPENMP = 1 |`.
//! The CPU side comes from the kernel's `/proc/cpuinfo` flags (x86 `flags`, Arm `Features`),
//! mapped by [`CPUINFO_TO_GGML`], the one table that relates the two namings. Everything here is
//! pure text processing; reading the files and calling llama.cpp is the caller's business.

use std::collections::BTreeSet;

/// `/proc/cpuinfo` flag → the name ggml's system info uses for the same extension.
///
/// ggml's names are the vocabulary because the build side is ggml's line verbatim. Note ggml's
/// Arm names: FP16 vector arithmetic is `FP16_VA` (kernel flag `asimdhp`) and the int8 matrix
/// multiply (i8mm) is `MATMUL_INT8`. One kernel flag may map to two names: every aarch64 CPU with
/// Advanced SIMD (`asimd`) also has the fused multiply-add ggml reports as `ARM_FMA`.
/// The order is ggml's own order of its features, which [`cpu_features`] keeps.
pub const CPUINFO_TO_GGML: &[(&str, &str)] = &[
    // x86 (the kernel calls SSE3 "pni": Prescott New Instructions)
    ("pni", "SSE3"),
    ("ssse3", "SSSE3"),
    ("avx", "AVX"),
    ("avx_vnni", "AVX_VNNI"),
    ("avx2", "AVX2"),
    ("f16c", "F16C"),
    ("fma", "FMA"),
    ("bmi2", "BMI2"),
    ("avx512f", "AVX512"),
    ("avx512vbmi", "AVX512_VBMI"),
    ("avx512_vnni", "AVX512_VNNI"),
    ("avx512_bf16", "AVX512_BF16"),
    ("amx_int8", "AMX_INT8"),
    // Arm (aarch64 `asimd`; 32-bit Arm says `neon`)
    ("asimd", "NEON"),
    ("neon", "NEON"),
    ("asimd", "ARM_FMA"),
    ("asimdhp", "FP16_VA"),
    ("i8mm", "MATMUL_INT8"),
    ("sve", "SVE"),
    ("asimddp", "DOTPROD"),
    ("sme", "SME"),
];

/// The ggml features a CPU with these `/proc/cpuinfo` flags offers, in ggml's order, each once.
pub fn cpu_features<'a>(flags: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let flags: BTreeSet<&str> = flags.into_iter().collect();
    let mut out: Vec<String> = Vec::new();
    for (flag, name) in CPUINFO_TO_GGML {
        if flags.contains(flag) && !out.iter().any(|n| n == name) {
            out.push((*name).to_string());
        }
    }
    out
}

/// The ggml features of the CPU described by a whole `/proc/cpuinfo` text. The flags of every
/// processor are pooled: they are the same on every core of the machines we see, and on a
/// big.LITTLE board a feature of some cores is still one the build should use.
pub fn cpu_features_from_cpuinfo(text: &str) -> Vec<String> {
    let flags = text.lines().filter_map(|line| {
        let (key, value) = line.split_once(':')?;
        matches!(key.trim(), "flags" | "Features").then_some(value)
    });
    cpu_features(flags.flat_map(str::split_whitespace))
}

/// One backend's section of ggml's system info line: its name and `(feature, value)` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendFeatures {
    pub backend: String,
    pub features: Vec<(String, String)>,
}

/// Parses ggml's system info line, `NAME : F = V | F = V | NAME2 : ...`, into its sections.
/// Anything that is not `F = V` (stray text, an empty tail after the last `|`) is skipped.
pub fn parse_system_info(line: &str) -> Vec<BackendFeatures> {
    let mut sections: Vec<BackendFeatures> = Vec::new();
    for part in line.split('|') {
        let mut part = part.trim();
        // A section header rides in front of its first feature: "CPU : SSE3 = 1".
        if let Some((head, rest)) = part.split_once(" : ") {
            sections.push(BackendFeatures {
                backend: head.trim().to_string(),
                features: Vec::new(),
            });
            part = rest.trim();
        }
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.contains(char::is_whitespace) {
            continue;
        }
        if let Some(section) = sections.last_mut() {
            section.features.push((name.to_string(), value.to_string()));
        }
    }
    sections
}

/// The features the build's CPU backend uses: every feature of the `CPU` section whose value
/// is not `0` (ggml lists only those present, with `1`, plus counts such as `SVE_CNT = 16`;
/// the count entries are kept out, they are not features).
pub fn build_features(system_info: &str) -> Vec<String> {
    parse_system_info(system_info)
        .into_iter()
        .filter(|s| s.backend == "CPU")
        .flat_map(|s| s.features)
        .filter(|(name, value)| value != "0" && !name.ends_with("_CNT") && !name.ends_with("_VLEN"))
        .map(|(name, _)| name)
        .collect()
}

/// Features this project's builds leave off on purpose, so never reported as unused: AMX_INT8,
/// whose ggml kernels segfault on the first decode on some Sapphire Rapids and later CPUs
/// (llama.cpp#20824); `.cargo/config.toml` compiles llama.cpp with `-mno-amx-*` for that reason.
pub const OFF_ON_PURPOSE: &[&str] = &["AMX_INT8"];

/// Features the CPU offers that the build does not use, in the CPU list's order: each is speed
/// the build leaves unused on this machine (those in [`OFF_ON_PURPOSE`] excepted).
pub fn unused_features(cpu: &[String], build: &[String]) -> Vec<String> {
    cpu.iter()
        .filter(|f| !build.contains(f) && !OFF_ON_PURPOSE.contains(&f.as_str()))
        .cloned()
        .collect()
}

/// The note that marks timings measured on a build that leaves CPU features unused, e.g.
/// "portable build: AVX512, AVX512_VNNI unused"; `None` when the build uses all of them.
pub fn unused_note(unused: &[String]) -> Option<String> {
    (!unused.is_empty()).then(|| format!("portable build: {} unused", unused.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verbatim from this project's build machine (AMD EPYC, Zen 4): a `native` build, and
    /// the crate's default x86 build (ggml's default flags, GGML_NATIVE=OFF).
    const NATIVE_LINE: &str = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ";
    const DEFAULT_LINE: &str = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ";

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn x86_cpuinfo_flags_map_onto_ggml_names() {
        // The flags line of the build machine, cut to what matters and shuffled among others.
        let epyc = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu pni ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 avx512f avx512dq avx512bw avx512vbmi avx512_vbmi2 avx512_vnni avx512_bf16 sha_ni\n";
        assert_eq!(
            cpu_features_from_cpuinfo(epyc),
            names(&[
                "SSE3",
                "SSSE3",
                "AVX",
                "AVX2",
                "F16C",
                "FMA",
                "BMI2",
                "AVX512",
                "AVX512_VBMI",
                "AVX512_VNNI",
                "AVX512_BF16"
            ])
        );
        // An Atom/Celeron-class CPU: SSE4.2 but no AVX at all.
        let atom = "flags : fpu sse sse2 pni ssse3 sse4_1 sse4_2 popcnt";
        assert_eq!(cpu_features_from_cpuinfo(atom), names(&["SSE3", "SSSE3"]));
    }

    #[test]
    fn arm_cpuinfo_features_map_onto_ggml_names() {
        // Raspberry Pi 5 (Cortex-A76): dotprod and fp16, no i8mm, no SVE.
        let pi5 = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n";
        assert_eq!(
            cpu_features_from_cpuinfo(pi5),
            names(&["NEON", "ARM_FMA", "FP16_VA", "DOTPROD"])
        );
        // A Neoverse V1-class server core adds i8mm and SVE.
        let v1 = "Features : fp asimd asimdhp asimddp sve i8mm bf16";
        assert_eq!(
            cpu_features_from_cpuinfo(v1),
            names(&[
                "NEON",
                "ARM_FMA",
                "FP16_VA",
                "MATMUL_INT8",
                "SVE",
                "DOTPROD"
            ])
        );
        // Every ggml name in the table is reachable, and each appears once in a result.
        let all: Vec<&str> = CPUINFO_TO_GGML.iter().map(|(f, _)| *f).collect();
        let got = cpu_features(all);
        let distinct: BTreeSet<&str> = CPUINFO_TO_GGML.iter().map(|(_, n)| *n).collect();
        assert_eq!(got.len(), distinct.len());
    }

    #[test]
    fn system_info_lines_parse_into_build_features() {
        assert_eq!(
            build_features(DEFAULT_LINE),
            names(&[
                "SSE3",
                "SSSE3",
                "AVX",
                "AVX2",
                "F16C",
                "FMA",
                "BMI2",
                "LLAMAFILE",
                "OPENMP",
                "REPACK"
            ])
        );
        let native = build_features(NATIVE_LINE);
        assert!(native.contains(&"AVX512".to_string()), "{native:?}");
        assert!(native.contains(&"AVX512_BF16".to_string()), "{native:?}");
        // Other backends' sections and counts are not CPU features.
        let mixed = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : NEON = 1 | ARM_FMA = 1 | SVE = 1 | SVE_CNT = 16 | DOTPROD = 1 | OPENMP = 1 | ";
        assert_eq!(
            build_features(mixed),
            names(&["NEON", "ARM_FMA", "SVE", "DOTPROD", "OPENMP"])
        );
        let sections = parse_system_info(mixed);
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].backend, "CUDA");
        assert_eq!(sections[0].features[0], ("ARCHS".into(), "890".into()));
        // Empty or foreign text yields nothing rather than garbage.
        assert!(build_features("").is_empty());
        assert!(build_features("no features here").is_empty());
    }

    #[test]
    fn unused_features_are_what_the_cpu_has_and_the_build_lacks() {
        let cpu = cpu_features_from_cpuinfo("flags : pni ssse3 avx avx2 fma f16c bmi2 avx512f");
        assert_eq!(
            unused_features(&cpu, &build_features(DEFAULT_LINE)),
            names(&["AVX512"])
        );
        assert!(unused_features(&cpu, &build_features(NATIVE_LINE)).is_empty());
        assert_eq!(
            unused_note(&names(&["AVX2", "FMA"])).as_deref(),
            Some("portable build: AVX2, FMA unused")
        );
        assert_eq!(unused_note(&[]), None);
        // A Pi 5 on the crate's forced armv8-a build: NEON only.
        let pi5 = cpu_features_from_cpuinfo("Features : fp asimd fphp asimdhp asimddp");
        let armv8a = build_features("CPU : NEON = 1 | ARM_FMA = 1 | OPENMP = 1 | REPACK = 1 | ");
        assert_eq!(
            unused_features(&pi5, &armv8a),
            names(&["FP16_VA", "DOTPROD"])
        );
    }

    #[test]
    fn amx_left_off_on_purpose_is_not_unused_speed() {
        // A Sapphire Rapids CPU on the native build with AMX off (.cargo/config.toml): AVX-512
        // is used, AMX is off on purpose, and nothing is flagged as a portable build.
        let spr = cpu_features_from_cpuinfo("flags : pni avx avx2 avx512f avx512_vnni amx_int8");
        assert!(spr.contains(&"AMX_INT8".to_string()), "{spr:?}");
        let native =
            build_features("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | ");
        assert!(unused_features(&spr, &native).is_empty());
        // Without AVX-512 in the build, that (and only that) is unused speed.
        let avx2 = build_features("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | ");
        assert_eq!(
            unused_features(&spr, &avx2),
            names(&["AVX512", "AVX512_VNNI"])
        );
    }
}
