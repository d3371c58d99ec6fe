//! `compare`: model A against model B on the same suite — two runs, or two models of one run —
//! paired on shared (task, repetition) pairs.
//!
//! Why paired: both models answered the very same prompts, so the noise that is shared (a hard
//! task is hard for both) cancels in the per-pair difference; an unpaired test of the two scores
//! throws that away and misses real differences. For each model pair the comparison gives:
//! - the score difference A − B over the shared pairs, with a 95 % paired bootstrap interval. At
//!   model level the bootstrap is two-stage: draw tasks with replacement, then draw pairs within
//!   each drawn task — so the interval covers both "other tasks like these" and repetition noise,
//!   and does not collapse with one task or with one repetition. Per task it resamples the task's
//!   pairs (repetitions). Partial credit counts here (a pair's difference is in ½ points);
//! - an exact McNemar test on pass vs not-pass (see `significance.rs`), which ignores partial
//!   credit by design, and per task its Holm-adjusted p-value across the compared tasks;
//! - per hardware class, the ratio of generation throughputs (Σ tokens / Σ seconds), A / B, with
//!   a bootstrap interval that resamples each side's jobs independently (speed is not paired:
//!   the two models' jobs are different jobs, often on different workers).
//!
//! `flagged` marks a difference worth a reader's attention: at model level when the interval
//! excludes 0; per task when the interval excludes 0 *and* the Holm-adjusted McNemar p is below
//! 0.05 (a bootstrap over three repetitions is overconfident, and comparing many tasks flags some
//! by chance; the exact test and Holm guard against both); for speed when the ratio's interval
//! excludes 1. Pairs are (task, repetition) with a counted outcome on both sides; a side's second
//! outcome for the same pair is ignored (the coordinator deduplicates). Deterministic: every
//! bootstrap is seeded from the run ids and model names.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::bootstrap::{RESAMPLES, SplitMix64, percentile_interval, seed_for_parts};
use crate::outcome::{Outcome, Verdict};
use crate::significance::{holm, mcnemar_exact};
use crate::stats;

/// One side of a comparison: a run (its id and suite) and the outcomes to compare from it.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub run: &'a str,
    pub suite_name: &'a str,
    pub suite_version: &'a str,
    pub outcomes: &'a [Outcome],
}

/// Knobs of [`compare`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompareOptions {
    /// Compare even when the two sides ran different suites or suite versions.
    pub allow_suite_change: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompareError {
    #[error(
        "run {} used suite {} v{} but run {} used {} v{}; scores of different suite versions are \
         not comparable (pass --allow-suite-change to compare anyway)",
        .a.run, .a.suite_name, .a.suite_version, .b.run, .b.suite_name, .b.suite_version
    )]
    SuiteChanged { a: Box<SideRef>, b: Box<SideRef> },
    #[error("model {model:?} has no counted outcome in run {run}")]
    UnknownModel { run: String, model: String },
    #[error("runs {a_run} and {b_run} share no model; name the two models to compare")]
    NoSharedModel { a_run: String, b_run: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideRef {
    pub run: String,
    pub suite_name: String,
    pub suite_version: String,
}

/// The whole comparison; its JSON form is what `compare --format json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: SideRef,
    pub b: SideRef,
    /// The sides ran different suites or versions (only possible with `allow_suite_change`).
    pub suite_changed: bool,
    pub resamples: u64,
    pub confidence: f64,
    pub models: Vec<ModelComparison>,
}

/// A's model against B's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelComparison {
    pub model_a: String,
    pub model_b: String,
    /// Shared (task, repetition) pairs.
    pub pairs: u64,
    /// Scores over the shared pairs only.
    pub score_a: f64,
    pub score_b: f64,
    /// score_a − score_b.
    pub diff: f64,
    /// 95 % two-stage paired bootstrap (tasks, then pairs within tasks).
    pub diff_ci95: [f64; 2],
    pub mcnemar: McNemar,
    /// The interval excludes 0.
    pub flagged: bool,
    /// Tasks with at least one shared pair, in A's first-seen order.
    pub tasks: Vec<TaskComparison>,
    /// Hardware classes where both sides measured generation speed, sorted by name.
    pub speed: Vec<SpeedComparison>,
}

