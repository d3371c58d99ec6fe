//! The 95 % confidence interval of a model's score: a seeded cluster bootstrap over tasks.
//!
//! Why a *cluster* bootstrap: the repetitions of one task are not independent draws — a model
//! that cannot do task X fails it every time — so resampling individual jobs would pretend there
//! is far more evidence than there is and give intervals that are too narrow. The unit of
//! sampling is therefore the task: each resample draws as many tasks as the model has graded
//! tasks, with replacement, and takes *all* jobs of each drawn task; the resample's score is
//! Σ half-points / (2 · Σ jobs) over the drawn tasks (a ratio estimator, so tasks with more
//! graded jobs weigh more, exactly as in the point estimate).
//!
//! - [`RESAMPLES`] = 2000 resamples, percentile interval (2.5th and 97.5th percentile of the
//!   resampled scores, type-7 interpolation as in `stats.rs`).
//! - The generator is SplitMix64, seeded by FNV-1a of `run_id` ‖ NUL ‖ `model`: the same run gives
//!   byte-identical reports on every machine and Rust version (std's hasher guarantees neither),
//!   and one model's interval does not move when another model is added to the plan.
//! - With no graded task the interval is [0, 0]; with a single task, or when every task has the
//!   same score (compared exactly, as rationals), no resample can differ from the point, so the
//!   interval collapses to the point without drawing.
//! - The percentile interval of a skewed resample distribution need not contain the point
//!   estimate; the bounds are widened to include it, then clamped to [0, 1], so consumers can
//!   rely on 0 ≤ lo ≤ score ≤ hi ≤ 1.
//!
//! The second interval, [`ci95_repetitions`], answers a different question. The task interval
//! says how the score would move on *other tasks like these*, and no number of repetitions
//! shrinks it below the spread between tasks. The repetitions interval keeps the task set fixed
//! and resamples each task's jobs (its repetitions) with replacement, within the task — a
//! stratified bootstrap — so it says how much of the score is sampling noise on *this* suite, and
//! it is the one that more repetitions shrink. A task whose jobs all scored the same contributes
//! no noise; when every task is like that (greedy decoding, say) the interval is the point.

use crate::stats::{quantile_sorted, ratio};

/// Number of bootstrap resamples per model.
pub const RESAMPLES: usize = 2000;

/// Nominal coverage of the interval.
pub const CONFIDENCE: f64 = 0.95;

/// One task's evidence for a model: score in half-points (2·pass + partial) and number of jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cluster {
    pub half_points: u64,
    pub jobs: u64,
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, well-mixed, and trivially reproducible, which is
/// all a bootstrap needs; pulling in `rand` would add a dependency and version-dependent streams.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform index in 0..n by Lemire's multiply-shift (bias < n/2⁶⁴, irrelevant here); 0 for n=0.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// FNV-1a, 64 bit: a stable hash for turning the run id into a seed.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bootstrap seed for one model of one run.
pub fn seed_for(run_id: &str, model: &str) -> u64 {
    let mut bytes = Vec::with_capacity(run_id.len() + model.len() + 1);
    bytes.extend_from_slice(run_id.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(model.as_bytes());
    fnv1a(&bytes)
}

/// The bootstrap seed for one labelled interval: FNV-1a of the parts joined by NUL, so
/// `seed_for_parts(&[run, model]) == seed_for(run, model)` and each extra label (a hardware
/// class, `"repetitions"`) gives an independent, equally reproducible stream.
pub fn seed_for_parts(parts: &[&str]) -> u64 {
    fnv1a(parts.join("\0").as_bytes())
}

/// The point estimate over all clusters: Σ half-points / (2 · Σ jobs), 0 when there are no jobs.
pub fn point(clusters: &[Cluster]) -> f64 {
    let (h, n) = totals(clusters.iter());
    ratio(h, n)
}

fn totals<'a>(clusters: impl Iterator<Item = &'a Cluster>) -> (u64, u64) {
    clusters.fold((0u64, 0u64), |(h, n), c| {
        (h.saturating_add(c.half_points), n.saturating_add(c.jobs))
    })
}

