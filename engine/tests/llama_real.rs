//! The llama.cpp engine against a real model: greedy generation with consistent timings, warm
//! reuse of a loaded model, and readable failures for broken files.
//!
//! The model is `$BENCHFARM_TEST_MODEL` or `<workspace>/models/SmolLM2-135M-Instruct.Q4_1.gguf`
//! (fetched by `scripts/fetch-models.sh`). Without it the tests print a skip note, except under
//! CI (env `CI` set), where they fail. A Gemma 3 check runs when `models/gemma-3-270m-q4_k_m.gguf`
//! is present (`scripts/fetch-models.sh --gemma`). One thread and few tokens keep them quick.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use benchfarm_engine::{
    Engine, EngineError, Engines, GenerateRequest, LlamaEngine, ModelSource, StopReason,
    engine_info,
};

fn workspace_model(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(file)
}

fn test_model() -> Option<PathBuf> {
    let path = std::env::var_os("BENCHFARM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_model("SmolLM2-135M-Instruct.Q4_1.gguf"));
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

fn request(path: &Path, prompt: &str) -> GenerateRequest {
    GenerateRequest {
        model: ModelSource::Gguf {
            path: path.to_path_buf(),
            sha256: "test".into(),
        },
        task_id: "t".into(),
        repetition: 0,
        attempt: 1,
        system: "You are a helpful assistant. Answer briefly.".into(),
        prompt: prompt.into(),
        max_tokens: 48,
        temperature: 0.0,
        seed: 7,
        threads: 1,
        cancel: Arc::new(AtomicBool::new(false)),
        throughput: None,
    }
}

#[test]
fn greedy_generation_reuse_and_bad_files() {
    let Some(model) = test_model() else {
        return;
    };
    let mut engine = LlamaEngine::new().unwrap();

    // (a) Two short prompts: non-empty text and consistent timings.
    let mut texts = Vec::new();
    for (i, prompt) in [
        "What is the capital of France?",
        "Write a haiku about rust.",
    ]
    .into_iter()
    .enumerate()
    {
        let g = engine.generate(&request(&model, prompt)).unwrap();
        let t = &g.timings;
        eprintln!(
            "{prompt:?} -> {:?} {t:?} gen tok/s {:.1}",
            g.text,
            t.gen_tokens_per_second()
        );
        assert!(!g.text.trim().is_empty(), "empty text for {prompt:?}");
        assert_eq!(g.chat_template, "model");
        assert!(matches!(g.stop, StopReason::Eos | StopReason::MaxTokens));
        assert_eq!(t.cold, i == 0);
        assert_eq!(t.load_ms > 0.0, i == 0, "{t:?}");
        assert!(t.prompt_tokens > 0 && t.prompt_ms > 0.0, "{t:?}");
        assert!(
            t.gen_tokens > 0 && t.gen_tokens <= 48 && t.gen_ms > 0.0,
            "{t:?}"
        );
        if g.stop == StopReason::MaxTokens {
            assert_eq!(t.gen_tokens, 48);
        }
        let tps = f64::from(t.gen_tokens) / (t.gen_ms / 1000.0);
        assert!(
            (t.gen_tokens_per_second() - tps).abs() < 1e-6 * tps,
            "{t:?}"
        );
        assert!(t.ttft_ms >= t.prompt_ms, "{t:?}");
        assert!(
            t.wall_ms + 1.0 >= t.load_ms + t.prompt_ms + t.gen_ms,
            "{t:?}"
        );
        texts.push(g.text);
    }
    assert_ne!(texts[0], texts[1]);

    // (b) The same greedy request again, warm: identical text, no load.
    let again = engine
        .generate(&request(&model, "What is the capital of France?"))
        .unwrap();
    assert!(!again.timings.cold);
    assert_eq!(again.timings.load_ms, 0.0);
    assert_eq!(again.text, texts[0]);

    // A set cancel flag ends the job without generating.
    let cancelled = request(&model, "Count to ten.");
    cancelled
        .cancel
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let g = engine.generate(&cancelled).unwrap();
    assert_eq!(g.stop, StopReason::Cancelled);
    assert_eq!(g.timings.gen_tokens, 0);

    // (c) Broken files fail with a readable reason, and the engine keeps working afterwards.
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let err = engine.generate(&request(&truncated, "hi")).unwrap_err();
    let msg = err.to_string();
    eprintln!("truncated: {msg}");
    assert!(matches!(err, EngineError::BadModel(_)), "{msg}");
    assert!(
        msg.contains("truncated.gguf") && msg.contains("truncated: tensor data needs"),
        "{msg}"
    );

    let random = dir.path().join("random.gguf");
    let noise: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&random, noise).unwrap();
    let msg = engine
        .generate(&request(&random, "hi"))
        .unwrap_err()
        .to_string();
    eprintln!("random: {msg}");
    assert!(
        msg.contains("random.gguf") && msg.contains("not a GGUF file"),
        "{msg}"
    );

    let missing = dir.path().join("missing.gguf");
    let msg = engine
        .generate(&request(&missing, "hi"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing.gguf: cannot read"), "{msg}");

    // After the failed loads the real model loads again and gives the same answer.
    let g = engine
        .generate(&request(&model, "What is the capital of France?"))
        .unwrap();
    assert!(g.timings.cold, "the model is reloaded after failed loads");
    assert_eq!(g.text, texts[0]);
}

#[test]
fn llama_load_failure_carries_llama_cpp_reason() {
    let Some(model) = test_model() else {
        return;
    };
    // A header-valid GGUF that llama.cpp cannot use: the real header's architecture renamed.
    let bytes = std::fs::read(&model).unwrap();
    let info = benchfarm_engine::benchfarm_modelfile::read_gguf(&model).unwrap();
    let arch = info.architecture().unwrap().to_string();
    // The key, then the value's type tag (8 = string, little-endian u32).
    let needle = "general.architecture\x08\x00\x00\x00";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("architecture key");
    let value_at = at + needle.len() + 8; // skip the string length
    let mut patched = bytes.clone();
    let bogus = "z".repeat(arch.len());
    patched[value_at..value_at + arch.len()].copy_from_slice(bogus.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bogus-arch.gguf");
    std::fs::write(&path, patched).unwrap();

    let mut engines = Engines::new();
    let err = engines.generate(&request(&path, "hi")).unwrap_err();
    let msg = err.to_string();
    eprintln!("bogus arch: {msg}");
    assert!(matches!(err, EngineError::Load { .. }), "{msg}");
    assert!(msg.contains("bogus-arch.gguf"), "{msg}");
    assert!(
        msg.contains(&bogus),
        "llama.cpp's reason should name the architecture: {msg}"
    );

    let info = engine_info();
    assert!(info.backends.iter().any(|b| b == "CPU"), "{info:?}");
}

#[test]
fn gemma_without_template_uses_builtin() {
    let path = workspace_model("gemma-3-270m-q4_k_m.gguf");
    if !path.exists() {
        eprintln!(
            "skipping: {} missing (scripts/fetch-models.sh --gemma)",
            path.display()
        );
        return;
    }
    let mut engine = LlamaEngine::new().unwrap();
    let g = engine
        .generate(&request(&path, "What is the capital of France?"))
        .unwrap();
    eprintln!("gemma: {:?} {:?} {}", g.text, g.timings, g.chat_template);
    assert_eq!(g.chat_template, "builtin:gemma");
    assert!(g.timings.gen_tokens > 0 && !g.text.is_empty());
}

/// The llama.cpp this workspace compiles has ggml's AMX kernels off: on CPUs with AMX (Sapphire
/// Rapids and later, some CI runners among them) they segfault on the first decode
/// (llama.cpp#20824), and every job on such a worker died with SIGSEGV. `.cargo/config.toml`
/// passes `-mno-amx-*` to the C/C++ compilers; without it, this fails on an AMX machine, where
/// `-march=native` turns AMX on (elsewhere the build never had it).
#[test]
fn the_build_has_amx_off() {
    let info = engine_info();
    assert!(
        !info.build_features.iter().any(|f| f.starts_with("AMX")),
        "llama.cpp was compiled with AMX ({}); see .cargo/config.toml [env]",
        info.system_info
    );
}

/// A throughput job (a plan's `throughput = ["pp16", "tg8"]`) on the real model: one timed run
/// after llama-bench's warm-up, no text, and its figure in line with `worker bench`'s procedure.
#[test]
fn a_throughput_job_measures_one_timed_run() {
    let Some(model) = test_model() else {
        return;
    };
    let mut engine = LlamaEngine::new().unwrap();
    for (test, tokens) in [
        (
            benchfarm_engine::ThroughputTest {
                n_prompt: 16,
                n_gen: 0,
            },
            16,
        ),
        (
            benchfarm_engine::ThroughputTest {
                n_prompt: 0,
                n_gen: 8,
            },
            8,
        ),
    ] {
        let mut req = request(&model, "ignored");
        req.throughput = Some(test);
        let g = engine.generate(&req).unwrap();
        let m = g.throughput.expect("a measurement");
        eprintln!("{test}: {m:?} {:?}", g.timings);
        assert_eq!(m.samples_ns.len(), 1, "{m:?}");
        assert!(m.samples_ns[0] > 0);
        assert!(g.text.is_empty());
        assert!(m.model_n_params > 100_000_000, "{m:?}");
        assert!(m.model_type.starts_with("llama"), "{m:?}");
        assert_eq!(m.backends, "CPU");
        assert_eq!(g.timings.prompt_tokens + g.timings.gen_tokens, tokens);
        // The timed run is part of the job's wall time (with the warm-up and, first, the load).
        assert!(
            m.samples_ns[0] as f64 / 1e6 < g.timings.wall_ms,
            "{m:?} {:?}",
            g.timings
        );
    }
}
