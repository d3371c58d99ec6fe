//! `worker bench`: llama-bench's measurements from our engine — the pure half.
//!
//! llama.cpp's `llama-bench` is the yardstick every llama.cpp user knows, so the bench follows
//! its procedure (run by [`crate::LlamaEngine::bench`]: a warm-up run, a fresh KV cache per
//! repetition, random tokens rather than a templated prompt, the prompt in `n_batch` chunks for
//! `pp`, one token per decode for `tg`) and prints its records with llama-bench's own field names
//! so that tools reading llama-bench output read ours. Here: the test list ([`ThroughputTest`]), the
//! statistics over repetitions ([`BenchRecord`]), the token source and the timestamp; the output
//! formats are in [`format`]. All of it is pure and unit-tested.

pub mod format;

use serde::Serialize;

/// One test: `pp512` (`n_prompt` 512), `tg128` (`n_gen` 128) or `pp512+tg128` (both in one run);
/// the same type a plan's `throughput = [...]` names, defined once in `benchfarm-domain`.
pub use benchfarm_domain::ThroughputTest;

/// The tests llama-bench runs for `-p`, `-n` and `--pg`, in its order: every `pp` test, every
/// `tg` test, then every combined one. A size of 0 means "no such test" (`-n 0`: prompts only).
pub fn plan_tests(prompts: &[u32], gens: &[u32], pairs: &[(u32, u32)]) -> Vec<ThroughputTest> {
    let pp = prompts.iter().filter(|&&p| p > 0).map(|&p| ThroughputTest {
        n_prompt: p,
        n_gen: 0,
    });
    let tg = gens.iter().filter(|&&g| g > 0).map(|&g| ThroughputTest {
        n_prompt: 0,
        n_gen: g,
    });
    let pg = pairs
        .iter()
        .filter(|(p, g)| p + g > 0)
        .map(|&(n_prompt, n_gen)| ThroughputTest { n_prompt, n_gen });
    pp.chain(tg).chain(pg).collect()
}

/// What the runner fills in about the model and machine, shared by a run's records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BenchContext {
    pub build_commit: String,
    pub cpu_info: String,
    pub backends: String,
    pub model_filename: String,
    pub model_type: String,
    pub model_size: u64,
    pub model_n_params: u64,
    pub n_batch: u32,
    pub n_ubatch: u32,
    /// The build's CPU features (ggml's names): not a llama-bench field, but what the figures
    /// depend on most besides the CPU.
    pub build_features: Vec<String>,
}

/// One test's result, with llama-bench's field names and meanings (`avg_ts` is the mean of the
/// per-repetition rates, as llama-bench computes it, not total tokens over total time).
/// Field order is llama-bench's, and so is the JSON's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRecord {
    pub build_commit: String,
    pub cpu_info: String,
    pub backends: String,
    pub model_filename: String,
    pub model_type: String,
    pub model_size: u64,
    pub model_n_params: u64,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub n_threads: u32,
    pub n_prompt: u32,
    pub n_gen: u32,
    /// When the test started, ISO 8601 UTC (`2026-12-01T21:40:00Z`).
    pub test_time: String,
    pub avg_ns: u64,
    pub stddev_ns: u64,
    pub avg_ts: f64,
    pub stddev_ts: f64,
    pub samples_ns: Vec<u64>,
    pub samples_ts: Vec<f64>,
    pub build_features: Vec<String>,
}

impl BenchRecord {
    /// The record of `test` from its repetitions' durations in nanoseconds.
    pub fn new(
        ctx: &BenchContext,
        test: ThroughputTest,
        n_threads: u32,
        test_time: String,
        samples_ns: Vec<u64>,
    ) -> Self {
        let samples_ts: Vec<f64> = samples_ns
            .iter()
            .map(|&ns| {
                if ns == 0 {
                    0.0
                } else {
                    1e9 * f64::from(test.n_tokens()) / ns as f64
                }
            })
            .collect();
        let ns_f: Vec<f64> = samples_ns.iter().map(|&ns| ns as f64).collect();
        BenchRecord {
            build_commit: ctx.build_commit.clone(),
            cpu_info: ctx.cpu_info.clone(),
            backends: ctx.backends.clone(),
            model_filename: ctx.model_filename.clone(),
            model_type: ctx.model_type.clone(),
            model_size: ctx.model_size,
            model_n_params: ctx.model_n_params,
            n_batch: ctx.n_batch,
            n_ubatch: ctx.n_ubatch,
            n_threads,
            n_prompt: test.n_prompt,
            n_gen: test.n_gen,
            test_time,
            avg_ns: mean(&ns_f).round() as u64,
            stddev_ns: stddev(&ns_f).round() as u64,
            avg_ts: mean(&samples_ts),
            stddev_ts: stddev(&samples_ts),
            samples_ns,
            samples_ts,
            build_features: ctx.build_features.clone(),
        }
    }