/// The cluster-bootstrap percentile interval `[lo, hi]` for the score over `clusters`.
/// Empty clusters (no jobs) carry no evidence and are dropped before resampling.
pub fn ci95(clusters: &[Cluster], seed: u64) -> [f64; 2] {
    let clusters: Vec<Cluster> = clusters.iter().copied().filter(|c| c.jobs > 0).collect();
    let est = point(&clusters);
    let Some(first) = clusters.first() else {
        return [0.0, 0.0];
    };
    // a/b == c/d  ⇔  a·d == c·b; u128 so the cross products cannot overflow.
    let same_score = clusters.iter().all(|c| {
        u128::from(c.half_points) * u128::from(first.jobs)
            == u128::from(first.half_points) * u128::from(c.jobs)
    });
    if clusters.len() == 1 || same_score {
        return [est, est];
    }

    let mut rng = SplitMix64::new(seed);
    let k = clusters.len();
    let mut scores = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let (mut h, mut n) = (0u64, 0u64);
        for _ in 0..k {
            if let Some(c) = clusters.get(rng.below(k)) {
                h = h.saturating_add(c.half_points);
                n = n.saturating_add(c.jobs);
            }
        }
        scores.push(ratio(h, n));
    }
    scores.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let lo = quantile_sorted(&scores, tail).unwrap_or(est);
    let hi = quantile_sorted(&scores, 1.0 - tail).unwrap_or(est);
    enclose(lo, hi, est)
}

/// The over-repetitions interval `[lo, hi]`: `tasks` holds, per task, the half-points (0, 1, 2)
/// of each of its jobs; each resample redraws every task's jobs from that task's own jobs, with
/// replacement and as many as it has, and scores Σ half-points / (2 · Σ jobs) — so the task set
/// and the number of jobs per task never change, only which repetitions are drawn. Tasks without
/// jobs are dropped; no job gives [0, 0]; no spread within any task gives [point, point].
pub fn ci95_repetitions(tasks: &[Vec<u64>], seed: u64) -> [f64; 2] {
    let tasks: Vec<&Vec<u64>> = tasks.iter().filter(|t| !t.is_empty()).collect();
    let (h, n) = tasks.iter().fold((0u64, 0u64), |(h, n), t| {
        (
            h.saturating_add(t.iter().sum::<u64>()),
            n.saturating_add(t.len() as u64),
        )
    });
    let est = ratio(h, n);
    if n == 0 {
        return [0.0, 0.0];
    }
    if tasks.iter().all(|t| t.iter().all(|x| Some(x) == t.first())) {
        return [est, est];
    }
    let mut rng = SplitMix64::new(seed);
    let mut scores = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let mut h = 0u64;
        for t in &tasks {
            for _ in 0..t.len() {
                h = h.saturating_add(t.get(rng.below(t.len())).copied().unwrap_or(0));
            }
        }
        scores.push(ratio(h, n));
    }
    let [lo, hi] = percentile_interval(scores, est);
    enclose(lo, hi, est)
}

/// The 2.5th and 97.5th percentile of `scores`, widened to enclose `est` but not clamped (a
/// score difference or a speed ratio is not confined to [0, 1]); shared by every bootstrap here.
pub fn percentile_interval(mut scores: Vec<f64>, est: f64) -> [f64; 2] {
    scores.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let lo = quantile_sorted(&scores, tail).unwrap_or(est);
    let hi = quantile_sorted(&scores, 1.0 - tail).unwrap_or(est);
    [lo.min(est), hi.max(est)]
}

