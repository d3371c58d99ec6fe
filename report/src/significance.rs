//! Significance tests for comparisons: the exact McNemar test and the Holm correction.
//!
//! McNemar, because a comparison of two models on the same (task, repetition) pairs is paired:
//! what carries evidence is the *discordant* pairs — A passed where B did not (`b`), B passed
//! where A did not (`c`). Under "no difference" each discordant pair is a fair coin, so the exact
//! test is a two-sided binomial test of `b` out of `b + c` at ½ (no normal approximation: farm
//! comparisons often have a handful of discordant pairs, where the χ² version is badly off).
//! Holm's step-down correction, because comparing many tasks at 5 % each would flag one in
//! twenty by chance; Holm controls the family-wise error like Bonferroni and is never less
//! powerful. Both functions are total: no discordant pair gives p = 1, NaN p-values count as 1.

/// Two-sided exact McNemar p-value: min(1, 2 · P[X ≤ min(b, c)]) for X ~ Binomial(b + c, ½).
/// Computed in log space term by term, so millions of pairs neither overflow nor underflow.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b.saturating_add(c);
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // ln C(n, i) − n ln 2, updated by ln((n − i) / (i + 1)); summed with log-sum-exp against the
    // largest term (the last, since i ≤ k ≤ n/2 and the binomial rises up to n/2).
    let mut ln_terms = Vec::with_capacity(usize::try_from(k).unwrap_or(0).saturating_add(1));
    let mut ln_t = -(n as f64) * std::f64::consts::LN_2;
    ln_terms.push(ln_t);
    for i in 0..k {
        ln_t += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        ln_terms.push(ln_t);
    }
    let max = ln_terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = ln_terms.iter().map(|t| (t - max).exp()).sum();
    let tail = (max + sum.ln()).exp();
    (2.0 * tail).clamp(0.0, 1.0)
}

/// Holm-adjusted p-values, in the order given: the i-th smallest p is multiplied by (m − i + 1)
/// (i from 1), capped at 1, and made monotone so a smaller raw p never gets a larger adjusted p.
/// Ties are taken in input order, which gives the same adjusted values whichever tie goes first.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let clean: Vec<f64> = p
        .iter()
        .map(|&x| if x.is_nan() { 1.0 } else { x.clamp(0.0, 1.0) })
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (clean.get(i).copied(), clean.get(j).copied());
        a.unwrap_or(1.0)
            .total_cmp(&b.unwrap_or(1.0))
            .then_with(|| i.cmp(&j))
    });
    let mut adjusted = vec![1.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        let raw = clean.get(i).copied().unwrap_or(1.0);
        running = running.max(((m - rank) as f64 * raw).min(1.0));
        if let Some(slot) = adjusted.get_mut(i) {
            *slot = running;
        }
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn mcnemar_by_hand() {
        // b = 5, c = 1, n = 6: P[X ≤ 1] = (C(6,0) + C(6,1)) / 2⁶ = 7/64; two-sided 14/64
        assert!(close(mcnemar_exact(5, 1), 14.0 / 64.0));
        assert!(close(mcnemar_exact(1, 5), 14.0 / 64.0));
        // b = 9, c = 0: 2 · 1/2⁹ = 1/256
        assert!(close(mcnemar_exact(9, 0), 1.0 / 256.0));
        // b = 3, c = 0: 2/8 = 0.25 — three discordant pairs can never be significant
        assert!(close(mcnemar_exact(3, 0), 0.25));
        // b = c = 3: 2 · (1 + 6 + 15 + 20)/64 = 84/64 → capped at 1
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        // no discordant pair: no evidence
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // b = 1, c = 0: 2 · ½ = 1
        assert_eq!(mcnemar_exact(1, 0), 1.0);
    }

    #[test]
    fn mcnemar_large_counts_stay_finite() {
        let p = mcnemar_exact(600, 400);
        assert!(p > 0.0 && p < 1e-9, "{p}");
        assert_eq!(mcnemar_exact(5000, 0), 0.0); // 2^-4999 underflows to 0, no NaN
        assert!(close(mcnemar_exact(500_000, 500_000), 1.0));
    }

    #[test]
    fn holm_by_hand() {
        // p = [0.01, 0.04, 0.03], m = 3: sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 →
        // monotone max(0.06, 0.04) = 0.06; back in input order [0.03, 0.06, 0.06]
        let adj = holm(&[0.01, 0.04, 0.03]);
        assert!(
            close(adj[0], 0.03) && close(adj[1], 0.06) && close(adj[2], 0.06),
            "{adj:?}"
        );
        // one test: unchanged
        assert_eq!(holm(&[0.2]), [0.2]);
        assert!(holm(&[]).is_empty());
        // capped at 1, NaN treated as 1
        assert_eq!(holm(&[0.6, f64::NAN]), [1.0, 1.0]);
    }
}
