//! Throughput tests (llama-bench's `pp<N>` / `tg<N>` / `pp<P>+tg<G>`) as farm results: the test
//! itself ([`ThroughputTest`], parsed from a plan's `throughput = [...]` entries), one measured
//! repetition ([`ThroughputSample`], one job's result) and their aggregate per hardware class,
//! model and test ([`ThroughputRow`]: mean ± sample stddev of t/s over the repetitions, as
//! llama-bench reports over its own).
//!
//! Throughput results are not graded: they never enter a score, the leaderboard, compare or the
//! adaptive statistics. The coordinator gives them here apart from the graded outcomes.

use serde::{Deserialize, Serialize};

pub use benchfarm_domain::{
    MAX_GEN_TOKENS, MAX_PROMPT_TOKENS, ThroughputTest, ThroughputTestError,
};

/// One counted throughput result: one repetition of one test, on one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputSample {
    pub job_id: String,
    pub attempt: u32,
    pub repetition: u32,
    pub model: String,
    /// Model file size in bytes and parameter count (0: unknown, e.g. a scripted model).
    pub model_size: u64,
    pub model_n_params: u64,
    pub hardware_class: String,
    pub worker: String,
    pub backend: String,
    pub threads: u32,
    pub test: ThroughputTest,
    /// The timed runs of this repetition, in nanoseconds (llama-bench's `samples_ns`).
    pub samples_ns: Vec<u64>,
    /// The CPU features the worker's build uses (ggml's names).
    pub build_features: Vec<String>,
}

impl ThroughputSample {
    /// Tokens per second of this repetition: tokens ÷ mean sample time; `None` with no
    /// positive time (nothing to divide by).
    pub fn tokens_per_second(&self) -> Option<f64> {
        let mean_ns = mean(
            &self
                .samples_ns
                .iter()
                .map(|&n| n as f64)
                .collect::<Vec<_>>(),
        )?;
        (mean_ns > 0.0).then(|| f64::from(self.test.n_tokens()) * 1e9 / mean_ns)
    }
}

/// One line of the llama-bench-shaped table: a test of a model on a hardware class, over every
/// counted repetition there (all workers of the class together).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputRow {
    pub hardware_class: String,
    pub model: String,
    pub model_size: u64,
    pub model_n_params: u64,
    pub backend: String,
    pub threads: u32,
    /// llama-bench's test name (`pp512`, `tg128`, `pp512+tg128`).
    pub test: String,
    pub n_prompt: u32,
    pub n_gen: u32,
    /// Repetitions with a measured time.
    pub repetitions: u32,
    /// t/s of each repetition, in job order.
    pub samples_ts: Vec<f64>,
    /// The worker (its name) that measured each of `samples_ts`, in the same order: which
    /// machine of the class gave which figure.
    #[serde(default)]
    pub workers: Vec<String>,
    /// Mean and sample standard deviation (n − 1, 0 for one repetition) of `samples_ts`.
    pub avg_ts: f64,
    pub stddev_ts: f64,
    /// The build's CPU features on this class (the union over its workers' results).
    pub build_features: Vec<String>,
}

/// Groups `samples` by (hardware class, model, test) — classes by name, then models and tests in
/// first-seen order — into one row each. Samples without a measured time are left out of the
/// statistics; a group with none of them has no row.
pub fn aggregate_throughput(samples: &[ThroughputSample]) -> Vec<ThroughputRow> {
    let mut rows: Vec<ThroughputRow> = Vec::new();
    let mut sorted: Vec<&ThroughputSample> = samples.iter().collect();
    // Stable: within a class, first-seen order of models and tests is kept.
    sorted.sort_by(|a, b| a.hardware_class.cmp(&b.hardware_class));
    for s in sorted {
        let Some(ts) = s.tokens_per_second() else {
            continue;
        };
        let name = s.test.name();
        let row = match rows
            .iter_mut()
            .find(|r| r.hardware_class == s.hardware_class && r.model == s.model && r.test == name)
        {
            Some(row) => row,
            None => {
                rows.push(ThroughputRow {
                    hardware_class: s.hardware_class.clone(),
                    model: s.model.clone(),
                    model_size: s.model_size,
                    model_n_params: s.model_n_params,
                    backend: s.backend.clone(),
                    threads: s.threads,
                    test: name,
                    n_prompt: s.test.n_prompt,
                    n_gen: s.test.n_gen,
                    repetitions: 0,
                    samples_ts: Vec::new(),
                    workers: Vec::new(),
                    avg_ts: 0.0,
                    stddev_ts: 0.0,
                    build_features: Vec::new(),
                });
                rows.last_mut().expect("just pushed")
            }
        };
        row.samples_ts.push(ts);
        row.workers.push(s.worker.clone());
        for f in &s.build_features {
            if !row.build_features.contains(f) {
                row.build_features.push(f.clone());
            }
        }
    }
    for row in &mut rows {
        row.repetitions = row.samples_ts.len() as u32;
        row.avg_ts = mean(&row.samples_ts).unwrap_or(0.0);
        row.stddev_ts = sample_stddev(&row.samples_ts);
    }
    rows
}

