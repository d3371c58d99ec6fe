//! `worker bench`'s runner: llama-bench's procedure on our engine's llama.cpp build.
//!
//! Step for step what llama.cpp's `tools/llama-bench` does, so that our figures and its are the
//! same measurement: per test, a fresh context (`n_ctx = n_prompt + n_gen`, `n_batch` 2048 and
//! `n_ubatch` 512 as llama-bench's defaults); a warm-up run (the prompt once, one generated
//! token); then per repetition the KV cache cleared, the clock started, the prompt decoded in
//! `n_batch`-token chunks of random tokens (the first one BOS when the model adds one),
//! synchronised, then `n_gen` single-token decodes each synchronised, the clock stopped. No
//! sampling, no chat template, no detokenizing: those belong to a job, not to this figure.
//! The statistics and output formats are pure and live in [`crate::bench`].

use std::num::NonZeroU32;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use super::{
    LLAMA_CPP_SYS_2_VERSION, LlamaEngine, LlamaLogs, effective_threads, gguf_source, ms_since,
    sysinfo,
};
use crate::bench::{BenchContext, BenchRecord, ThroughputTest, TokenSource, iso8601_utc};
use crate::{EngineError, GenerateRequest, Generation, StopReason, ThroughputMeasurement, Timings};

/// What to run: llama-bench's `-p/-n/--pg`, `-t`, `-r`, `-b`, `-ub`.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    pub tests: Vec<ThroughputTest>,
    /// One run of every test per thread count.
    pub threads: Vec<u32>,
    pub repetitions: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            tests: crate::bench::plan_tests(&[512], &[128], &[]),
            threads: vec![crate::hardware::detect().effective_cpus()],
            repetitions: 5,
            n_batch: 2048,
            n_ubatch: 512,
        }
    }
}

impl LlamaEngine {
    /// Runs every test of `opts` on the model at `path`, in llama-bench's order (each test at
    /// every thread count), calling `on_record` as each finishes.
    pub fn bench(
        &mut self,
        path: &Path,
        opts: &BenchOptions,
        mut on_record: impl FnMut(&BenchRecord),
    ) -> Result<Vec<BenchRecord>, EngineError> {
        let logs = LlamaLogs::default();
        logs.run(|| {
            // The bench names the file, not a digest: its identity only guards model reuse.
            self.ensure_loaded(path, "bench", &logs)?;
            let ctx = self.bench_context(path, opts);
            let mut records = Vec::new();
            for test in &opts.tests {
                for &threads in &opts.threads {
                    let record = self.bench_one(&ctx, *test, threads, opts, &logs)?;
                    on_record(&record);
                    records.push(record);
                }
            }
            Ok(records)
        })
    }

    /// A farm's throughput job: `test` once, llama-bench's way (a warm-up run, then one timed
    /// run on a fresh KV cache), on the request's model and threads. A job is one repetition: the
    /// plan's `repetitions` make the others, on whichever workers the placement picks.
    pub(super) fn throughput_job(
        &mut self,
        req: &GenerateRequest,
        test: ThroughputTest,
        logs: &LlamaLogs,
    ) -> Result<Generation, EngineError> {
        let start = Instant::now();
        let (path, sha256) = gguf_source(req)?;
        if test.n_tokens() == 0 {
            return Err(EngineError::InvalidRequest(
                "a throughput test needs a prompt or a generation".into(),
            ));
        }
        let load_ms = self.ensure_loaded(path, sha256, logs)?;
        let threads = u32::try_from(effective_threads(req.threads)).unwrap_or(1);
        let opts = BenchOptions {
            tests: vec![test],
            threads: vec![threads],
            repetitions: 1,
            // llama-bench's defaults, as `worker bench` uses them.
            n_batch: 2048,
            n_ubatch: 512,
        };
        let bench = self.bench_context(path, &opts);
        let record = self.bench_one(&bench, test, threads, &opts, logs)?;
        Ok(Generation {
            text: String::new(),
            timings: Timings {
                load_ms: load_ms.unwrap_or(0.0),
                cold: load_ms.is_some(),
                prompt_tokens: test.n_prompt,
                gen_tokens: test.n_gen,
                wall_ms: ms_since(start),
                ..Timings::default()
            },
            chat_template: String::new(),
            stop: StopReason::MaxTokens,
            llama_perf: None,
            throughput: Some(ThroughputMeasurement {
                samples_ns: record.samples_ns,
                model_type: bench.model_type,
                model_n_params: bench.model_n_params,
                backends: bench.backends,
            }),
        })
    }

