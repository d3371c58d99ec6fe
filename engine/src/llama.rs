//! The llama.cpp engine: loads GGUF models in process through `llama-cpp-2` and runs one
//! generation at a time, measuring each phase with a monotonic clock.
//!
//! - The llama.cpp backend is initialised once per process ([`backend`]); llama.cpp's logs go to
//!   `tracing`, and the last warnings/errors are attached to failures ([`logs`]).
//! - A model file is validated with the pure-Rust GGUF reader before llama.cpp opens it, so a
//!   truncated or foreign file fails with a precise reason instead of a bare "null result".
//! - The loaded model is kept and reused while requests name the same file; a fresh context is
//!   created per request, sized to prompt + `max_tokens`, so jobs cannot leak state into each
//!   other.

#[cfg(feature = "dynamic-backends")]
mod backend_modules;
mod bench;
mod greedy_trace;
mod logs;
mod sysinfo;
mod template;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Instant;

use benchfarm_modelfile::{GgufInfo, read_gguf};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::{LogOptions, send_logs_to_tracing};

use crate::utf8::Utf8Stream;
use crate::{
    Engine, EngineError, EngineInfo, GenerateRequest, Generation, LlamaPerf, ModelSource,
    StopReason, Timings,
};
pub use bench::BenchOptions;
pub use greedy_trace::{Candidate, TraceStep};
use logs::LlamaLogs;
pub use template::builtin_template_for;

/// Versions of the bindings (and so of the vendored llama.cpp) this crate is built against.
/// A unit test checks them against Cargo.lock, so a dependency bump cannot leave them stale.
pub(crate) const LLAMA_CPP_2_VERSION: &str = "0.1.160";
pub(crate) const LLAMA_CPP_SYS_2_VERSION: &str = "0.1.161";

/// Tokens of context reserved beyond prompt + `max_tokens` (the sampled end-of-generation token
/// and llama.cpp's own rounding).
const CONTEXT_MARGIN: u32 = 16;
/// Prompts longer than this are refused before tokenizing (llama.cpp's tokenizer takes an i32).
const MAX_PROMPT_BYTES: usize = 64 << 20;

/// The process-wide llama.cpp backend. `LlamaBackend::init` fails when called twice, so it is
/// created exactly once and never dropped.
fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            send_logs_to_tracing(LogOptions::default());
            // A dynamic-backends build has no CPU backend until its module is loaded, and it
            // must be loaded first: llama_backend_init() loads every module it finds on its
            // own search path (the build directory, the executable's, the cwd) when none is
            // registered yet, and a second CPU backend would then sit beside ours.
            #[cfg(feature = "dynamic-backends")]
            backend_modules::load()?;
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Backend(e.clone()))
}

pub(crate) fn engine_info() -> EngineInfo {
    // Listing devices needs the backend registry; a failed init just leaves the list empty.
    let backends = match backend() {
        Ok(_) => {
            let mut names: Vec<String> = Vec::new();
            for device in llama_cpp_2::list_llama_ggml_backend_devices() {
                if !names.contains(&device.backend) {
                    names.push(device.backend);
                }
            }
            names
        }
        Err(_) => Vec::new(),
    };
    EngineInfo {
        name: "llama.cpp".into(),
        llama_cpp_build: format!(
            "llama-cpp-2 {LLAMA_CPP_2_VERSION} (llama-cpp-sys-2 {LLAMA_CPP_SYS_2_VERSION})"
        ),
        backends,
        build_features: crate::features::build_features(sysinfo::system_info()),
        system_info: sysinfo::system_info().to_string(),
        cpu_features: std::fs::read_to_string("/proc/cpuinfo")
            .map(|text| crate::features::cpu_features_from_cpuinfo(&text))
            .unwrap_or_default(),
    }
}

/// A model held in memory, with the identity it was loaded under.
struct Loaded {
    path: PathBuf,
    sha256: String,
    info: GgufInfo,
    model: LlamaModel,
}

/// Runs [`ModelSource::Gguf`] requests with llama.cpp.
pub struct LlamaEngine {
    backend: &'static LlamaBackend,
    loaded: Option<Loaded>,
}

impl std::fmt::Debug for LlamaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaEngine")
            .field("loaded", &self.loaded.as_ref().map(|l| &l.path))
            .finish()
    }
}

