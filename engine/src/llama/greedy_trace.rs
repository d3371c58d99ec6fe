//! A greedy run that keeps, at every step, the two best candidates and their logits.
//!
//! What the greedy-equivalence check (e2e/tests/greedy_equivalence.rs) reports where our answer
//! and llama.cpp's own diverge: the step, both candidates and the gap between their logits, so a
//! near tie (a few hundredths of a logit, which another build, thread count or summation order
//! may resolve the other way) is told from a real bug (a gap no rounding explains). The run is
//! llama-simple's: the text tokenized as given (special tokens parsed, BOS added), one batch for
//! the prompt, then one token at a time, each the argmax of the logits (the lowest token id wins
//! a tie, as in llama.cpp's greedy sampler).

use std::num::NonZeroU32;
use std::path::Path;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use super::logs::LlamaLogs;
use super::{CONTEXT_MARGIN, LlamaEngine, effective_threads};
use crate::EngineError;

/// One candidate token at a step: its bytes (a piece may end inside a UTF-8 character) and its
/// logit.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub token: i32,
    pub bytes: Vec<u8>,
    pub logit: f32,
}

impl Candidate {
    /// Its text, for a report (a partial character shown as U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// One step of a greedy run: the token taken and the runner-up.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceStep {
    pub best: Candidate,
    pub second: Candidate,
    /// The token taken ends the generation (end of generation: it is not part of the answer).
    pub end: bool,
}

impl TraceStep {
    /// How far the taken token's logit is ahead of the runner-up's (≥ 0).
    pub fn gap(&self) -> f32 {
        self.best.logit - self.second.logit
    }
}

/// The indices of the largest and second-largest logits; the lower index wins a tie. `None` with
/// fewer than two logits.
pub fn top_two(logits: &[f32]) -> Option<(usize, usize)> {
    if logits.len() < 2 {
        return None;
    }
    let (mut best, mut second) = if logits[1] > logits[0] {
        (1, 0)
    } else {
        (0, 1)
    };
    for (i, &l) in logits.iter().enumerate().skip(2) {
        if l > logits[best] {
            second = best;
            best = i;
        } else if l > logits[second] {
            second = i;
        }
    }
    Some((best, second))
}

impl LlamaEngine {
    /// Runs the model at `path` greedily on `text` (already chat-templated, e.g. from
    /// [`LlamaEngine::chat_prompt`]) for up to `max_tokens` tokens, stopping after an
    /// end-of-generation token, and returns every step's two best candidates.
    pub fn greedy_trace(
        &mut self,
        path: &Path,
        text: &str,
        max_tokens: u32,
        threads: u32,
    ) -> Result<Vec<TraceStep>, EngineError> {
        let logs = LlamaLogs::default();
        logs.run(|| {
            self.ensure_loaded(path, "greedy-trace", &logs)?;
            let backend = self.backend;
            let Some(loaded) = self.loaded.as_ref() else {
                return Err(EngineError::Llama("model vanished after loading".into()));
            };
            let model = &loaded.model;
            let vocab = model.vocab();
            let tokens = vocab.tokenize(text.as_bytes(), true, true);
            if tokens.is_empty() {
                return Err(EngineError::Llama("the prompt tokenized to nothing".into()));
            }
            let n_prompt = u32::try_from(tokens.len())
                .map_err(|_| EngineError::InvalidRequest("prompt too long".into()))?;
            let threads = effective_threads(threads);
            let params = LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(
                    n_prompt
                        .saturating_add(max_tokens)
                        .saturating_add(CONTEXT_MARGIN),
                ))
                .with_n_batch(n_prompt)
                .with_n_threads(threads)
                .with_n_threads_batch(threads);
            let llama = |what: &str, e: &dyn std::fmt::Display| {
                EngineError::Llama(format!("{what}: {}", logs.reason(&e.to_string())))
            };
            let mut ctx = model
                .new_context(backend, params)
                .map_err(|e| llama("creating context", &e))?;
            let mut batch = LlamaBatch::new(tokens.len(), 1);
            let last = tokens.len() - 1;
            for (i, &token) in tokens.iter().enumerate() {
                let pos = i32::try_from(i).map_err(|e| llama("prompt position", &e))?;
                batch
                    .add(token, pos, &[0], i == last)
                    .map_err(|e| llama("building prompt batch", &e))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| llama("evaluating the prompt", &e))?;
            let mut logits_index = batch.n_tokens() - 1;
            let mut pos = i32::try_from(tokens.len()).unwrap_or(i32::MAX);
            let mut steps = Vec::new();
            let mut bytes = Vec::new();
            let mut candidate = |index: usize, logit: f32| -> Candidate {
                let token = i32::try_from(index).unwrap_or(i32::MAX);
                bytes.clear();
                vocab.token_to_piece_into(LlamaToken::new(token), &mut bytes, false, None);
                Candidate {
                    token,
                    bytes: bytes.clone(),
                    logit,
                }
            };
            for _ in 0..max_tokens {
                let logits = ctx.get_logits_ith(logits_index);
                let Some((best, second)) = top_two(logits) else {
                    return Err(EngineError::Llama("fewer than two logits".into()));
                };
                let (best_logit, second_logit) = (logits[best], logits[second]);
                let token = LlamaToken::new(i32::try_from(best).unwrap_or(i32::MAX));
                let end = vocab.is_eog(token);
                steps.push(TraceStep {
                    best: candidate(best, best_logit),
                    second: candidate(second, second_logit),
                    end,
                });
                if end {
                    break;
                }
                batch.clear();
                batch
                    .add(token, pos, &[0], true)
                    .map_err(|e| llama("building token batch", &e))?;
                pos = pos.saturating_add(1);
                logits_index = 0;
                ctx.decode(&mut batch)
                    .map_err(|e| llama("generating", &e))?;
            }
            Ok(steps)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_two_takes_the_lowest_index_on_ties() {
        assert_eq!(top_two(&[1.0]), None);
        assert_eq!(top_two(&[1.0, 2.0]), Some((1, 0)));
        assert_eq!(top_two(&[3.0, 3.0, 1.0]), Some((0, 1)));
        assert_eq!(top_two(&[0.0, 5.0, 4.0, 5.0, 4.5]), Some((1, 3)));
        assert_eq!(top_two(&[-1.0, -3.0, -0.5, -2.0]), Some((2, 0)));
        let step = TraceStep {
            best: Candidate {
                token: 1,
                bytes: b"a".to_vec(),
                logit: 2.5,
            },
            second: Candidate {
                token: 2,
                bytes: b"b".to_vec(),
                logit: 2.25,
            },
            end: false,
        };
        assert_eq!(step.gap(), 0.25);
        assert_eq!(step.best.text(), "a");
    }
}