/// `report` with the run's throughput `samples` (its counted throughput results): their rows,
/// and those jobs counted as done (a throughput job is measured, never graded).
pub fn with_throughput(mut report: crate::Report, samples: &[ThroughputSample]) -> crate::Report {
    report.jobs_measured = samples.len() as u64;
    report.jobs_done = report.jobs_done.saturating_add(report.jobs_measured);
    report.throughput = aggregate_throughput(samples);
    report
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Sample standard deviation (n − 1), 0 for fewer than two values: llama-bench's `stdev`.
fn sample_stddev(v: &[f64]) -> f64 {
    let Some(m) = mean(v).filter(|_| v.len() >= 2) else {
        return 0.0;
    };
    let ss: f64 = v.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (v.len() - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(class: &str, test: &str, ns: &[u64]) -> ThroughputSample {
        ThroughputSample {
            job_id: "j".into(),
            attempt: 1,
            repetition: 0,
            model: "m".into(),
            model_size: 0,
            model_n_params: 0,
            hardware_class: class.into(),
            worker: "w".into(),
            backend: "CPU".into(),
            threads: 2,
            test: ThroughputTest::parse(test).unwrap(),
            samples_ns: ns.to_vec(),
            build_features: vec!["AVX2".into()],
        }
    }

    #[test]
    fn mean_and_stddev_match_hand_computation() {
        // tg8 in 0.1 s, 0.08 s and 0.05 s: 80, 100 and 160 t/s. Mean 113.33…; deviations
        // −33.33, −13.33, 46.67; squares 1111.1 + 177.8 + 2177.8 = 3466.7; ÷ 2 = 1733.3;
        // √ = 41.633.
        let rows = aggregate_throughput(&[
            sample("x", "tg8", &[100_000_000]),
            sample("x", "tg8", &[80_000_000]),
            // Two timed runs in one repetition: their mean time (0.05 s) counts.
            sample("x", "tg8", &[40_000_000, 60_000_000]),
        ]);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.test.as_str(), r.repetitions), ("tg8", 3));
        assert!((r.avg_ts - 340.0 / 3.0).abs() < 1e-9, "{}", r.avg_ts);
        assert!(
            (r.stddev_ts - 41.633_319_989).abs() < 1e-6,
            "{}",
            r.stddev_ts
        );
    }

    #[test]
    fn groups_by_class_model_and_test_and_skips_untimed() {
        let rows = aggregate_throughput(&[
            sample("b", "pp16", &[1_000_000]),
            sample("a", "pp16", &[2_000_000]),
            sample("a", "tg8", &[0]),
            sample("a", "pp16", &[2_000_000]),
        ]);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            (rows[0].hardware_class.as_str(), rows[0].repetitions),
            ("a", 2)
        );
        assert_eq!(rows[0].avg_ts, 8000.0);
        assert_eq!(rows[0].stddev_ts, 0.0);
        assert_eq!(
            (rows[1].hardware_class.as_str(), rows[1].avg_ts),
            ("b", 16000.0)
        );
        assert_eq!(rows[1].build_features, vec!["AVX2".to_string()]);
    }
}