impl LlamaEngine {
    /// Initialises llama.cpp's backend on first use in the process.
    pub fn new() -> Result<Self, EngineError> {
        Ok(Self {
            backend: backend()?,
            loaded: None,
        })
    }

    /// The path of the model currently held, if any.
    pub fn loaded_model(&self) -> Option<&Path> {
        self.loaded.as_ref().map(|l| l.path.as_path())
    }

    /// Makes `path` the loaded model; returns the load time in ms when it had to load.
    fn ensure_loaded(
        &mut self,
        path: &Path,
        sha256: &str,
        logs: &LlamaLogs,
    ) -> Result<Option<f64>, EngineError> {
        if self
            .loaded
            .as_ref()
            .is_some_and(|l| l.path == path && l.sha256 == sha256)
        {
            return Ok(None);
        }
        // Free the previous model first: two models need not fit in memory together.
        self.loaded = None;
        let start = Instant::now();
        tracing::debug!(path = %path.display(), "checking gguf header");
        let info = read_gguf(path)?;
        tracing::debug!(
            path = %path.display(),
            architecture = info.architecture().unwrap_or("?"),
            tensors = info.tensors().len(),
            "loading model"
        );
        logs.take();
        let model = LlamaModel::load_from_file(self.backend, path, &LlamaModelParams::default())
            .map_err(|e| EngineError::Load {
                path: path.to_path_buf(),
                reason: logs.reason(&e.to_string()),
            })?;
        let load_ms = ms_since(start);
        tracing::info!(path = %path.display(), load_ms, "model loaded");
        self.loaded = Some(Loaded {
            path: path.to_path_buf(),
            sha256: sha256.to_string(),
            info,
            model,
        });
        Ok(Some(load_ms))
    }

