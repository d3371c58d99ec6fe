//! Adaptive repetitions: after a model's minimum number of repetitions, should it get more?
//!
//! A pure rule the coordinator evaluates each time a model finishes a repetition of all its
//! tasks (repetitions are added for *all* of a model's tasks, so the design stays balanced). It
//! uses the two figures that repetitions can improve:
//! - the half-width of the model's interval *over repetitions with the task set fixed*
//!   ([`crate::bootstrap::ci95_repetitions`]) against `target_ci` — not the task interval, which
//!   no number of repetitions shrinks below the spread between tasks;
//! - the relative standard deviation (stddev / mean) of per-job generation tok/s in each hardware
//!   class against `target_rsd` (the Phoronix Test Suite's rule is 3.5 %).
//!
//! Order of the checks, which is also the reason the report gives:
//! 1. fewer than `min` repetitions (or no graded job yet) → more;
//! 2. every task answered identically across its repetitions (answer text compared byte for
//!    byte, at least two answers per task) → stop, *deterministic*: greedy decoding gives the
//!    same text every time, so more repetitions cannot change the score; the report says so
//!    instead of spending them. If a speed target is set and not met, timings still want more
//!    repetitions, so this only stops once the speed target holds (or at `max`);
//! 3. every set target met → stop, *target met*; no target set → stop, *no target* (the plain
//!    fixed-repetitions design: `min` repetitions);
//! 4. `max` reached → stop, *max reached*; otherwise more.
//!
//! `max` below `min` is read as `max = min`. Deterministic: the bootstrap is seeded by the caller.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::bootstrap::ci95_repetitions;
use crate::outcome::Outcome;
use crate::timings::{Summary, gen_rate};

/// `repetitions = { min = 3, max = 15, target_ci = 0.05, target_rsd = 0.035 }` in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveRule {
    pub min: u32,
    pub max: u32,
    /// Largest acceptable half-width of the over-repetitions 95 % interval (score units, 0..1).
    #[serde(default)]
    pub target_ci: Option<f64>,
    /// Largest acceptable relative standard deviation of generation tok/s per hardware class.
    #[serde(default)]
    pub target_rsd: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every target set in the rule holds.
    TargetMet,
    /// `max` repetitions were run without meeting the targets.
    MaxReached,
    /// Answers are identical across repetitions: more of them cannot move the score.
    Deterministic,
    /// The rule sets no target: `min` repetitions is the design.
    NoTarget,
}

impl StopReason {
    /// What the report prints.
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::TargetMet => "target met",
            StopReason::MaxReached => "max reached",
            StopReason::Deterministic => "deterministic (identical answers across repetitions)",
            StopReason::NoTarget => "no target (fixed repetitions)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Schedule one more repetition of every task of the model.
    More,
    Stop(StopReason),
}

/// The decision and the figures it was taken on, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub decision: Decision,
    pub repetitions: u32,
    /// Half-width of the over-repetitions interval; `None` without a graded job.
    pub ci_half_width: Option<f64>,
    /// RSD of per-job generation tok/s per hardware class (sorted); `None` with < 2 samples.
    pub gen_rsd: Vec<(String, Option<f64>)>,
    pub deterministic: bool,
}

