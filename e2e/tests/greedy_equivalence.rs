//! Greedy equivalence with llama.cpp itself: for the default model and three of the built-in
//! suite's prompts, the engine's greedy answer equals, token for token, what llama.cpp's own
//! `llama-simple` (examples/simple: nothing but llama.h and a greedy sampler) generates from the
//! same chat-templated text, at the same thread count (1) and from the same llama.cpp build (the
//! test build's static libraries; scripts/llama-simple.sh links it in seconds).
//!
//! Every answer is also traced ([`LlamaEngine::greedy_trace`]: the two best candidates and their
//! logits at each step), and the trace must spell the job path's answer: the job's sampler is
//! llama.cpp's greedy argmax, not something near it. Where our answer and llama-simple's diverge
//! the test reports the first differing byte, both texts, and the step there with both candidates
//! and the gap between their logits, so a real bug (a wide gap) is told from a near tie resolved
//! differently (hundredths of a logit). It also prints each answer's narrowest gap: how close the
//! prompt came to a tie at all.
//!
//! `$BENCHFARM_LLAMA_SIMPLE` names the binary (scripts/test.sh sets it); without it the test is
//! skipped outside CI and fails in CI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use benchfarm_e2e::in_process::default_model;
use benchfarm_engine::{Engine, GenerateRequest, LlamaEngine, ModelSource, TraceStep};

/// Tokens each answer may run to: enough to cover most of the prompts' answers, short enough for
/// a CI test.
const MAX_TOKENS: u32 = 64;

fn llama_simple() -> Option<PathBuf> {
    match std::env::var_os("BENCHFARM_LLAMA_SIMPLE").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            assert!(
                std::env::var_os("CI").is_none(),
                "BENCHFARM_LLAMA_SIMPLE={other:?} is not a llama-simple binary: scripts/test.sh builds it with scripts/llama-simple.sh"
            );
            eprintln!(
                "skipping: set BENCHFARM_LLAMA_SIMPLE (scripts/llama-simple.sh prints the path)"
            );
            None
        }
    }
}

/// llama-simple's greedy continuation of `prompt` (it prints the prompt, then each token).
fn theirs(bin: &Path, model: &Path, prompt: &str) -> String {
    let out = Command::new(bin)
        .env("BENCHFARM_THREADS", "1")
        .arg("-m")
        .arg(model)
        .arg("-n")
        .arg(MAX_TOKENS.to_string())
        .arg(prompt)
        .output()
        .expect("llama-simple runs");
    assert!(
        out.status.success(),
        "llama-simple failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let generated = stdout
        .strip_prefix(prompt)
        .unwrap_or_else(|| panic!("llama-simple did not echo the prompt first: {stdout:?}"));
    // It ends its output with one newline of its own.
    generated
        .strip_suffix('\n')
        .unwrap_or(generated)
        .to_string()
}

#[test]
fn greedy_answers_equal_llama_cpp_own_for_three_builtin_prompts() {
    let (Some(model), Some(bin)) = (default_model(), llama_simple()) else {
        return;
    };
    let suite = benchfarm_suite::Suite::parse(
        benchfarm_suite::builtin_source("agent-coding").expect("built-in suite"),
        "builtin:agent-coding",
    )
    .unwrap();
    let mut engine = LlamaEngine::new().unwrap();
    let mut diverged = Vec::new();
    for task in suite.tasks.iter().take(3) {
        let prompt = engine
            .chat_prompt(&model, &task.system, &task.prompt)
            .unwrap();
        let ours = engine
            .generate(&GenerateRequest {
                model: ModelSource::Gguf {
                    path: model.clone(),
                    sha256: "greedy".into(),
                },
                task_id: task.id.clone(),
                repetition: 0,
                attempt: 1,
                system: task.system.clone(),
                prompt: task.prompt.clone(),
                max_tokens: MAX_TOKENS,
                temperature: 0.0,
                seed: 1,
                threads: 1,
                cancel: Arc::default(),
                throughput: None,
            })
            .unwrap()
            .text;
        let theirs = theirs(&bin, &model, &prompt);
        let trace = engine.greedy_trace(&model, &prompt, MAX_TOKENS, 1).unwrap();
        let spelled: Vec<u8> = trace
            .iter()
            .take_while(|s| !s.end)
            .flat_map(|s| s.best.bytes.clone())
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&spelled),
            ours,
            "{}: the greedy trace does not spell the job's answer",
            task.id
        );
        let narrowest = trace
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.gap().total_cmp(&b.1.gap()))
            .map(|(i, s)| describe(i, s))
            .unwrap_or_default();
        eprintln!(
            "{}: {} bytes, equal: {}, narrowest gap: {narrowest}",
            task.id,
            ours.len(),
            ours == theirs
        );
        if ours != theirs {
            let at = ours
                .bytes()
                .zip(theirs.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(ours.len().min(theirs.len()));
            let there = step_at_byte(&trace, at)
                .map(|(i, s)| describe(i, s))
                .unwrap_or_else(|| "past the trace".into());
            diverged.push(format!(
                "{}: first difference at byte {at}, {there}\n  ours:   {ours:?}\n  theirs: {theirs:?}",
                task.id
            ));
        }
        assert!(!ours.is_empty(), "{}: empty answer", task.id);
    }
    assert!(diverged.is_empty(), "{}", diverged.join("\n"));
}

/// The step whose token covers byte `at` of the answer, and its index.
fn step_at_byte(trace: &[TraceStep], at: usize) -> Option<(usize, &TraceStep)> {
    let mut end = 0;
    trace.iter().enumerate().find(|(_, s)| {
        end += s.best.bytes.len();
        end > at
    })
}

/// "step 12: \"foo\" 17.25 over \"bar\" 17.20 (gap 0.05)".
fn describe(i: usize, s: &TraceStep) -> String {
    format!(
        "step {i}: {:?} {:.3} over {:?} {:.3} (gap {:.3})",
        s.best.text(),
        s.best.logit,
        s.second.text(),
        s.second.logit,
        s.gap()
    )
}
