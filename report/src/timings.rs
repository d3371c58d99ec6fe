//! Timing distributions per cell: median, mean, standard deviation and p90 of wall seconds, time
//! to first token, and per-job prompt and generation rates — for all jobs, and for warm and cold
//! (model-loading) jobs apart, with the load time on its own.
//!
//! Why cold and warm apart: a cold job's wall time includes loading the weights, which can dwarf
//! the generation itself for a small model; mixing them makes "Time" depend on how the scheduler
//! happened to place jobs. Why per-job rates here besides the token-weighted rate of
//! [`crate::Timing`]: the token-weighted rate is the best single throughput figure, but its
//! spread across jobs (is this worker steady?) needs one rate per job. A job's rate exists only
//! when its phase has a finite, positive duration (see `stats::rate`); other timings follow the
//! `stats::valid_ms` rule. Every summary is total: no sample gives `n = 0` and `None`s.

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;
use crate::stats;

/// Distribution of one measurement over a cell's jobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Jobs with a valid sample.
    pub n: u64,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    /// Sample standard deviation (n−1); 0 for a single sample.
    pub stddev: Option<f64>,
    pub p90: Option<f64>,
}

impl Summary {
    /// Summary of valid samples (the caller filters).
    pub fn of(xs: &[f64]) -> Summary {
        Summary {
            n: xs.len() as u64,
            mean: stats::mean(xs),
            median: stats::quantile(xs, 0.5),
            stddev: (!xs.is_empty()).then(|| stats::sample_stddev(xs)),
            p90: stats::quantile(xs, 0.9),
        }
    }

    /// Relative standard deviation stddev / mean; `None` without samples or with a zero mean.
    pub fn rsd(&self) -> Option<f64> {
        match (self.stddev, self.mean) {
            (Some(s), Some(m)) if m != 0.0 && m.is_finite() && s.is_finite() => Some(s / m.abs()),
            _ => None,
        }
    }
}

/// Timings of one group of jobs (all, warm or cold).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseTimings {
    pub jobs: u64,
    pub wall_seconds: Summary,
    pub ttft_ms: Summary,
    /// Per-job prompt_tokens / prompt seconds.
    pub prompt_tokens_per_second: Summary,
    /// Per-job gen_tokens / gen seconds.
    pub gen_tokens_per_second: Summary,
}

/// The timing distributions of one cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingDetail {
    pub all: PhaseTimings,
    /// Jobs that found the model loaded.
    pub warm: PhaseTimings,
    /// Jobs that loaded the model first.
    pub cold: PhaseTimings,
    /// Load milliseconds of the cold jobs.
    pub load_ms: Summary,
}

/// Per-job generation rate, when the job measured a positive generation time.
pub fn gen_rate(o: &Outcome) -> Option<f64> {
    let (tokens, ms) = o.tg();
    stats::rate(u64::from(tokens), ms)
}

fn prompt_rate(o: &Outcome) -> Option<f64> {
    stats::rate(u64::from(o.prompt_tokens), o.prompt_ms)
}

fn phase(outs: &[&Outcome]) -> PhaseTimings {
    let valid = |f: fn(&Outcome) -> f64| -> Vec<f64> {
        outs.iter()
            .map(|o| f(o))
            .filter(|&ms| stats::valid_ms(ms))
            .collect()
    };
    let wall: Vec<f64> = valid(|o| o.wall_ms).iter().map(|ms| ms / 1000.0).collect();
    let prompt: Vec<f64> = outs.iter().filter_map(|o| prompt_rate(o)).collect();
    let gen_rates: Vec<f64> = outs.iter().filter_map(|o| gen_rate(o)).collect();
    PhaseTimings {
        jobs: outs.len() as u64,
        wall_seconds: Summary::of(&wall),
        ttft_ms: Summary::of(&valid(|o| o.ttft_ms)),
        prompt_tokens_per_second: Summary::of(&prompt),
        gen_tokens_per_second: Summary::of(&gen_rates),
    }
}

