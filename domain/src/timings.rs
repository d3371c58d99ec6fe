//! [`Timings`]: where one job's time went, in milliseconds, measured with a monotonic clock on the
//! worker. Each figure is defined once, in docs/timings.md, and matches llama.cpp's own counters
//! where one exists (`t_p_eval_ms`, `t_eval_ms`, `n_eval`).

use serde::{Deserialize, Serialize};

/// Where the time went, in milliseconds. In short:
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Model load time; 0 when the model was already loaded (a warm job).
    pub load_ms: f64,
    /// Whether this job loaded the model.
    pub cold: bool,
    pub prompt_tokens: u32,
    /// Time in `llama_decode` for the prompt (llama.cpp's `t_p_eval_ms`).
    pub prompt_ms: f64,
    /// From the request reaching a loaded model (chat template, tokenizing and context creation
    /// included; model load excluded) to the first token sampled.
    pub ttft_ms: f64,
    /// Generated tokens (the end-of-generation token is not counted: it is not output).
    pub gen_tokens: u32,
    /// Wall time of the generation loop, from the end of prompt evaluation to the last token
    /// (sampling, detokenizing and decoding included): `gen_tokens / gen_ms` is the end-to-end
    /// generation speed.
    pub gen_ms: f64,
    /// The whole `generate` call, load included.
    pub wall_ms: f64,
    /// Tokens run through `llama_decode` one at a time during generation (llama.cpp's `n_eval`):
    /// every generated token but the last when `max_tokens` ended the generation, all of them
    /// when an end-of-generation token did. The first generated token is sampled from the
    /// prompt's logits, so it costs no generation decode.
    #[serde(default)]
    pub decode_tokens: u32,
    /// Time in `llama_decode` for those tokens (llama.cpp's `t_eval_ms`): `decode_tokens /
    /// decode_ms` is the decode speed, the figure llama-bench's `tg` tests report.
    #[serde(default)]
    pub decode_ms: f64,
}

impl Timings {
    /// End-to-end generation speed (tokens generated over the generation loop's wall time); 0
    /// when no generation time was measured.
    pub fn gen_tokens_per_second(&self) -> f64 {
        rate(self.gen_tokens, self.gen_ms)
    }
    /// Decode speed (tokens decoded over time in `llama_decode` for them), llama-bench's `tg`
    /// figure; 0 when nothing was decoded.
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.decode_tokens, self.decode_ms)
    }
    /// Prompt evaluation speed; 0 when no prompt time was measured.
    pub fn prompt_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_ms)
    }
}

fn rate(tokens: u32, ms: f64) -> f64 {
    if ms > 0.0 {
        f64::from(tokens) / (ms / 1000.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_zero_without_time() {
        let t = Timings {
            gen_tokens: 10,
            gen_ms: 0.0,
            prompt_tokens: 5,
            prompt_ms: 0.0,
            ..Timings::default()
        };
        assert_eq!(t.gen_tokens_per_second(), 0.0);
        assert_eq!(t.prompt_tokens_per_second(), 0.0);
        let t = Timings {
            gen_tokens: 10,
            gen_ms: 500.0,
            prompt_tokens: 30,
            prompt_ms: 100.0,
            decode_tokens: 9,
            decode_ms: 300.0,
            ..t
        };
        assert_eq!(t.gen_tokens_per_second(), 20.0);
        assert_eq!(t.prompt_tokens_per_second(), 300.0);
        assert_eq!(t.decode_tokens_per_second(), 30.0);
    }

    #[test]
    fn records_from_before_the_decode_fields_still_load() {
        let old = r#"{"load_ms":1.0,"cold":true,"prompt_tokens":2,"prompt_ms":3.0,"ttft_ms":4.0,"gen_tokens":5,"gen_ms":6.0,"wall_ms":7.0}"#;
        let t: Timings = serde_json::from_str(old).unwrap();
        assert_eq!((t.decode_tokens, t.decode_ms, t.wall_ms), (0, 0.0, 7.0));
    }
}