/// Evaluates `rule` for one model: `outcomes` are its results so far (uncounted ones are
/// ignored), `repetitions` how many repetitions of its tasks have ended, `seed` the bootstrap
/// seed (e.g. `seed_for_parts(&[run, model, "repetitions"])`, as the report uses).
pub fn assess(
    rule: &AdaptiveRule,
    outcomes: &[Outcome],
    repetitions: u32,
    seed: u64,
) -> Assessment {
    let outs: Vec<&Outcome> = outcomes.iter().filter(|o| o.counted).collect();
    let max = rule.max.max(rule.min);

    let mut task_order: Vec<&str> = Vec::new();
    let mut by_task: HashMap<&str, Vec<&Outcome>> = HashMap::new();
    for o in &outs {
        by_task
            .entry(o.task_id.as_str())
            .or_insert_with(|| {
                task_order.push(o.task_id.as_str());
                Vec::new()
            })
            .push(o);
    }
    let groups: Vec<&Vec<&Outcome>> = task_order.iter().filter_map(|t| by_task.get(t)).collect();
    let half_points: Vec<Vec<u64>> = groups
        .iter()
        .map(|g| g.iter().map(|o| o.verdict.half_points()).collect())
        .collect();
    let ci_half_width = (!outs.is_empty()).then(|| {
        let [lo, hi] = ci95_repetitions(&half_points, seed);
        (hi - lo) / 2.0
    });
    let deterministic = !groups.is_empty()
        && groups.iter().all(|g| {
            g.len() >= 2
                && g.iter()
                    .all(|o| g.first().is_some_and(|f| f.answer == o.answer))
        });

    let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for o in &outs {
        let entry = rates.entry(o.hardware_class.as_str()).or_default();
        if let Some(r) = gen_rate(o) {
            entry.push(r);
        }
    }
    let gen_rsd: Vec<(String, Option<f64>)> = rates
        .iter()
        .map(|(class, xs)| {
            let rsd = if xs.len() >= 2 {
                Summary::of(xs).rsd()
            } else {
                None
            };
            ((*class).to_string(), rsd)
        })
        .collect();

    let rsd_ok = rule.target_rsd.is_none_or(|t| {
        !gen_rsd.is_empty() && gen_rsd.iter().all(|(_, r)| r.is_some_and(|r| r <= t))
    });
    let ci_ok = rule
        .target_ci
        .is_none_or(|t| ci_half_width.is_some_and(|h| h <= t));

    let decision = if repetitions < rule.min.min(max) || outs.is_empty() {
        if repetitions >= max {
            Decision::Stop(StopReason::MaxReached)
        } else {
            Decision::More
        }
    } else if deterministic && rsd_ok {
        Decision::Stop(StopReason::Deterministic)
    } else if rule.target_ci.is_none() && rule.target_rsd.is_none() {
        Decision::Stop(StopReason::NoTarget)
    } else if ci_ok && rsd_ok {
        Decision::Stop(StopReason::TargetMet)
    } else if repetitions >= max {
        Decision::Stop(StopReason::MaxReached)
    } else {
        Decision::More
    };
    Assessment {
        decision,
        repetitions,
        ci_half_width,
        gen_rsd,
        deterministic,
    }
}

