//! Small, total numeric helpers: verdict counts, means, percentiles, standard deviation, rates.
//!
//! Every function is defined on every input: empty slices give `None` (or 0 where the caller
//! needs a number, documented per function) and non-finite samples are filtered out by
//! [`valid_ms`] before they get here, so no NaN can leak into a report through these helpers.
//!
//! Choices:
//! - percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7, the
//!   default of numpy and R), so the median of an even-sized sample is the midpoint;
//! - standard deviations are *sample* standard deviations (Bessel's n−1), because repetitions are
//!   a sample of what the model would do; fewer than two values give 0 (no spread observed).

use serde::{Deserialize, Serialize};

use crate::outcome::Verdict;

/// Verdict tallies for one slice of outcomes (a model, a task, a category, a hardware class).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pass: u64,
    pub partial: u64,
    pub fail: u64,
}

impl Counts {
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Pass => self.pass += 1,
            Verdict::Partial => self.partial += 1,
            Verdict::Fail => self.fail += 1,
        }
    }

    pub fn n(&self) -> u64 {
        self.pass + self.partial + self.fail
    }

    /// Score in half-points: 2·pass + partial.
    pub fn half_points(&self) -> u64 {
        2 * self.pass + self.partial
    }

    /// (pass + ½·partial) / n, and 0 when there is nothing to score.
    pub fn score(&self) -> f64 {
        ratio(self.half_points(), self.n())
    }
}

/// half_points / (2·n) as f64, 0 when n is 0. Shared with the bootstrap so that the point estimate
/// and every resample go through the very same (correctly rounded) division.
pub fn ratio(half_points: u64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    half_points as f64 / (2.0 * n as f64)
}

/// Keeps the timings that can be trusted: finite and not negative. Zero stays (a scripted model
/// really can answer in 0 ms); NaN, ±∞ and negative values come from missing measurements.
pub fn valid_ms(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// Arithmetic mean, `None` for an empty sample. A running mean rather than Σ/n, so that huge but
/// finite samples (a clock glitch of 1e308 ms) give a finite mean instead of overflowing to ∞.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut m = 0.0;
    for (i, x) in xs.iter().enumerate() {
        m += (x - m) / (i + 1) as f64;
    }
    Some(m)
}

/// The p-th quantile (p in 0..=1, clamped) of a sample, type-7 interpolation; `None` when empty.
/// Sorts a copy with `total_cmp` so that even a stray NaN cannot make the sort panic.
pub fn quantile(xs: &[f64], p: f64) -> Option<f64> {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, p)
}

/// [`quantile`] on an already sorted sample (the bootstrap sorts once and reads two quantiles).
pub fn quantile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let p = if p.is_nan() { 0.5 } else { p.clamp(0.0, 1.0) };
    let h = last as f64 * p;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    let (a, b) = (*sorted.get(lo)?, *sorted.get(hi)?);
    if lo == hi || a == b {
        // Also keeps ∞ samples from turning into ∞ − ∞ = NaN.
        return Some(a);
    }
    Some(a + (h - lo as f64) * (b - a))
}

/// Sample standard deviation (n−1); 0 for fewer than two values.
pub fn sample_stddev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    // Identical values have no spread; the mean of equal floats can differ from them in the last
    // bit, which would print as a stddev of 8e-18.
    if xs.iter().all(|x| *x == xs[0]) {
        return 0.0;
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

/// Tokens per second from summed tokens and summed milliseconds; `None` when no time was
/// measured (a rate over zero time is undefined, not infinite).
pub fn rate(tokens: u64, ms: f64) -> Option<f64> {
    if !(ms.is_finite() && ms > 0.0) {
        return None;
    }
    // A subnormal duration can still overflow the quotient; ∞ tok/s is not a measurement.
    Some(tokens as f64 / (ms / 1000.0)).filter(|r| r.is_finite())
}

#[cfg(test)]
mod tests {
    #[test]
    fn identical_values_have_exactly_zero_spread() {
        // 0.05 three times: the float mean is not exactly 0.05, the naive sum of squares is not 0.
        assert_eq!(super::sample_stddev(&[0.05, 0.05, 0.05]), 0.0);
        assert!(super::sample_stddev(&[0.05, 0.05, 0.1]) > 0.0);
    }

    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn counts_score() {
        let mut c = Counts::default();
        for v in [
            Verdict::Pass,
            Verdict::Pass,
            Verdict::Partial,
            Verdict::Fail,
        ] {
            c.add(v);
        }
        // (2 + ½·1) / 4 = 2.5 / 4 = 0.625
        assert_eq!(c.n(), 4);
        assert_eq!(c.half_points(), 5);
        assert_eq!(c.score(), 0.625);
        assert_eq!(Counts::default().score(), 0.0);
    }

    #[test]
    fn mean_and_empty() {
        // (1 + 2 + 6) / 3 = 3
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(mean(&[]), None);
        // Σ would overflow to ∞; the running mean stays at 1e308.
        assert_eq!(mean(&[1e308, 1e308]), Some(1e308));
    }

    #[test]
    fn quantiles_type7() {
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        // median of 1..10: h = 9·0.5 = 4.5 → x[4] + 0.5·(x[5]−x[4]) = 5 + 0.5 = 5.5
        assert!(close(quantile(&xs, 0.5).unwrap(), 5.5));
        // p90: h = 9·0.9 = 8.1 → x[8] + 0.1·(x[9]−x[8]) = 9 + 0.1 = 9.1
        assert!(close(quantile(&xs, 0.9).unwrap(), 9.1));
        assert_eq!(quantile(&xs, 0.0), Some(1.0));
        assert_eq!(quantile(&xs, 1.0), Some(10.0));
        // unsorted input, odd size: median of {3, 1, 2} is 2
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        // out-of-range p is clamped rather than indexing out of bounds
        assert_eq!(quantile(&xs, 5.0), Some(10.0));
        assert_eq!(quantile(&xs, -1.0), Some(1.0));
        assert_eq!(
            quantile(&[f64::INFINITY, f64::INFINITY], 0.5),
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn stddev_sample() {
        // {1, 1, 0}: mean 2/3, squared deviations 1/9 + 1/9 + 4/9 = 6/9, /(3−1) = 1/3, √ = 0.57735
        assert!(close(
            sample_stddev(&[1.0, 1.0, 0.0]),
            (1.0f64 / 3.0).sqrt()
        ));
        assert_eq!(sample_stddev(&[0.5]), 0.0);
        assert_eq!(sample_stddev(&[]), 0.0);
        assert_eq!(sample_stddev(&[0.25, 0.25, 0.25]), 0.0);
    }

    #[test]
    fn rates() {
        // 300 tokens over 1500 ms = 300 / 1.5 s = 200 tok/s
        assert_eq!(rate(300, 1500.0), Some(200.0));
        assert_eq!(rate(300, 0.0), None);
        assert_eq!(rate(300, f64::NAN), None);
        assert_eq!(rate(0, 10.0), Some(0.0));
        // 1000 tokens over 5e-324 ms would be ∞ tok/s
        assert_eq!(rate(1000, 5e-324), None);
    }

    #[test]
    fn valid_ms_filters() {
        assert!(valid_ms(0.0));
        assert!(valid_ms(12.5));
        assert!(!valid_ms(-1.0));
        assert!(!valid_ms(f64::NAN));
        assert!(!valid_ms(f64::INFINITY));
    }
}