/// Widens `[lo, hi]` to contain the point estimate and clamps it to [0, 1] (see module docs).
fn enclose(lo: f64, hi: f64, est: f64) -> [f64; 2] {
    [lo.min(est).clamp(0.0, 1.0), hi.max(est).clamp(0.0, 1.0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(half_points: u64, jobs: u64) -> Cluster {
        Cluster { half_points, jobs }
    }

    #[test]
    fn splitmix_reference_stream() {
        // Reference values of SplitMix64 seeded with 0 (as in Vigna's splitmix64.c), computed
        // independently with a 6-line Python port of the C code: 0xe220a8397b1dcdaf, ...
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 16_294_208_416_658_607_535);
        assert_eq!(r.next_u64(), 7_960_286_522_194_355_700);
        assert_eq!(r.next_u64(), 487_617_019_471_545_679);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SplitMix64::new(42);
        for n in [1usize, 2, 3, 7, 1000] {
            for _ in 0..200 {
                assert!(r.below(n) < n);
            }
        }
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn fnv_reference() {
        // FNV-1a 64 of "" is the offset basis; of "a" the published test vector 0xaf63dc4c8601ec8c.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(seed_for("run", "ab"), seed_for("runa", "b"));
    }

    #[test]
    fn no_evidence_is_zero() {
        assert_eq!(ci95(&[], 1), [0.0, 0.0]);
        assert_eq!(ci95(&[c(0, 0), c(0, 0)], 1), [0.0, 0.0]);
    }

    #[test]
    fn single_task_collapses() {
        // one task, 3 jobs, 2 pass + 1 fail: 4 half-points / 6 = 2/3
        let ci = ci95(&[c(4, 3)], 7);
        assert_eq!(ci, [4.0 / 6.0, 4.0 / 6.0]);
    }

    #[test]
    fn identical_scores_collapse_even_with_different_sizes() {
        // 1/2 jobs pass (2/4 half-points) and 2/4 pass (4/8): both 0.5
        let ci = ci95(&[c(2, 2), c(4, 4), c(0, 0)], 7);
        assert_eq!(ci, [0.5, 0.5]);
    }

    #[test]
    fn two_opposite_tasks_span_everything() {
        // Two one-job tasks scoring 1 and 0. A resample draws 2 tasks: both "1" (p ¼) → 1,
        // both "0" (p ¼) → 0, mixed (p ½) → ½. About 500 of 2000 resamples are 0 and about 500
        // are 1, so the 2.5th percentile (rank ≈ 50) is 0 and the 97.5th (rank ≈ 1950) is 1.
        let ci = ci95(&[c(2, 1), c(0, 1)], seed_for("r", "m"));
        assert_eq!(ci, [0.0, 1.0]);
        assert_eq!(point(&[c(2, 1), c(0, 1)]), 0.5);
    }

    #[test]
    fn deterministic_and_seed_sensitive() {
        let clusters: Vec<Cluster> = (0..12).map(|i| c(i % 7, 3)).collect();
        let a = ci95(&clusters, seed_for("run-1", "m"));
        assert_eq!(a, ci95(&clusters, seed_for("run-1", "m")));
        // 12 tasks with scores spread over 0..1: the interval is a proper sub-range of [0, 1]
        // around the point: half-points 0+1+..+6 + 0+..+4 = 21 + 10 = 31 over 2·36 → 31/72 ≈ 0.43.
        let p = point(&clusters);
        assert_eq!(p, 31.0 / 72.0);
        assert!(a[0] < p && p < a[1], "{a:?} around {p}");
        assert!(a[0] > 0.0 && a[1] < 1.0, "{a:?}");
        // Another seed gives another sample; with 2000 resamples the bounds stay close.
        let b = ci95(&clusters, seed_for("run-2", "m"));
        assert!(
            (a[0] - b[0]).abs() < 0.05 && (a[1] - b[1]).abs() < 0.05,
            "{a:?} vs {b:?}"
        );
    }

    #[test]
    fn enclose_contains_point_and_stays_in_unit_range() {
        // a skewed percentile interval [0.3, 0.4] that misses the point 0.25 becomes [0.25, 0.4]
        assert_eq!(enclose(0.3, 0.4, 0.25), [0.25, 0.4]);
        assert_eq!(enclose(0.1, 0.2, 0.25), [0.1, 0.25]);
        assert_eq!(enclose(-1e-17, 1.0 + 1e-15, 0.5), [0.0, 1.0]);
    }

    #[test]
    fn seed_parts_extend_seed_for() {
        assert_eq!(seed_for_parts(&["run", "m"]), seed_for("run", "m"));
        assert_ne!(
            seed_for_parts(&["run", "m", "repetitions"]),
            seed_for("run", "m")
        );
    }

    #[test]
    fn repetitions_interval_degenerate_cases() {
        assert_eq!(ci95_repetitions(&[], 1), [0.0, 0.0]);
        assert_eq!(ci95_repetitions(&[vec![], vec![]], 1), [0.0, 0.0]);
        // n = 1: one task, one pass → the point 1
        assert_eq!(ci95_repetitions(&[vec![2]], 1), [1.0, 1.0]);
        // tasks that differ from each other but not between repetitions: no sampling noise, so
        // the interval is the point (2+2+2 + 0+0+0) / (2·6) = ½ although the task interval of
        // the same data is [0, 1]
        let constant = [vec![2, 2, 2], vec![0, 0, 0]];
        assert_eq!(ci95_repetitions(&constant, 1), [0.5, 0.5]);
    }

    #[test]
    fn repetitions_interval_one_noisy_task() {
        // One task with a pass and a fail (half-points 2, 0). A resample draws 2 jobs: both pass
        // (p ¼) → 1, both fail (p ¼) → 0, mixed (p ½) → ½; ≈ 500 of 2000 are 0 and ≈ 500 are 1,
        // so the 2.5th percentile is 0 and the 97.5th is 1.
        assert_eq!(ci95_repetitions(&[vec![2, 0]], 3), [0.0, 1.0]);
        // Add a constant task of 2 passes: resamples are (h + 4) / 8 with h ∈ {0, 2, 4} at
        // p ¼, ½, ¼ → ½, ¾, 1; the interval is [½, 1] around the point 6/8 = ¾.
        assert_eq!(ci95_repetitions(&[vec![2, 0], vec![2, 2]], 3), [0.5, 1.0]);
    }

    #[test]
    fn repetitions_interval_shrinks_with_repetitions_and_is_deterministic() {
        // The same 50 % pass rate on two tasks, with 4 and with 40 repetitions per task.
        let few: Vec<Vec<u64>> = vec![vec![2, 0, 2, 0], vec![0, 2, 0, 2]];
        let many: Vec<Vec<u64>> = vec![
            (0..40).map(|i| if i % 2 == 0 { 2 } else { 0 }).collect(),
            (0..40).map(|i| if i % 2 == 1 { 2 } else { 0 }).collect(),
        ];
        let a = ci95_repetitions(&few, 9);
        let b = ci95_repetitions(&many, 9);
        assert_eq!(a, ci95_repetitions(&few, 9));
        assert!(b[1] - b[0] < a[1] - a[0], "{a:?} vs {b:?}");
        assert!(a[0] <= 0.5 && 0.5 <= a[1] && b[0] <= 0.5 && 0.5 <= b[1]);
    }

    #[test]
    fn cluster_interval_is_wider_than_job_level() {
        // 4 tasks × 5 reps, two tasks always pass, two always fail. Job-level resampling of the 20
        // jobs would give a half-width of about 1.96·√(0.25/20) ≈ 0.22; resampling 4 tasks gives
        // √(0.25/4) ≈ 0.25 standard error, so the interval must be much wider than ±0.22.
        let clusters = [c(10, 5), c(10, 5), c(0, 5), c(0, 5)];
        let [lo, hi] = ci95(&clusters, seed_for("wide", "m"));
        assert!(hi - lo >= 0.5, "[{lo}, {hi}]");
    }
}