/// [`assess`]'s decision alone.
pub fn decide(rule: &AdaptiveRule, outcomes: &[Outcome], repetitions: u32, seed: u64) -> Decision {
    assess(rule, outcomes, repetitions, seed).decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Verdict;

    const RULE: AdaptiveRule = AdaptiveRule {
        min: 3,
        max: 15,
        target_ci: Some(0.05),
        target_rsd: None,
    };

    /// `reps` repetitions of tasks t0..t{tasks}; answer and verdict from `f(task, rep)`.
    fn run(tasks: usize, reps: u32, f: impl Fn(usize, u32) -> (String, Verdict)) -> Vec<Outcome> {
        let mut out = Vec::new();
        for rep in 0..reps {
            for t in 0..tasks {
                let (answer, verdict) = f(t, rep);
                out.push(Outcome {
                    task_id: format!("t{t}"),
                    repetition: rep,
                    verdict,
                    answer,
                    hardware_class: "cpu".into(),
                    gen_tokens: 100,
                    gen_ms: 1000.0,
                    ..Default::default()
                });
            }
        }
        out
    }

    fn constant(t: usize, _: u32) -> (String, Verdict) {
        let v = if t.is_multiple_of(2) {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        (format!("answer {t}"), v)
    }

    /// Answers that change every repetition, with verdicts alternating pass / fail.
    fn noisy(t: usize, rep: u32) -> (String, Verdict) {
        let v = if (rep as usize + t).is_multiple_of(2) {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        (format!("answer {t} take {rep}"), v)
    }

    #[test]
    fn below_min_always_more() {
        assert_eq!(decide(&RULE, &run(3, 2, constant), 2, 1), Decision::More);
        assert_eq!(decide(&RULE, &[], 5, 1), Decision::More);
        // no graded job even at max: stop, nothing more to learn by waiting
        assert_eq!(
            decide(&RULE, &[], 15, 1),
            Decision::Stop(StopReason::MaxReached)
        );
    }

    #[test]
    fn constant_answers_stop_at_min_as_deterministic() {
        let a = assess(&RULE, &run(3, 3, constant), 3, 1);
        assert_eq!(a.decision, Decision::Stop(StopReason::Deterministic));
        assert!(a.deterministic);
        // no spread within a task → the over-repetitions interval is the point: half-width 0
        assert_eq!(a.ci_half_width, Some(0.0));
        assert_eq!(a.gen_rsd, [("cpu".to_string(), Some(0.0))]);
    }

    #[test]
    fn one_answer_per_task_is_not_evidence_of_determinism() {
        let rule = AdaptiveRule { min: 1, ..RULE };
        let a = assess(&rule, &run(3, 1, constant), 1, 1);
        assert!(!a.deterministic);
        // but the interval has collapsed, so the CI target holds
        assert_eq!(a.decision, Decision::Stop(StopReason::TargetMet));
    }

    #[test]
    fn noisy_answers_grow_to_max() {
        let rule = AdaptiveRule {
            max: 6,
            target_ci: Some(0.01),
            ..RULE
        };
        assert_eq!(decide(&rule, &run(4, 3, noisy), 3, 7), Decision::More);
        assert_eq!(decide(&rule, &run(4, 5, noisy), 5, 7), Decision::More);
        assert_eq!(
            decide(&rule, &run(4, 6, noisy), 6, 7),
            Decision::Stop(StopReason::MaxReached)
        );
    }

    #[test]
    fn noisy_answers_meet_a_reachable_target() {
        // 4 tasks, each half pass: with 3 reps the half-width is far above 0.1; with 60 reps it
        // is about 1.96 · √(¼ / 240) ≈ 0.063 < 0.1.
        let rule = AdaptiveRule {
            max: 100,
            target_ci: Some(0.1),
            ..RULE
        };
        let early = assess(&rule, &run(4, 3, noisy), 3, 7);
        assert_eq!(early.decision, Decision::More);
        assert!(early.ci_half_width.unwrap_or(0.0) > 0.1, "{early:?}");
        let late = assess(&rule, &run(4, 60, noisy), 60, 7);
        assert_eq!(
            late.decision,
            Decision::Stop(StopReason::TargetMet),
            "{late:?}"
        );
    }

    #[test]
    fn speed_target_keeps_deterministic_models_going() {
        let rule = AdaptiveRule {
            target_rsd: Some(0.035),
            ..RULE
        };
        // identical answers, but generation time alternates 1000 / 1500 ms: rates 100 and 66.7
        // tok/s, rsd ≈ 0.2 > 0.035 → more, even though the answers are deterministic
        let mut outs = run(3, 3, constant);
        for (i, o) in outs.iter_mut().enumerate() {
            o.gen_ms = if i % 2 == 0 { 1000.0 } else { 1500.0 };
        }
        let a = assess(&rule, &outs, 3, 1);
        assert!(a.deterministic);
        assert_eq!(a.decision, Decision::More);
        assert_eq!(
            decide(&rule, &outs, 15, 1),
            Decision::Stop(StopReason::MaxReached)
        );
        // steady speed: the same data stops as deterministic
        assert_eq!(
            decide(&rule, &run(3, 3, constant), 3, 1),
            Decision::Stop(StopReason::Deterministic)
        );
    }

    #[test]
    fn no_target_stops_at_min_and_max_below_min_is_min() {
        let rule = AdaptiveRule {
            min: 3,
            max: 1,
            target_ci: None,
            target_rsd: None,
        };
        assert_eq!(decide(&rule, &run(2, 2, noisy), 2, 1), Decision::More);
        assert_eq!(
            decide(&rule, &run(2, 3, noisy), 3, 1),
            Decision::Stop(StopReason::NoTarget)
        );
    }

    #[test]
    fn deterministic_for_a_seed() {
        let outs = run(4, 5, noisy);
        assert_eq!(assess(&RULE, &outs, 5, 3), assess(&RULE, &outs, 5, 3));
    }
}