    fn bench_context(&self, path: &Path, opts: &BenchOptions) -> BenchContext {
        let info = crate::engine_info();
        let cpu_info = llama_cpp_2::list_llama_ggml_backend_devices()
            .into_iter()
            .find(|d| d.backend == "CPU")
            .map(|d| d.description)
            .unwrap_or_default();
        let (model_type, model_size, model_n_params) = match &self.loaded {
            Some(l) => {
                let size_label = l
                    .info
                    .get("general.size_label")
                    .and_then(benchfarm_modelfile::GgufValue::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| crate::bench::format::params_cell(l.model.n_params()));
                let model_type = format!(
                    "{} {} {}",
                    l.info.architecture().unwrap_or("?"),
                    size_label,
                    l.info.file_type_name().unwrap_or("?")
                );
                (model_type, l.model.size(), l.model.n_params())
            }
            None => (String::new(), 0, 0),
        };
        BenchContext {
            // The vendored llama.cpp carries no git commit; the crate version pins its sources.
            build_commit: format!("llama-cpp-sys-2 {LLAMA_CPP_SYS_2_VERSION}"),
            cpu_info,
            // llama-bench names the non-CPU backends, "CPU" when there are none.
            backends: {
                let others: Vec<String> =
                    info.backends.into_iter().filter(|b| b != "CPU").collect();
                if others.is_empty() {
                    "CPU".into()
                } else {
                    others.join(",")
                }
            },
            model_filename: path.display().to_string(),
            model_type,
            model_size,
            model_n_params,
            n_batch: opts.n_batch,
            n_ubatch: opts.n_ubatch,
            build_features: crate::features::build_features(sysinfo::system_info()),
        }
    }

    fn bench_one(
        &self,
        bench: &BenchContext,
        test: ThroughputTest,
        threads: u32,
        opts: &BenchOptions,
        logs: &LlamaLogs,
    ) -> Result<BenchRecord, EngineError> {
        let Some(loaded) = self.loaded.as_ref() else {
            return Err(EngineError::Llama("no model loaded".into()));
        };
        let model = &loaded.model;
        let n_ctx = test.n_tokens().max(1);
        let threads_i = i32::try_from(threads.max(1)).unwrap_or(i32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(opts.n_batch)
            .with_n_ubatch(opts.n_ubatch)
            .with_n_threads(threads_i)
            .with_n_threads_batch(threads_i);
        logs.take();
        let mut ctx = model.new_context(self.backend, params).map_err(|e| {
            EngineError::Llama(format!("creating context: {}", logs.reason(&e.to_string())))
        })?;
        let vocab = model.vocab();
        let bos = vocab.should_add_bos().then(|| vocab.bos());
        let n_vocab = u32::try_from(model.n_vocab()).unwrap_or(1);
        let mut tokens = TokenSource::new(n_vocab, 1);
        let run = Run {
            bos,
            n_batch: opts.n_batch.max(1),
            logs,
        };

        // Warm-up, as llama-bench: the whole prompt, and one generated token.
        if test.n_prompt > 0 {
            run.prompt(&mut ctx, &mut tokens, test.n_prompt)?;
        }
        if test.n_gen > 0 {
            run.generate(&mut ctx, &mut tokens, 1)?;
        }
        let test_time = iso8601_utc(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        let mut samples_ns = Vec::new();
        for _ in 0..opts.repetitions.max(1) {
            ctx.clear_kv_cache();
            let start = Instant::now();
            if test.n_prompt > 0 {
                run.prompt(&mut ctx, &mut tokens, test.n_prompt)?;
            }
            if test.n_gen > 0 {
                run.generate(&mut ctx, &mut tokens, test.n_gen)?;
            }
            samples_ns.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        let record = BenchRecord::new(bench, test, threads, test_time, samples_ns);
        tracing::info!(
            test = %test.name(),
            threads,
            avg_ts = record.avg_ts,
            stddev_ts = record.stddev_ts,
            "bench test done"
        );
        Ok(record)
    }
}

/// The two kinds of work of a test, on one context.
struct Run<'a> {
    bos: Option<LlamaToken>,
    n_batch: u32,
    logs: &'a LlamaLogs,
}

impl Run<'_> {
    fn decode(&self, ctx: &mut LlamaContext, tokens: &[LlamaToken]) -> Result<(), EngineError> {
        let mut batch = LlamaBatch::get_one(tokens)
            .map_err(|e| EngineError::Llama(format!("building a batch: {e}")))?;
        ctx.decode(&mut batch).map_err(|e| {
            EngineError::Llama(format!("decoding: {}", self.logs.reason(&e.to_string())))
        })
    }

    /// llama-bench's `test_prompt`: `n_prompt` random tokens in chunks of `n_batch`.
    fn prompt(
        &self,
        ctx: &mut LlamaContext,
        source: &mut TokenSource,
        n_prompt: u32,
    ) -> Result<(), EngineError> {
        let mut done = 0;
        let mut chunk = Vec::with_capacity(self.n_batch as usize);
        while done < n_prompt {
            let n = (n_prompt - done).min(self.n_batch);
            chunk.clear();
            for i in 0..n {
                let token = match self.bos {
                    Some(bos) if done == 0 && i == 0 => bos,
                    _ => random_token(source),
                };
                chunk.push(token);
            }
            self.decode(ctx, &chunk)?;
            done += n;
        }
        ctx.synchronize();
        Ok(())
    }

    /// llama-bench's `test_gen`: `n_gen` single-token decodes, each synchronised.
    fn generate(
        &self,
        ctx: &mut LlamaContext,
        source: &mut TokenSource,
        n_gen: u32,
    ) -> Result<(), EngineError> {
        let mut token = self.bos.unwrap_or_else(|| random_token(source));
        for _ in 0..n_gen {
            self.decode(ctx, std::slice::from_ref(&token))?;
            ctx.synchronize();
            token = random_token(source);
        }
        Ok(())
    }
}

fn random_token(source: &mut TokenSource) -> LlamaToken {
    LlamaToken(i32::try_from(source.next_token()).unwrap_or(0))
}