    fn generate_inner(
        &mut self,
        req: &GenerateRequest,
        logs: &LlamaLogs,
    ) -> Result<Generation, EngineError> {
        let start = Instant::now();
        let (path, sha256) = gguf_source(req)?;
        if req.max_tokens == 0 {
            return Err(EngineError::InvalidRequest(
                "max_tokens must be at least 1".into(),
            ));
        }
        if req.system.len() + req.prompt.len() > MAX_PROMPT_BYTES {
            return Err(EngineError::InvalidRequest(format!(
                "prompt is longer than {MAX_PROMPT_BYTES} bytes"
            )));
        }
        let load_ms = self.ensure_loaded(path, sha256, logs)?;
        // The request reaches a loaded model: TTFT counts from here (docs/timings.md).
        let ready = Instant::now();
        let backend = self.backend;
        let Some(loaded) = self.loaded.as_ref() else {
            return Err(EngineError::Llama("model vanished after loading".into()));
        };
        let model = &loaded.model;
        let vocab = model.vocab();

        let prompt =
            template::format_prompt(model, loaded.info.architecture(), &req.system, &req.prompt)?;
        let tokens = vocab.tokenize(prompt.text.as_bytes(), true, true);
        let prompt_tokens = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
        if tokens.is_empty() {
            return Err(EngineError::Llama("the prompt tokenized to nothing".into()));
        }

        let context_cap = context_cap(model.n_ctx_train(), loaded.info.context_length());
        if prompt_tokens.saturating_add(1) > context_cap {
            return Err(EngineError::PromptTooLong {
                prompt_tokens,
                context: context_cap,
            });
        }
        let n_ctx = prompt_tokens
            .saturating_add(req.max_tokens)
            .saturating_add(CONTEXT_MARGIN)
            .min(context_cap);
        // Generation may not run past the context (the sampled token needs no slot).
        let max_tokens = req.max_tokens.min(n_ctx - prompt_tokens);
        let threads = effective_threads(req.threads);
        let ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(prompt_tokens.max(1))
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_no_perf(false);
        logs.take();
        let mut ctx = model.new_context(backend, ctx_params).map_err(|e| {
            EngineError::Llama(format!("creating context: {}", logs.reason(&e.to_string())))
        })?;

        let mut timings = Timings {
            load_ms: load_ms.unwrap_or(0.0),
            cold: load_ms.is_some(),
            prompt_tokens,
            ..Timings::default()
        };
        let mut text = Utf8Stream::default();
        let mut stop = StopReason::MaxTokens;

        if req.cancel.load(Ordering::Relaxed) {
            timings.wall_ms = ms_since(start);
            return Ok(generation(
                String::new(),
                timings,
                prompt.template,
                StopReason::Cancelled,
            ));
        }

        // Prompt evaluation: one batch, logits only for the last position.
        let mut batch = LlamaBatch::new(tokens.len(), 1);
        let last = tokens.len() - 1;
        for (i, &token) in tokens.iter().enumerate() {
            let pos = i32::try_from(i).map_err(|_| EngineError::Llama("prompt too long".into()))?;
            batch
                .add(token, pos, &[0], i == last)
                .map_err(|e| EngineError::Llama(format!("building prompt batch: {e}")))?;
        }
        let decode_err = |what: &str, e: &dyn std::fmt::Display| {
            EngineError::Llama(format!("{what}: {}", logs.reason(&e.to_string())))
        };
        let eval_start = Instant::now();
        ctx.decode(&mut batch)
            .map_err(|e| decode_err("evaluating the prompt", &e))?;
        timings.prompt_ms = ms_since(eval_start);

        let mut sampler = make_sampler(req.temperature, req.seed);
        let mut piece = Vec::new();
        let mut sampled_any = false;
        let mut pos = i32::try_from(tokens.len()).unwrap_or(i32::MAX);
        let mut logits_index = batch.n_tokens() - 1;
        // The generation loop's wall time (end-to-end speed) starts here, so the first token —
        // sampled from the prompt's logits — is inside both the count and the time.
        let loop_start = Instant::now();
        for _ in 0..max_tokens {
            if req.cancel.load(Ordering::Relaxed) {
                stop = StopReason::Cancelled;
                break;
            }
            let token = sampler.sample(&ctx, logits_index);
            if !sampled_any {
                timings.ttft_ms = ms_since(ready);
                sampled_any = true;
            }
            if vocab.is_eog(token) {
                stop = StopReason::Eos;
                break;
            }
            timings.gen_tokens += 1;
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            text.push(&piece);
            if timings.gen_tokens == max_tokens {
                break;
            }
            batch.clear();
            batch
                .add(token, pos, &[0], true)
                .map_err(|e| EngineError::Llama(format!("building token batch: {e}")))?;
            pos = pos.saturating_add(1);
            logits_index = 0;
            // Decode time alone, as llama.cpp's t_eval_ms counts it: llama-bench's tg figure.
            let decode_start = Instant::now();
            ctx.decode(&mut batch)
                .map_err(|e| decode_err("generating", &e))?;
            timings.decode_ms += ms_since(decode_start);
            timings.decode_tokens += 1;
        }
        if sampled_any {
            timings.gen_ms = ms_since(loop_start);
        }
        timings.wall_ms = ms_since(start);
        let perf = ctx.timings();
        let llama_perf = LlamaPerf {
            t_p_eval_ms: perf.t_p_eval_ms(),
            t_eval_ms: perf.t_eval_ms(),
            n_p_eval: perf.n_p_eval(),
            n_eval: perf.n_eval(),
        };
        tracing::debug!(
            path = %path.display(),
            prompt_tokens,
            gen_tokens = timings.gen_tokens,
            gen_tps = timings.gen_tokens_per_second(),
            decode_tps = timings.decode_tokens_per_second(),
            stop = ?stop,
            "generation done"
        );
        let mut generation = generation(text.finish(), timings, prompt.template, stop);
        generation.llama_perf = Some(llama_perf);
        Ok(generation)
    }
}

impl LlamaEngine {
    /// The text a job's prompt becomes before tokenizing: `system` and `user` through the chat
    /// template a job of the model at `path` would use (loading the model if it is not loaded).
    /// For checks against llama.cpp's own tools, which take that text as their prompt.
    pub fn chat_prompt(
        &mut self,
        path: &Path,
        system: &str,
        user: &str,
    ) -> Result<String, EngineError> {
        let logs = LlamaLogs::default();
        logs.run(|| {
            // The digest only guards model reuse; a job's own would load the file again.
            self.ensure_loaded(path, "chat-prompt", &logs)?;
            let Some(loaded) = self.loaded.as_ref() else {
                return Err(EngineError::Llama("model vanished after loading".into()));
            };
            let prompt =
                template::format_prompt(&loaded.model, loaded.info.architecture(), system, user)?;
            Ok(prompt.text)
        })
    }
}

