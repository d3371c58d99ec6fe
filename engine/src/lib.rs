//! benchfarm-engine: the worker's local side of a benchmark job — turn a prompt into a
//! generation with honest timings.
//!
//! This file is the seam the worker is written against: the [`Engine`] trait, the request and
//! result types, and [`Engines`], which dispatches a request to the scripted engine or to
//! llama.cpp according to its [`ModelSource`]. This is the only crate in the workspace that links
//! llama.cpp (through `llama-cpp-2`); everything llama-specific stays in [`llama`].
//!
//! Also here: [`hardware`] (what machine a result was measured on), [`features`] (the CPU
//! features the build uses beside those the CPU has) and [`models`] (which GGUF files a worker
//! can offer). What each timing figure means is defined once, in docs/timings.md.

pub mod bench;
pub mod features;
pub mod hardware;
mod llama;
pub mod models;
mod scripted;
mod utf8;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use benchfarm_domain::ThroughputTest;
use benchfarm_modelfile::ScriptedModel;
use serde::{Deserialize, Serialize};

pub use benchfarm_modelfile;
pub use llama::{BenchOptions, Candidate, LlamaEngine, TraceStep, builtin_template_for};
pub use scripted::{
    MAX_SYNTHETIC_MS, ScriptedEngine, estimate_tokens, test_features, throughput_ms,
    throughput_test_features,
};

/// Something that can run one generation at a time.
pub trait Engine: Send {
    fn generate(&mut self, req: &GenerateRequest) -> Result<Generation, EngineError>;
}

/// Which model a request runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    /// A GGUF file run by llama.cpp. `sha256` identifies the file (the engine keeps a loaded model
    /// for as long as requests name the same path and digest); it is computed by the caller, e.g.
    /// with [`models::discover`], and not re-verified on every load.
    Gguf { path: PathBuf, sha256: String },
    /// A scripted model answering from its table.
    Scripted(Arc<ScriptedModel>),
}

/// One generation job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub model: ModelSource,
    pub task_id: String,
    pub repetition: u32,
    /// The job's attempt number (1 for the first try), so scripted faults can target retries.
    #[serde(default)]
    pub attempt: u32,
    /// System message; empty means none.
    pub system: String,
    /// The user message.
    pub prompt: String,
    /// Upper bound on generated tokens; must be at least 1.
    pub max_tokens: u32,
    /// 0 (or less) means greedy decoding.
    pub temperature: f32,
    pub seed: u64,
    /// CPU threads for llama.cpp; 0 means the machine's effective CPU count.
    pub threads: u32,
    /// Set to stop the generation early; it then ends with [`StopReason::Cancelled`].
    #[serde(skip)]
    pub cancel: Arc<AtomicBool>,
    /// A throughput job: run this llama-bench test on the model instead of a generation (no chat
    /// template, no prompt, no sampling: the `system`, `prompt`, `max_tokens` and `temperature`
    /// fields are ignored). The answer is the [`Generation::throughput`] measurement.
    #[serde(default)]
    pub throughput: Option<ThroughputTest>,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    Eos,
    /// `max_tokens` (or the context) ran out.
    MaxTokens,
    /// The request's cancel flag was set.
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub timings: Timings,
    /// Which chat template formatted the prompt: "model" (the GGUF's own), "builtin:<name>"
    /// (llama.cpp's built-in template, for models without one) or "scripted".
    pub chat_template: String,
    pub stop: StopReason,
    /// llama.cpp's own perf counters for this generation's context (`llama_perf_context`), to
    /// cross-check [`Timings`]; `None` from engines that are not llama.cpp.
    #[serde(default)]
    pub llama_perf: Option<LlamaPerf>,
    /// What a throughput job measured (`None` for a generation).
    #[serde(default)]
    pub throughput: Option<ThroughputMeasurement>,
}

/// One throughput job's measurement: llama-bench's procedure for one test (a warm-up run, then
/// timed runs on a fresh KV cache), as [`crate::bench`] describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThroughputMeasurement {
    /// Each timed run, in nanoseconds (llama-bench's `samples_ns`).
    pub samples_ns: Vec<u64>,
    /// llama-bench's `model_type` ("llama 135M Q4_1"); empty for a scripted model.
    pub model_type: String,
    /// Parameters (0: unknown, e.g. a scripted model).
    pub model_n_params: u64,
    /// llama-bench's `backends` ("CPU", or the non-CPU backends).
    pub backends: String,
}

pub use benchfarm_domain::Timings;

