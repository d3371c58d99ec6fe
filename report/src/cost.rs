//! What a run cost: tokens × the endpoint's price for remote models, nothing for local ones.
//!
//! A remote model's job costs `prompt_tokens × input + gen_tokens × output` dollars per million
//! tokens, with the token counts the endpoint reported in its `usage` (reasoning tokens are part
//! of the generated ones, as endpoints bill them). A local model (GGUF or scripted) costs $0.00;
//! a remote model without a price has no cost (`None`, shown as "—"), never a made-up 0. Energy
//! for local models is left to the energy work.

use serde::{Deserialize, Serialize};

/// Dollars per million input (prompt) and output (generated) tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// The cost in dollars of one job of a model of `kind` (`"gguf"`, `"scripted"`, `"remote"`)
/// priced at `price`, with the job's prompt and generated token counts.
pub fn job_cost(
    kind: &str,
    price: Option<Price>,
    prompt_tokens: u32,
    gen_tokens: u32,
) -> Option<f64> {
    if kind != "remote" {
        return Some(0.0);
    }
    let p = price?;
    Some((f64::from(prompt_tokens) * p.input + f64::from(gen_tokens) * p.output) / 1e6)
}

/// Σ of costs when every one is known; `None` as soon as one is not (a partial sum would
/// understate the bill).
pub fn total(costs: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    costs.into_iter().try_fold(0.0, |sum, c| Some(sum + c?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_jobs_cost_tokens_times_price_and_local_ones_nothing() {
        let price = Some(Price {
            input: 3.0,
            output: 15.0,
        });
        // 1,000 prompt tokens at $3/M + 200 generated at $15/M = $0.003 + $0.003.
        assert_eq!(job_cost("remote", price, 1000, 200), Some(0.006));
        assert_eq!(job_cost("remote", None, 1000, 200), None);
        assert_eq!(job_cost("gguf", None, 1000, 200), Some(0.0));
        assert_eq!(job_cost("scripted", price, 1000, 200), Some(0.0));
        assert_eq!(total([Some(1.0), Some(0.5)]), Some(1.5));
        assert_eq!(total([Some(1.0), None]), None);
        assert_eq!(total([]), Some(0.0));
    }
}