impl Engine for LlamaEngine {
    fn generate(&mut self, req: &GenerateRequest) -> Result<Generation, EngineError> {
        let logs = LlamaLogs::default();
        logs.run(|| match req.throughput {
            Some(test) => self.throughput_job(req, test, &logs),
            None => self.generate_inner(req, &logs),
        })
    }
}

fn generation(
    text: String,
    timings: Timings,
    chat_template: String,
    stop: StopReason,
) -> Generation {
    Generation {
        text,
        timings,
        chat_template,
        stop,
        llama_perf: None,
        throughput: None,
    }
}

/// The GGUF file and digest a request names; the llama.cpp engine runs nothing else.
fn gguf_source(req: &GenerateRequest) -> Result<(&Path, &str), EngineError> {
    match &req.model {
        ModelSource::Gguf { path, sha256 } => Ok((path, sha256)),
        ModelSource::Scripted(_) => Err(EngineError::InvalidRequest(
            "the llama.cpp engine only runs GGUF models".into(),
        )),
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The largest context a request may use: the model's training context (from llama.cpp, else
/// from the GGUF header), never 0.
fn context_cap(n_ctx_train: u32, header_context: Option<u64>) -> u32 {
    let from_header = header_context.and_then(|c| u32::try_from(c).ok());
    match (n_ctx_train, from_header) {
        (0, Some(h)) if h > 0 => h,
        (0, _) => 2048,
        (n, _) => n,
    }
}

/// llama.cpp thread count for a request: its own, or the machine's effective CPUs when 0.
fn effective_threads(requested: u32) -> i32 {
    let n = if requested == 0 {
        crate::hardware::detect().effective_cpus()
    } else {
        requested
    };
    i32::try_from(n.max(1)).unwrap_or(i32::MAX)
}

/// Greedy at temperature 0 (or below); otherwise temperature scaling then a seeded draw.
fn make_sampler(temperature: f32, seed: u64) -> LlamaSampler {
    if temperature > 0.0 && temperature.is_finite() {
        LlamaSampler::chain_simple([
            LlamaSampler::temp(temperature),
            LlamaSampler::dist(sampler_seed(seed)),
        ])
    } else {
        LlamaSampler::greedy()
    }
}

/// Folds the 64-bit request seed into llama.cpp's 32-bit one. `u32::MAX` is llama.cpp's
/// "pick a random seed" value, which would make a seeded run irreproducible, so it is avoided.
fn sampler_seed(seed: u64) -> u32 {
    let folded = (seed ^ (seed >> 32)) as u32;
    if folded == u32::MAX {
        folded - 1
    } else {
        folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_fold_and_avoid_the_random_sentinel() {
        assert_eq!(sampler_seed(42), 42);
        assert_ne!(sampler_seed(1 << 32), sampler_seed(0));
        assert_eq!(sampler_seed(u64::from(u32::MAX)), u32::MAX - 1);
        assert_ne!(sampler_seed(u64::MAX), u32::MAX);
    }

    #[test]
    fn context_cap_prefers_llama_then_header() {
        assert_eq!(context_cap(8192, Some(4096)), 8192);
        assert_eq!(context_cap(0, Some(4096)), 4096);
        assert_eq!(context_cap(0, None), 2048);
        assert_eq!(context_cap(0, Some(u64::MAX)), 2048);
    }

    #[test]
    fn threads_default_to_the_machine() {
        assert_eq!(effective_threads(3), 3);
        assert!(effective_threads(0) >= 1);
    }

    /// The version strings reported in [`EngineInfo`] must match what Cargo actually resolved.
    #[test]
    fn reported_versions_match_cargo_lock() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
            .expect("workspace Cargo.lock");
        let version_of = |name: &str| {
            let header = format!("name = \"{name}\"\nversion = \"");
            let at = lock.find(&header).map(|i| i + header.len())?;
            lock[at..].split('"').next().map(str::to_string)
        };
        assert_eq!(
            version_of("llama-cpp-2").as_deref(),
            Some(LLAMA_CPP_2_VERSION)
        );
        assert_eq!(
            version_of("llama-cpp-sys-2").as_deref(),
            Some(LLAMA_CPP_SYS_2_VERSION)
        );
    }
}
