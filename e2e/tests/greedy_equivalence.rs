//! Greedy equivalence with llama.cpp itself: for the default model and three of the built-in
//! suite's prompts, the engine's greedy answer equals, token for token, what llama.cpp's own
//! `llama-simple` (examples/simple: nothing but llama.h and a greedy sampler) generates from the
//! same chat-templated text, at the same thread count (1) and from the same llama.cpp build (the
//! test build's static libraries; scripts/llama-simple.sh links it in seconds).
//!
//! Where two outputs diverge the test reports the first differing byte and both texts, so a real
//! bug can be told from a near tie resolved differently.
//!
//! `$BENCHFARM_LLAMA_SIMPLE` names the binary (scripts/test.sh sets it); without it the test is
//! skipped outside CI and fails in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use benchfarm_engine::{Engine, GenerateRequest, LlamaEngine, ModelSource};
use common::default_model;

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
        eprintln!(
            "{}: {} bytes, equal: {}",
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
            diverged.push(format!(
                "{}: first difference at byte {at}\n  ours:   {ours:?}\n  theirs: {theirs:?}",
                task.id
            ));
        }
        assert!(!ours.is_empty(), "{}: empty answer", task.id);
    }
    assert!(diverged.is_empty(), "{}", diverged.join("\n"));
}
