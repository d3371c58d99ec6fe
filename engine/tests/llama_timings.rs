//! Our clocks against llama.cpp's: a real generation's `Timings` must agree with the context's
//! own perf counters (`llama_perf_context`) — the same token counts, times within 2 % — so that
//! the figures the farm reports are llama.cpp's figures (definitions in docs/timings.md).
//!
//! Measures the test (dev) profile's llama.cpp build, which is CMake `Release` (`-O3`) like the
//! release worker's. The model is `$BENCHFARM_TEST_MODEL` or the default SmolLM2 in `models/`;
//! without it the test prints a skip note, except under CI (env `CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use benchfarm_engine::{Engine, GenerateRequest, LlamaEngine, ModelSource, StopReason};

fn test_model() -> Option<PathBuf> {
    let path = std::env::var_os("BENCHFARM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if path.exists() {
        return Some(path);
    }
    let how = "run scripts/fetch-models.sh (or set BENCHFARM_TEST_MODEL to a GGUF file)";
    assert!(
        std::env::var_os("CI").is_none(),
        "test model {} is missing: {how}",
        path.display()
    );
    eprintln!("skipping: test model {} is missing; {how}", path.display());
    None
}

fn request(path: &Path, prompt: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        model: ModelSource::Gguf {
            path: path.to_path_buf(),
            sha256: "test".into(),
        },
        task_id: "t".into(),
        repetition: 0,
        attempt: 1,
        system: "You are a helpful assistant.".into(),
        prompt: prompt.into(),
        max_tokens,
        temperature: 0.0,
        seed: 7,
        threads: 1,
        cancel: Arc::new(AtomicBool::new(false)),
        throughput: None,
    }
}

/// |ours − theirs| within `share` of theirs.
fn assert_close(what: &str, ours: f64, theirs: f64, share: f64) {
    let gap = (ours - theirs).abs() / theirs;
    assert!(
        gap <= share,
        "{what}: ours {ours:.3} ms vs llama.cpp {theirs:.3} ms, off by {:.2} %",
        gap * 100.0
    );
}

#[test]
fn our_clocks_agree_with_llama_perf_counters() {
    let Some(model) = test_model() else {
        return;
    };
    let mut engine = LlamaEngine::new().unwrap();
    let prompt = "Write a long story about a robot who learns to paint, with many details.";
    // The first job also loads the model; the second is warm. Both must agree.
    for (i, max_tokens) in [48, 64].into_iter().enumerate() {
        let g = engine
            .generate(&request(&model, prompt, max_tokens))
            .unwrap();
        let t = &g.timings;
        let perf = g
            .llama_perf
            .expect("llama.cpp engine reports its perf counters");
        eprintln!("job {i}: {t:?}\n  llama.cpp: {perf:?}");
        assert_eq!(t.cold, i == 0);

        // Counts: the prompt is one multi-token batch; generation decodes one token at a time,
        // every generated token but the last when max_tokens ended it.
        assert_eq!(perf.n_p_eval, i32::try_from(t.prompt_tokens).unwrap());
        assert_eq!(perf.n_eval, i32::try_from(t.decode_tokens).unwrap());
        assert!(t.gen_tokens > 2, "too short to compare: {t:?}");
        match g.stop {
            StopReason::MaxTokens => assert_eq!(t.decode_tokens, t.gen_tokens - 1),
            StopReason::Eos => assert_eq!(t.decode_tokens, t.gen_tokens),
            StopReason::Cancelled => panic!("not cancelled"),
        }

        // Times within 2 %.
        assert_close("prompt", t.prompt_ms, perf.t_p_eval_ms, 0.02);
        assert_close("decode", t.decode_ms, perf.t_eval_ms, 0.02);

        // The phases nest as docs/timings.md draws them.
        assert!(t.ttft_ms >= t.prompt_ms, "{t:?}");
        assert!(t.gen_ms >= t.decode_ms, "{t:?}");
        assert!(t.wall_ms >= t.ttft_ms && t.wall_ms >= t.gen_ms, "{t:?}");
        assert!(t.decode_tokens_per_second() > 0.0);
        assert!(t.gen_tokens_per_second() > 0.0);
    }
}