    pub fn test(&self) -> ThroughputTest {
        ThroughputTest {
            n_prompt: self.n_prompt,
            n_gen: self.n_gen,
        }
    }
}

/// Arithmetic mean; 0 for no values.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Sample standard deviation (n − 1), 0 for fewer than two values — llama-bench's `stdev`.
pub fn stddev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    let ss: f64 = v.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (v.len() - 1) as f64).sqrt()
}

/// Pseudo-random token ids for the tests, like llama-bench's `std::rand() % n_vocab`: the
/// content of the tokens does not change the work a decode does, and no chat template or
/// tokenizer is involved. SplitMix64, fixed seed: every run decodes the same tokens.
#[derive(Debug, Clone)]
pub struct TokenSource {
    state: u64,
    n_vocab: u32,
}

impl TokenSource {
    pub fn new(n_vocab: u32, seed: u64) -> Self {
        TokenSource {
            state: seed,
            n_vocab: n_vocab.max(1),
        }
    }

    /// The next token id, in `0..n_vocab`.
    pub fn next_token(&mut self) -> u32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % u64::from(self.n_vocab)) as u32
    }
}

/// `secs` since the Unix epoch as ISO 8601 UTC, `YYYY-MM-DDTHH:MM:SSZ` (llama-bench's
/// `test_time`). Days to a civil date by Howard Hinnant's algorithm.
pub fn iso8601_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_are_planned_and_named_like_llama_bench() {
        let tests = plan_tests(&[512, 0], &[128], &[(512, 128)]);
        let names: Vec<String> = tests.iter().map(ThroughputTest::name).collect();
        assert_eq!(names, ["pp512", "tg128", "pp512+tg128"]);
        assert_eq!(tests[2].n_tokens(), 640);
        assert!(plan_tests(&[0], &[0], &[]).is_empty());
    }

    #[test]
    fn statistics_match_llama_bench() {
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(stddev(&[5.0]), 0.0);
        assert_eq!(mean(&[1.0, 2.0, 3.0]), 2.0);
        // Sample standard deviation: sqrt(((1-2)^2 + 0 + (3-2)^2) / 2) = 1.
        assert!((stddev(&[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn records_average_the_per_repetition_rates() {
        let ctx = BenchContext {
            model_filename: "m.gguf".into(),
            ..BenchContext::default()
        };
        let test = ThroughputTest {
            n_prompt: 0,
            n_gen: 100,
        };
        // 100 tokens in 1 s and in 0.5 s: 100 and 200 t/s, mean 150 (not 200/1.5 = 133).
        let r = BenchRecord::new(&ctx, test, 2, "t".into(), vec![1_000_000_000, 500_000_000]);
        assert_eq!(r.samples_ts, vec![100.0, 200.0]);
        assert_eq!(r.avg_ts, 150.0);
        assert!((r.stddev_ts - 70.710_678).abs() < 1e-3);
        assert_eq!(r.avg_ns, 750_000_000);
        assert_eq!(r.n_threads, 2);
        assert_eq!(r.test(), test);
        // A zero duration cannot give an infinite rate.
        let z = BenchRecord::new(&ctx, test, 1, "t".into(), vec![0]);
        assert_eq!(z.avg_ts, 0.0);
    }

    #[test]
    fn tokens_stay_in_the_vocabulary_and_repeat_per_seed() {
        let mut a = TokenSource::new(49_152, 1);
        let mut b = TokenSource::new(49_152, 1);
        let xs: Vec<u32> = (0..1000).map(|_| a.next_token()).collect();
        assert!(xs.iter().all(|&t| t < 49_152));
        assert_eq!(xs, (0..1000).map(|_| b.next_token()).collect::<Vec<_>>());
        // Not stuck on one value.
        assert!(xs.iter().collect::<std::collections::BTreeSet<_>>().len() > 900);
    }

    #[test]
    fn timestamps_are_iso8601_utc() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_796_161_200), "2026-12-01T21:40:00Z");
    }
}
