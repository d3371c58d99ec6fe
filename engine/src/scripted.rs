//! The scripted engine: answers from a [`ScriptedModel`]'s table with synthetic but
//! self-consistent timings, so the farm can be tested end to end without llama.cpp.
//!
//! It really sleeps for the time its timings claim (`delay_ms` plus the synthetic generation
//! time), checking the cancel flag every few milliseconds, so wall clock, timeouts and
//! cancellation behave as they would with a real model.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{Engine, EngineError, GenerateRequest, Generation, ModelSource, StopReason, Timings};

/// How often a sleeping scripted job looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(5);
/// Synthetic prompt evaluation speed; prompt processing is much faster than generation.
const PROMPT_TOKENS_PER_MS: f64 = 10.0;

/// A deterministic token-count estimate for text: one token per 4 bytes, rounded up.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

/// Runs [`ModelSource::Scripted`] requests.
#[derive(Debug, Default)]
pub struct ScriptedEngine;

impl Engine for ScriptedEngine {
    fn generate(&mut self, req: &GenerateRequest) -> Result<Generation, EngineError> {
        let ModelSource::Scripted(model) = &req.model else {
            return Err(EngineError::InvalidRequest(
                "the scripted engine only runs scripted models".into(),
            ));
        };
        let start = Instant::now();
        let answer = model.answer(&req.task_id, req.repetition);
        let prompt_tokens =
            estimate_tokens(&req.system).saturating_add(estimate_tokens(&req.prompt));
        let prompt_ms = f64::from(prompt_tokens) / PROMPT_TOKENS_PER_MS;
        let gen_tokens = estimate_tokens(answer);
        let gen_ms = f64::from(gen_tokens) / model.tokens_per_second() * 1000.0;

        let delay = Duration::from_millis(model.delay_ms());
        let busy = Duration::from_secs_f64((prompt_ms + gen_ms) / 1000.0);
        let cancelled = !sleep_unless_cancelled(delay + busy, &req.cancel);

        let (text, stop, timings) = if cancelled {
            // Report what a real engine would have: whatever share of the answer fit in the time.
            let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
            let gen_elapsed = (elapsed_ms - model.delay_ms() as f64 - prompt_ms).clamp(0.0, gen_ms);
            let done_tokens = if gen_ms > 0.0 {
                ((gen_elapsed / gen_ms) * f64::from(gen_tokens)).floor() as u32
            } else {
                0
            };
            let text = prefix_of_tokens(answer, done_tokens).to_string();
            let timings = Timings {
                prompt_tokens,
                prompt_ms,
                ttft_ms: if done_tokens > 0 { prompt_ms } else { 0.0 },
                gen_tokens: estimate_tokens(&text),
                gen_ms: gen_elapsed,
                ..Timings::default()
            };
            (text, StopReason::Cancelled, timings)
        } else {
            let timings = Timings {
                prompt_tokens,
                prompt_ms,
                ttft_ms: if gen_tokens > 0 { prompt_ms } else { 0.0 },
                gen_tokens,
                gen_ms,
                ..Timings::default()
            };
            (answer.to_string(), StopReason::Eos, timings)
        };
        Ok(Generation {
            text,
            timings: Timings {
                wall_ms: start.elapsed().as_secs_f64() * 1000.0,
                load_ms: 0.0,
                cold: false,
                ..timings
            },
            chat_template: "scripted".into(),
            stop,
        })
    }
}

/// Sleeps for `total`, waking every [`CANCEL_POLL`]; false when cancelled before the end.
fn sleep_unless_cancelled(total: Duration, cancel: &AtomicBool) -> bool {
    let deadline = Instant::now() + total;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(CANCEL_POLL));
    }
}