/// Pass vs not-pass on the shared pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Pairs where A passed and B did not.
    pub a_only: u64,
    /// Pairs where B passed and A did not.
    pub b_only: u64,
    /// Exact two-sided p-value.
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskComparison {
    pub task_id: String,
    pub pairs: u64,
    pub score_a: f64,
    pub score_b: f64,
    pub diff: f64,
    /// 95 % paired bootstrap over the task's pairs.
    pub diff_ci95: [f64; 2],
    pub mcnemar: McNemar,
    /// McNemar p after Holm's correction across this model pair's tasks (= p with one task).
    pub p_holm: f64,
    /// The interval excludes 0 and `p_holm` < 0.05.
    pub flagged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedComparison {
    pub hardware_class: String,
    pub jobs_a: u64,
    pub jobs_b: u64,
    pub gen_tokens_per_second_a: f64,
    pub gen_tokens_per_second_b: f64,
    /// a / b.
    pub ratio: f64,
    /// 95 % bootstrap, each side's jobs resampled independently.
    pub ratio_ci95: [f64; 2],
    /// The interval excludes 1.
    pub flagged: bool,
}

/// Compares `pairs` of models (A's name, B's name); with no pairs, every model name present on
/// both sides (in A's first-seen order) is compared with itself — the two-runs case.
pub fn compare(
    a: &Side,
    b: &Side,
    pairs: &[(String, String)],
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    let suite_changed = a.suite_name != b.suite_name || a.suite_version != b.suite_version;
    if suite_changed && !opts.allow_suite_change {
        return Err(CompareError::SuiteChanged {
            a: Box::new(side_ref(a)),
            b: Box::new(side_ref(b)),
        });
    }
    let names_a = model_names(a.outcomes);
    let names_b = model_names(b.outcomes);
    let pairs: Vec<(String, String)> = if pairs.is_empty() {
        let shared: Vec<(String, String)> = names_a
            .iter()
            .filter(|m| names_b.contains(*m))
            .map(|m| (m.to_string(), m.to_string()))
            .collect();
        if shared.is_empty() {
            return Err(CompareError::NoSharedModel {
                a_run: a.run.to_string(),
                b_run: b.run.to_string(),
            });
        }
        shared
    } else {
        pairs.to_vec()
    };
    let mut models = Vec::with_capacity(pairs.len());
    for (ma, mb) in &pairs {
        for (side, names, m) in [(a, &names_a, ma), (b, &names_b, mb)] {
            if !names.contains(&m.as_str()) {
                return Err(CompareError::UnknownModel {
                    run: side.run.to_string(),
                    model: m.clone(),
                });
            }
        }
        models.push(compare_models(a, b, ma, mb));
    }
    Ok(Comparison {
        a: side_ref(a),
        b: side_ref(b),
        suite_changed,
        resamples: RESAMPLES as u64,
        confidence: crate::bootstrap::CONFIDENCE,
        models,
    })
}

fn side_ref(s: &Side) -> SideRef {
    SideRef {
        run: s.run.to_string(),
        suite_name: s.suite_name.to_string(),
        suite_version: s.suite_version.to_string(),
    }
}

/// Counted models, first-seen order.
fn model_names(outs: &[Outcome]) -> Vec<&str> {
    let mut seen = BTreeSet::new();
    outs.iter()
        .filter(|o| o.counted && seen.insert(o.model.as_str()))
        .map(|o| o.model.as_str())
        .collect()
}

/// One shared (task, repetition): the two verdicts.
#[derive(Debug, Clone, Copy)]
struct Pair {
    a: Verdict,
    b: Verdict,
}

impl Pair {
    /// A − B in half-points, −2..=2.
    fn diff(self) -> i64 {
        self.a.half_points() as i64 - self.b.half_points() as i64
    }
}

fn compare_models(a: &Side, b: &Side, ma: &str, mb: &str) -> ModelComparison {
    // B's outcome per (task, repetition), first counted one wins.
    let mut b_by: HashMap<(&str, u32), &Outcome> = HashMap::new();
    for o in b.outcomes.iter().filter(|o| o.counted && o.model == mb) {
        b_by.entry((o.task_id.as_str(), o.repetition)).or_insert(o);
    }
    let mut used: BTreeSet<(&str, u32)> = BTreeSet::new();
    let mut task_order: Vec<&str> = Vec::new();
    let mut by_task: HashMap<&str, Vec<Pair>> = HashMap::new();
    for o in a.outcomes.iter().filter(|o| o.counted && o.model == ma) {
        let key = (o.task_id.as_str(), o.repetition);
        let Some(ob) = b_by.get(&key) else { continue };
        if !used.insert(key) {
            continue;
        }
        let entry = by_task.entry(key.0).or_insert_with(|| {
            task_order.push(key.0);
            Vec::new()
        });
        entry.push(Pair {
            a: o.verdict,
            b: ob.verdict,
        });
    }
    let groups: Vec<&[Pair]> = task_order
        .iter()
        .filter_map(|t| by_task.get(t).map(Vec::as_slice))
        .collect();
    let all: Vec<Pair> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let seed = |parts: &[&str]| {
        let mut p = vec![a.run, b.run, ma, mb];
        p.extend_from_slice(parts);
        seed_for_parts(&p)
    };

    let mut tasks: Vec<TaskComparison> = task_order
        .iter()
        .zip(&groups)
        .map(|(task, g)| {
            let (sa, sb, d) = scores(g);
            let ci = paired_ci(std::slice::from_ref(g), false, seed(&[task]), d);
            TaskComparison {
                task_id: (*task).to_string(),
                pairs: g.len() as u64,
                score_a: sa,
                score_b: sb,
                diff: d,
                diff_ci95: ci,
                mcnemar: mcnemar(g),
                p_holm: 1.0,
                flagged: false,
            }
        })
        .collect();
    let raw: Vec<f64> = tasks.iter().map(|t| t.mcnemar.p_value).collect();
    for (t, p) in tasks.iter_mut().zip(holm(&raw)) {
        t.p_holm = p;
        t.flagged = excludes(t.diff_ci95, 0.0) && p < 0.05;
    }

    let (sa, sb, d) = scores(&all);
    let ci = paired_ci(&groups, true, seed(&[]), d);
    ModelComparison {
        model_a: ma.to_string(),
        model_b: mb.to_string(),
        pairs: all.len() as u64,
        score_a: sa,
        score_b: sb,
        diff: d,
        diff_ci95: ci,
        mcnemar: mcnemar(&all),
        flagged: excludes(ci, 0.0),
        tasks,
        speed: speed(a, b, ma, mb, &seed),
    }
}

/// Score of A, score of B, and their difference over `pairs` (0s when empty).
fn scores(pairs: &[Pair]) -> (f64, f64, f64) {
    let n = pairs.len() as u64;
    let ha: u64 = pairs.iter().map(|p| p.a.half_points()).sum();
    let hb: u64 = pairs.iter().map(|p| p.b.half_points()).sum();
    let d: i64 = pairs.iter().map(|p| p.diff()).sum();
    (stats::ratio(ha, n), stats::ratio(hb, n), diff_ratio(d, n))
}

/// Σ half-point differences / (2 · pairs), 0 for no pair.
fn diff_ratio(d: i64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    d as f64 / (2.0 * n as f64)
}

fn mcnemar(pairs: &[Pair]) -> McNemar {
    let pass = |v: Verdict| v == Verdict::Pass;
    let a_only = pairs.iter().filter(|p| pass(p.a) && !pass(p.b)).count() as u64;
    let b_only = pairs.iter().filter(|p| pass(p.b) && !pass(p.a)).count() as u64;
    McNemar {
        a_only,
        b_only,
        p_value: mcnemar_exact(a_only, b_only),
    }
}

/// Paired bootstrap interval of the difference: with `draw_tasks`, each resample first draws as
/// many groups (tasks) as there are, with replacement; then, within each group, as many pairs as
/// it has. No pair gives [0, 0]; when every pair has the same difference no resample can differ,
/// so the interval is the point without drawing.
fn paired_ci(groups: &[&[Pair]], draw_tasks: bool, seed: u64, est: f64) -> [f64; 2] {
    let groups: Vec<&[Pair]> = groups.iter().copied().filter(|g| !g.is_empty()).collect();
    let Some(first) = groups.first().and_then(|g| g.first()) else {
        return [0.0, 0.0];
    };
    if groups
        .iter()
        .all(|g| g.iter().all(|p| p.diff() == first.diff()))
    {
        return [est, est];
    }
    let mut rng = SplitMix64::new(seed);
    let k = groups.len();
    let mut draws = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let (mut d, mut n) = (0i64, 0u64);
        for i in 0..k {
            let g = if draw_tasks {
                groups.get(rng.below(k))
            } else {
                groups.get(i)
            };
            let Some(g) = g else { continue };
            for _ in 0..g.len() {
                d += g.get(rng.below(g.len())).map_or(0, |p| p.diff());
            }
            n += g.len() as u64;
        }
        draws.push(diff_ratio(d, n));
    }
    let [lo, hi] = percentile_interval(draws, est);
    [lo.max(-1.0), hi.min(1.0)]
}

