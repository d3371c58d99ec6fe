//! Timings that cannot be true, and grades the coordinator and the worker disagree on.
//!
//! A worker reports its own timings, and a broken or tampered one can report anything: a negative
//! duration, tokens generated in zero wall time, a generation speed a hundred times its peers'.
//! Such an outcome still counts for its grade, but its timings are flagged and kept out of every
//! timing aggregate rather than silently averaged in. The rules, in order (the first that applies
//! is the reason given):
//! - a negative timing (wall, load, prompt, ttft, generation or decode);
//! - a wall time of 0 for a job that processed tokens;
//! - a generation speed above [`SPEED_FACTOR`] × the median speed of the outcomes of the same
//!   hardware class (over the outcomes the first two rules let through).
//!
//! NaN and infinite timings are "not measured" (see `stats::valid_ms`), not implausible.

use std::borrow::Borrow;
use std::collections::HashMap;

use crate::outcome::Outcome;
use crate::stats;

/// How far above its hardware class's median a generation speed may be before it is not believed.
pub const SPEED_FACTOR: f64 = 100.0;

/// Why each outcome's timings are implausible, by position in `outcomes` (`None`: plausible).
pub fn implausible<O: Borrow<Outcome>>(outcomes: &[O]) -> Vec<Option<String>> {
    let outcomes: Vec<&Outcome> = outcomes.iter().map(Borrow::borrow).collect();
    let mut reasons: Vec<Option<String>> = outcomes.iter().map(|o| own_reason(o)).collect();
    let mut speeds: HashMap<&str, Vec<f64>> = HashMap::new();
    for (o, reason) in outcomes.iter().zip(&reasons) {
        if reason.is_none()
            && let Some(speed) = speed(o)
        {
            speeds
                .entry(o.hardware_class.as_str())
                .or_default()
                .push(speed);
        }
    }
    let medians: HashMap<&str, f64> = speeds
        .into_iter()
        .filter_map(|(class, s)| Some((class, stats::quantile(&s, 0.5)?)))
        .collect();
    for (o, reason) in outcomes.iter().zip(reasons.iter_mut()) {
        if reason.is_some() {
            continue;
        }
        if let (Some(speed), Some(median)) = (speed(o), medians.get(o.hardware_class.as_str()))
            && *median > 0.0
            && speed > SPEED_FACTOR * median
        {
            *reason = Some(format!(
                "{speed:.0} tok/s, over {SPEED_FACTOR:.0}x the median {median:.1} tok/s of its hardware class"
            ));
        }
    }
    reasons
}

/// The rules that need no other outcome.
fn own_reason(o: &Outcome) -> Option<String> {
    let timings = [
        ("wall_ms", o.wall_ms),
        ("load_ms", o.load_ms),
        ("prompt_ms", o.prompt_ms),
        ("ttft_ms", o.ttft_ms),
        ("gen_ms", o.gen_ms),
        ("decode_ms", o.decode_ms),
    ];
    if let Some((name, ms)) = timings.iter().find(|(_, ms)| ms.is_finite() && *ms < 0.0) {
        return Some(format!("negative {name} ({ms})"));
    }
    let tokens = u64::from(o.gen_tokens) + u64::from(o.prompt_tokens);
    if o.wall_ms == 0.0 && tokens > 0 {
        return Some(format!("{tokens} tokens in a wall time of 0 ms"));
    }
    None
}

/// Generated tokens per second, when measured.
fn speed(o: &Outcome) -> Option<f64> {
    let (tokens, ms) = o.tg();
    (tokens > 0 && ms.is_finite() && ms > 0.0).then(|| f64::from(tokens) / ms * 1000.0)
}

/// `o` with every timing set to "not measured", so no timing aggregate uses it.
pub(crate) fn without_timings(o: &Outcome) -> Outcome {
    Outcome {
        wall_ms: f64::NAN,
        load_ms: f64::NAN,
        prompt_ms: f64::NAN,
        ttft_ms: f64::NAN,
        gen_ms: f64::NAN,
        decode_ms: f64::NAN,
        ..o.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(class: &str, gen_tokens: u32, gen_ms: f64, wall_ms: f64) -> Outcome {
        Outcome {
            hardware_class: class.into(),
            gen_tokens,
            gen_ms,
            wall_ms,
            load_ms: 0.0,
            prompt_ms: 1.0,
            ttft_ms: 1.0,
            ..Outcome::default()
        }
    }

    #[test]
    fn each_rule_flags_and_plausible_timings_pass() {
        let outcomes = [
            job("a", 100, 1000.0, 1100.0), // 100 tok/s
            job("a", 100, 1000.0, 1100.0),
            job("a", 100, 0.5, 600.0), // 200,000 tok/s: 2000x the median
            job("a", 100, 1000.0, -5.0),
            job("a", 100, 1000.0, 0.0),
            job("b", 100, 0.5, 600.0), // alone in its class: its own median
            job("a", 0, f64::NAN, f64::NAN), // not measured: not implausible
        ];
        let reasons = implausible(&outcomes);
        assert_eq!(reasons[0], None);
        assert_eq!(reasons[1], None);
        assert_eq!(
            reasons[2].as_deref(),
            Some("200000 tok/s, over 100x the median 100.0 tok/s of its hardware class")
        );
        assert_eq!(reasons[3].as_deref(), Some("negative wall_ms (-5)"));
        assert_eq!(
            reasons[4].as_deref(),
            Some("100 tokens in a wall time of 0 ms")
        );
        assert_eq!(reasons[5], None);
        assert_eq!(reasons[6], None);
    }
}