/// The timing distributions of a slice of outcomes.
pub fn detail(outs: &[&Outcome]) -> TimingDetail {
    let (cold, warm): (Vec<&Outcome>, Vec<&Outcome>) = outs.iter().partition(|o| o.cold);
    let load: Vec<f64> = cold
        .iter()
        .map(|o| o.load_ms)
        .filter(|&ms| stats::valid_ms(ms))
        .collect();
    TimingDetail {
        all: phase(outs),
        warm: phase(&warm),
        cold: phase(&cold),
        load_ms: Summary::of(&load),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(wall_ms: f64, cold: bool, load_ms: f64, gen_tokens: u32, gen_ms: f64) -> Outcome {
        Outcome {
            wall_ms,
            cold,
            load_ms,
            gen_tokens,
            gen_ms,
            prompt_tokens: 100,
            prompt_ms: 100.0,
            ttft_ms: 50.0,
            ..Default::default()
        }
    }

    #[test]
    fn empty_is_all_none() {
        let d = detail(&[]);
        assert_eq!(d.all.jobs, 0);
        assert_eq!(d.all.wall_seconds, Summary::default());
        assert_eq!(d.load_ms.rsd(), None);
    }

    #[test]
    fn single_job() {
        // n = 1: mean = median = p90 = the value, standard deviation 0
        let o = job(2000.0, false, 0.0, 50, 1000.0);
        let d = detail(&[&o]);
        let w = &d.all.wall_seconds;
        assert_eq!(
            (w.n, w.mean, w.median, w.stddev, w.p90),
            (1, Some(2.0), Some(2.0), Some(0.0), Some(2.0))
        );
        // 50 tokens / 1 s
        assert_eq!(d.all.gen_tokens_per_second.mean, Some(50.0));
        // 100 tokens / 0.1 s
        assert_eq!(d.all.prompt_tokens_per_second.median, Some(1000.0));
        assert_eq!(d.warm.jobs, 1);
        assert_eq!(d.cold.jobs, 0);
        assert_eq!(d.load_ms.n, 0);
    }

    #[test]
    fn cold_and_warm_apart() {
        // warm walls 1, 2, 3 s; cold walls 10, 20 s with loads 8000 and 16000 ms (and a NaN
        // wall that is skipped); gen 100 tokens in 500 / 1000 / 2000 ms → 200, 100, 50 tok/s.
        let jobs = [
            job(1000.0, false, 0.0, 100, 500.0),
            job(2000.0, false, 0.0, 100, 1000.0),
            job(3000.0, false, 0.0, 100, 2000.0),
            job(10_000.0, true, 8000.0, 100, 0.0),
            job(20_000.0, true, 16_000.0, 100, -1.0),
            job(f64::NAN, true, f64::NAN, 0, f64::NAN),
        ];
        let refs: Vec<&Outcome> = jobs.iter().collect();
        let d = detail(&refs);
        assert_eq!((d.all.jobs, d.warm.jobs, d.cold.jobs), (6, 3, 3));
        // warm: mean 2, median 2, stddev √(((1)² + 0 + 1²)/2) = 1, p90 h = 2·0.9 = 1.8 → 2.8
        let w = &d.warm.wall_seconds;
        assert_eq!(
            (w.mean, w.median, w.stddev),
            (Some(2.0), Some(2.0), Some(1.0))
        );
        assert!((w.p90.unwrap_or(0.0) - 2.8).abs() < 1e-12);
        // cold: 10 and 20 s → mean 15, stddev √((25 + 25)/1) = √50
        let c = &d.cold.wall_seconds;
        assert_eq!((c.n, c.mean), (2, Some(15.0)));
        assert!((c.stddev.unwrap_or(0.0) - 50f64.sqrt()).abs() < 1e-12);
        // load: 8000 and 16000 → mean 12000, the NaN skipped
        assert_eq!((d.load_ms.n, d.load_ms.mean), (2, Some(12_000.0)));
        // rates exist only for the three warm jobs: mean (200 + 100 + 50) / 3
        let g = &d.all.gen_tokens_per_second;
        assert_eq!(g.n, 3);
        assert!((g.mean.unwrap_or(0.0) - 350.0 / 3.0).abs() < 1e-9);
        assert_eq!(g.median, Some(100.0));
        assert_eq!(d.cold.gen_tokens_per_second.n, 0);
        // all walls: 1, 2, 3, 10, 20 s; median 3
        assert_eq!(d.all.wall_seconds.median, Some(3.0));
    }

    #[test]
    fn rsd_zero_variance_and_zero_mean() {
        let s = Summary::of(&[5.0, 5.0, 5.0]);
        assert_eq!(s.rsd(), Some(0.0));
        // {1, 3}: mean 2, stddev √2 → rsd √2 / 2
        let s = Summary::of(&[1.0, 3.0]);
        assert!((s.rsd().unwrap_or(0.0) - 2f64.sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(Summary::of(&[0.0, 0.0]).rsd(), None);
    }
}