fn excludes(ci: [f64; 2], value: f64) -> bool {
    ci[0] > value || ci[1] < value
}

/// (tokens, ms) of the jobs with a measured generation phase, per hardware class.
fn gen_samples<'a>(outs: &'a [Outcome], model: &str) -> BTreeMap<&'a str, Vec<(u64, f64)>> {
    let mut by: BTreeMap<&str, Vec<(u64, f64)>> = BTreeMap::new();
    for o in outs.iter().filter(|o| o.counted && o.model == model) {
        let (tokens, ms) = o.tg();
        if ms.is_finite() && ms > 0.0 {
            by.entry(o.hardware_class.as_str())
                .or_default()
                .push((u64::from(tokens), ms));
        }
    }
    by
}

fn rate_of(samples: impl Iterator<Item = (u64, f64)>) -> Option<f64> {
    let (t, ms) = samples.fold((0u64, 0.0), |(t, m), (tok, ms)| {
        (t.saturating_add(tok), m + ms)
    });
    stats::rate(t, ms)
}

fn speed(
    a: &Side,
    b: &Side,
    ma: &str,
    mb: &str,
    seed: &dyn Fn(&[&str]) -> u64,
) -> Vec<SpeedComparison> {
    let sa = gen_samples(a.outcomes, ma);
    let sb = gen_samples(b.outcomes, mb);
    let mut out = Vec::new();
    for (class, ja) in &sa {
        let Some(jb) = sb.get(class) else { continue };
        let (Some(ra), Some(rb)) = (rate_of(ja.iter().copied()), rate_of(jb.iter().copied()))
        else {
            continue;
        };
        if rb <= 0.0 {
            continue; // a ratio to zero speed is not a measurement
        }
        let ratio = ra / rb;
        let mut rng = SplitMix64::new(seed(&["speed", class]));
        let mut draws = Vec::with_capacity(RESAMPLES);
        let resample = |rng: &mut SplitMix64, js: &[(u64, f64)]| {
            rate_of((0..js.len()).filter_map(|_| js.get(rng.below(js.len())).copied()))
        };
        for _ in 0..RESAMPLES {
            if let (Some(x), Some(y)) = (resample(&mut rng, ja), resample(&mut rng, jb))
                && y > 0.0
                && (x / y).is_finite()
            {
                draws.push(x / y);
            }
        }
        let ci = percentile_interval(draws, ratio);
        out.push(SpeedComparison {
            hardware_class: (*class).to_string(),
            jobs_a: ja.len() as u64,
            jobs_b: jb.len() as u64,
            gen_tokens_per_second_a: ra,
            gen_tokens_per_second_b: rb,
            ratio,
            ratio_ci95: ci,
            flagged: excludes(ci, 1.0),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Fail as F, Partial as H, Pass as P};

    fn pairs(v: &[(Verdict, Verdict)]) -> Vec<Pair> {
        v.iter().map(|&(a, b)| Pair { a, b }).collect()
    }

    #[test]
    fn paired_bootstrap_by_hand() {
        // Pairs (P,F) and (F,F): differences 2 and 0 half-points, point (2 + 0)/(2·2) = ½.
        // A resample of 2 pairs: both "2" (p ¼) → 1, both "0" (p ¼) → 0, mixed (p ½) → ½;
        // ≈ 500 of 2000 resamples are 0 and ≈ 500 are 1, so the interval is [0, 1]: not flagged.
        let g = pairs(&[(P, F), (F, F)]);
        let (_, _, d) = scores(&g);
        assert_eq!(d, 0.5);
        assert_eq!(paired_ci(&[&g], false, 11, d), [0.0, 1.0]);
        // Pairs (P,F), (P,F), (P,H): differences 2, 2, 1 → point 5/6. The smallest resample is
        // "1" three times, (1+1+1)/6 = ½, with p 1/27 ≈ 3.7 % > 2.5 %; the largest, "2" three
        // times, p 8/27, gives 1: the interval [½, 1] excludes 0.
        let g = pairs(&[(P, F), (P, F), (P, H)]);
        let (sa, sb, d) = scores(&g);
        assert_eq!((sa, sb, d), (1.0, 1.0 / 6.0, 5.0 / 6.0));
        assert_eq!(paired_ci(&[&g], false, 11, d), [0.5, 1.0]);
        // every pair the same difference: no resample can differ
        let g = pairs(&[(P, F), (P, F)]);
        assert_eq!(paired_ci(&[&g], true, 11, 1.0), [1.0, 1.0]);
        assert_eq!(paired_ci(&[], true, 11, 0.0), [0.0, 0.0]);
    }

    #[test]
    fn two_stage_bootstrap_by_hand() {
        // Task 1 differences (2, 2), task 2 (0, 0): the within-task draws change nothing, and
        // the task draws are as in the cluster bootstrap: both task 1 (p ¼) → 1, both task 2
        // (p ¼) → 0 → [0, 1] around the point ½.
        let t1 = pairs(&[(P, F), (P, F)]);
        let t2 = pairs(&[(F, F), (P, P)]);
        assert_eq!(paired_ci(&[&t1, &t2], true, 5, 0.5), [0.0, 1.0]);
    }

    #[test]
    fn mcnemar_counts_pass_vs_not_pass_only() {
        // (P,F) and (P,H) are A-only; (H,P) B-only; (H,F) and (P,P) concordant for McNemar.
        let g = pairs(&[(P, F), (P, H), (H, P), (H, F), (P, P)]);
        let m = mcnemar(&g);
        assert_eq!((m.a_only, m.b_only), (2, 1));
        // b = 2, c = 1, n = 3: 2 · (C(3,0) + C(3,1)) / 8 = 2 · 4/8 = 1
        assert_eq!(m.p_value, 1.0);
    }
}