/// The first `tokens` estimated tokens of `text` (cut at a character boundary).
fn prefix_of_tokens(text: &str, tokens: u32) -> &str {
    let mut end = (tokens as usize).saturating_mul(4).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use benchfarm_modelfile::ScriptedModel;
    use std::sync::Arc;

    fn request(model: &str, task: &str, repetition: u32) -> GenerateRequest {
        GenerateRequest {
            model: ModelSource::Scripted(Arc::new(ScriptedModel::parse(model, "test").unwrap())),
            task_id: task.into(),
            repetition,
            system: "be brief".into(),
            prompt: "write a function".into(),
            max_tokens: 64,
            temperature: 0.0,
            seed: 0,
            threads: 1,
            cancel: Arc::default(),
        }
    }

    #[test]
    fn estimates() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("a"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
    }

    #[test]
    fn answers_with_consistent_timings() {
        let model = "name = \"m\"\ntokens_per_second = 1000.0\n[answers]\nt = [\"a0\", \"0123456789abcdef0123\"]";
        let mut engine = ScriptedEngine;
        let g = engine.generate(&request(model, "t", 1)).unwrap();
        assert_eq!(g.text, "0123456789abcdef0123");
        assert_eq!(g.stop, StopReason::Eos);
        assert_eq!(g.chat_template, "scripted");
        let t = &g.timings;
        assert_eq!(t.gen_tokens, 5);
        assert!((t.gen_ms - 5.0).abs() < 1e-9, "{t:?}");
        assert!((t.gen_tokens_per_second() - 1000.0).abs() < 1e-6);
        assert_eq!(
            t.prompt_tokens,
            estimate_tokens("be brief") + estimate_tokens("write a function")
        );
        assert!(!t.cold);
        assert_eq!(t.load_ms, 0.0);
        assert!(t.wall_ms >= t.prompt_ms + t.gen_ms, "{t:?}");
        assert_eq!(engine.generate(&request(model, "t", 2)).unwrap().text, "a0");
        assert_eq!(
            engine.generate(&request(model, "other", 0)).unwrap().text,
            ""
        );
    }

    #[test]
    fn sleeps_for_delay_and_generation_time() {
        // 40 chars = 10 tokens at 200 tok/s = 50 ms, plus 30 ms delay.
        let model = format!(
            "name = \"m\"\ntokens_per_second = 200.0\ndelay_ms = 30\n[answers]\nt = [\"{}\"]",
            "x".repeat(40)
        );
        let start = Instant::now();
        let g = ScriptedEngine.generate(&request(&model, "t", 0)).unwrap();
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        assert!(elapsed >= 80.0, "{elapsed}");
        assert!(
            g.timings.wall_ms >= 80.0 && g.timings.wall_ms <= elapsed,
            "{:?}",
            g.timings
        );
        assert!((g.timings.gen_ms - 50.0).abs() < 1e-9);
    }

    #[test]
    fn cancel_stops_promptly_with_partial_answer() {
        // 400 chars = 100 tokens at 100 tok/s = 1 s unless cancelled.
        let model = format!(
            "name = \"m\"\ntokens_per_second = 100.0\n[answers]\nt = [\"{}\"]",
            "y".repeat(400)
        );
        let req = request(&model, "t", 0);
        let cancel = req.cancel.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.store(true, Ordering::Relaxed);
        });
        let start = Instant::now();
        let g = ScriptedEngine.generate(&req).unwrap();
        canceller.join().unwrap();
        let elapsed = start.elapsed();
        assert_eq!(g.stop, StopReason::Cancelled);
        assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
        assert!(g.text.len() < 400, "{}", g.text.len());
        assert!(g.timings.gen_ms < 1000.0);
    }

    #[test]
    fn rejects_gguf_requests() {
        let mut req = request("name = \"m\"", "t", 0);
        req.model = ModelSource::Gguf {
            path: "x.gguf".into(),
            sha256: String::new(),
        };
        assert!(matches!(
            ScriptedEngine.generate(&req),
            Err(EngineError::InvalidRequest(_))
        ));
    }

    #[test]
    fn prefix_respects_char_boundaries() {
        assert_eq!(prefix_of_tokens("ééééé", 1), "éé");
        assert_eq!(prefix_of_tokens("abc", 9), "abc");
    }
}