/// Why a generation failed. Messages name the model file and, for llama.cpp failures, include
/// llama.cpp's own last warning/error lines.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request itself is unusable.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The file is not a usable GGUF (checked before llama.cpp sees it).
    #[error("bad model file: {0}")]
    BadModel(#[from] benchfarm_modelfile::GgufError),
    /// llama.cpp's backend could not be initialised.
    #[error("llama.cpp backend init failed: {0}")]
    Backend(String),
    /// llama.cpp refused to load the model.
    #[error("{}: llama.cpp failed to load the model: {reason}", path.display())]
    Load { path: PathBuf, reason: String },
    /// The prompt does not fit in the model's context.
    #[error(
        "prompt of {prompt_tokens} tokens does not fit the model's context of {context} tokens"
    )]
    PromptTooLong { prompt_tokens: u32, context: u32 },
    /// Any other llama.cpp failure (context creation, template, tokenizing, decoding).
    #[error("llama.cpp: {0}")]
    Llama(String),
    /// A scripted model's fault fired (see docs/scripted-models.md); the text names the kind.
    #[error("scripted fault: {0}")]
    ScriptedFault(String),
    /// The engine runs in another process, which failed, or reported this failure as text.
    #[error("{0}")]
    Process(String),
}

/// llama.cpp's perf counters of one context (`llama_perf_context_data`), in its own units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LlamaPerf {
    /// Time evaluating batches of more than one token (the prompt).
    pub t_p_eval_ms: f64,
    /// Time evaluating single-token batches (generation).
    pub t_eval_ms: f64,
    /// Tokens in those multi-token batches (llama.cpp reports at least 1).
    pub n_p_eval: i32,
    /// Single-token batches evaluated (llama.cpp reports at least 1).
    pub n_eval: i32,
}

/// What runs the models on this worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub name: String,
    /// The llama.cpp binding versions this worker was built with.
    pub llama_cpp_build: String,
    /// ggml backends with devices present, e.g. ["CPU"].
    pub backends: Vec<String>,
    /// ggml's system info line for this build, verbatim (`llama_print_system_info()`).
    #[serde(default)]
    pub system_info: String,
    /// The CPU features the build uses, in ggml's names, parsed from `system_info`
    /// (see [`features::build_features`]), e.g. ["SSE3", "AVX", "AVX2", "FMA", "OPENMP"].
    #[serde(default)]
    pub build_features: Vec<String>,
    /// The features this machine's CPU offers, in the same names
    /// (see [`features::cpu_features_from_cpuinfo`]).
    #[serde(default)]
    pub cpu_features: Vec<String>,
}

impl EngineInfo {
    /// Features the CPU has that the build does not use (a portable build on a newer CPU).
    pub fn unused_features(&self) -> Vec<String> {
        features::unused_features(&self.cpu_features, &self.build_features)
    }
}

/// Describes the engine (initialising llama.cpp's backend if needed to list devices).
pub fn engine_info() -> EngineInfo {
    llama::engine_info()
}

/// The engine a worker uses: scripted models are answered in process, GGUF models go to a
/// llama.cpp engine created on first use (so a worker serving only scripted models never
/// initialises llama.cpp).
#[derive(Debug, Default)]
pub struct Engines {
    scripted: ScriptedEngine,
    llama: Option<LlamaEngine>,
}

impl Engines {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Engine for Engines {
    fn generate(&mut self, req: &GenerateRequest) -> Result<Generation, EngineError> {
        match &req.model {
            ModelSource::Scripted(_) => self.scripted.generate(req),
            ModelSource::Gguf { .. } => {
                let llama = match self.llama.take() {
                    Some(engine) => engine,
                    None => LlamaEngine::new()?,
                };
                self.llama.insert(llama).generate(req)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_through_json_without_the_cancel_flag() {
        let model = ScriptedModel::parse("name = \"m\"\n[answers]\nt = [\"a\"]", "m").unwrap();
        let req = GenerateRequest {
            model: ModelSource::Scripted(Arc::new(model)),
            task_id: "t".into(),
            repetition: 2,
            attempt: 3,
            system: "s".into(),
            prompt: "p".into(),
            max_tokens: 8,
            temperature: 0.0,
            seed: 1,
            threads: 1,
            cancel: Arc::new(AtomicBool::new(true)),
            throughput: None,
        };
        let json = serde_json::to_string(&req).unwrap();
        let back: GenerateRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.model, req.model);
        assert_eq!(back.repetition, 2);
        assert_eq!(back.attempt, 3);
        assert!(!back.cancel.load(std::sync::atomic::Ordering::Relaxed));
    }

    #[test]
    fn engines_dispatch_scripted_without_llama() {
        let model = ScriptedModel::parse("name = \"m\"\n[answers]\nt = [\"hello\"]", "m").unwrap();
        let mut engines = Engines::new();
        let req = GenerateRequest {
            model: ModelSource::Scripted(Arc::new(model)),
            task_id: "t".into(),
            repetition: 0,
            attempt: 1,
            system: String::new(),
            prompt: "p".into(),
            max_tokens: 8,
            temperature: 0.0,
            seed: 0,
            threads: 1,
            cancel: Arc::default(),
            throughput: None,
        };
        let g = engines.generate(&req).unwrap();
        assert_eq!(g.text, "hello");
        assert_eq!(g.chat_template, "scripted");
        assert!(engines.llama.is_none());
    }
}
