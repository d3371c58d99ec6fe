//! The job loop: assignment in, graded result out. Model work runs on dedicated threads.
//!
//! Each slot is one OS thread that owns its engine (so a loaded llama.cpp model stays loaded for
//! the next job of the same model) and never touches the async runtime: it takes jobs from a
//! channel, runs the engine, grades the answer with the suite crate and sends a [`RunnerEvent`]
//! back. The engine is a [`Supervisor`] (the model runs in a child process, so an abort costs one
//! job) or, with [`EngineMode::InProcess`], an in-process [`Engines`]. A panic inside a job is
//! caught and reported as that job's failure; the slot carries on with a fresh engine.
//!
//! A remote model's job never reaches an engine: the slot calls the endpoint itself
//! ([`crate::remote`]), grades the answer the same way and reports the HTTP side with it.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use benchfarm_engine::{Engine, Engines, GenerateRequest, ModelSource, StopReason, ThroughputTest};

use crate::options::{EngineMode, WorkerOptions};
use crate::panic_text::panic_text;
use crate::remote::{RemoteCaller, RemoteRequest};
use crate::supervisor::Supervisor;
use benchfarm_modelfile::ScriptedModel;
use benchfarm_proto::v1 as pb;
use benchfarm_suite::Suite;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// A job handed to a slot.
#[derive(Debug)]
pub struct Job {
    pub assignment: pb::JobAssignment,
    pub key: pb::JobKey,
    /// Set by the client to stop the generation (cancel from the coordinator, or timeout).
    pub cancel: Arc<AtomicBool>,
    /// Why `cancel` was set, for the failure message.
    pub cancel_reason: Arc<Mutex<Option<String>>>,
    /// The model file from the cache, held (not evictable) until the job is dropped; `None` for
    /// scripted models and models of the `--models` directory.
    pub cached: Option<crate::cache::Lease>,
}

/// What a slot reports.
#[derive(Debug)]
pub enum RunnerEvent {
    Started(pb::JobKey),
    /// Taken off the queue after [`Runner::stop_starting`]: given back, never started.
    NotStarted(pb::JobKey),
    Finished(pb::JobKey, Result<Box<pb::JobResult>, Failure>),
}

/// Why a job ended without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// The worker refused the job for what it asks (scripted test features without
    /// `--allow-scripted-faults`), not for anything wrong with the worker: the coordinator does
    /// not count it toward the worker's quarantine.
    pub refused: bool,
    /// The assignment named its suite by digest only, and this worker does not hold it: nothing
    /// was started, and the coordinator sends the text with the next assignment.
    pub suite_unknown: bool,
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure {
            reason,
            refused: false,
            suite_unknown: false,
        }
    }
}

impl From<&str> for Failure {
    fn from(reason: &str) -> Self {
        Failure::from(reason.to_string())
    }
}

/// Everything a slot needs besides the job: the local models, thread count, caches.
#[derive(Debug)]
struct Context {
    /// sha256 → GGUF path, from model discovery.
    models: HashMap<String, PathBuf>,
    threads: u32,
    /// Scripted models run this many times faster here (a simulation knob).
    speed_factor: f64,
    /// Whether scripted models' test features (faults, delays, long synthetic times) run here.
    allow_scripted_faults: bool,
    /// Parsed suites by their text's sha256 (assignments after a connection's first name the
    /// suite by it), and scripted models by their text.
    suites: Mutex<HashMap<String, Arc<Suite>>>,
    scripted: Mutex<HashMap<String, Arc<ScriptedModel>>>,
    /// What the llama.cpp build uses and what the CPU offers (ggml's names), stamped on every
    /// GGUF result so that a stored figure says which build measured it.
    features: BuildFeatures,
    /// The HTTP caller of remote models, started on the first remote job.
    remote: OnceLock<Result<RemoteCaller, String>>,
}

/// The build's and the CPU's features, as in the worker's `EngineInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildFeatures {
    pub build: Vec<String>,
    pub cpu: Vec<String>,
}

/// The slots, and the channel that feeds them.
#[derive(Debug)]
pub struct Runner {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Set when the worker drains: slots finish what they run and give back what waits.
    stop_starting: Arc<AtomicBool>,
    /// Per slot, the size of the model its engine holds (0: none), for the heartbeat's RAM.
    held_bytes: Arc<Vec<AtomicU64>>,
}

impl Runner {
    /// Starts `slots` threads; each job gets `threads` CPU threads and runs its engine as
    /// `options.engine` says. Scripted models are sped up by `options.speed_factor`, and their
    /// test features run only with `options.allow_scripted_faults`.
    pub fn start(
        slots: u32,
        threads: u32,
        models: HashMap<String, PathBuf>,
        events: mpsc::Sender<RunnerEvent>,
        options: &WorkerOptions,
        features: BuildFeatures,
    ) -> std::io::Result<Runner> {
        let engine = options.engine.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let stop_starting = Arc::new(AtomicBool::new(false));
        let held_bytes: Arc<Vec<AtomicU64>> =
            Arc::new((0..slots.max(1)).map(|_| AtomicU64::new(0)).collect());
        let context = Arc::new(Context {
            models,
            threads,
            speed_factor: options.speed_factor,
            allow_scripted_faults: options.allow_scripted_faults,
            suites: Mutex::new(HashMap::new()),
            scripted: Mutex::new(HashMap::new()),
            features,
            remote: OnceLock::new(),
        });
        for slot in 0..slots.max(1) {
            let rx = Arc::clone(&rx);
            let context = Arc::clone(&context);
            let events = events.clone();
            let mode = engine.clone();
            let stop_starting = Arc::clone(&stop_starting);
            let held_bytes = Arc::clone(&held_bytes);
            std::thread::Builder::new()
                .name(format!("slot-{slot}"))
                .spawn(move || {
                    let mut engine = new_engine(&mode);
                    // The model this slot's engine holds, for `benchfarm_worker_model_loaded`.
                    let mut held: Option<String> = None;
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if stop_starting.load(Ordering::Relaxed) {
                            // Draining: a job that waited for this slot goes back to the
                            // coordinator, which gives it to a worker that stays.
                            if events
                                .blocking_send(RunnerEvent::NotStarted(job.key.clone()))
                                .is_err()
                            {
                                return;
                            }
                            continue;
                        }
                        if events
                            .blocking_send(RunnerEvent::Started(job.key.clone()))
                            .is_err()
                        {
                            return;
                        }
                        let model = job
                            .assignment
                            .model
                            .as_ref()
                            .map(|m| m.name.clone())
                            .unwrap_or_default();
                        let task = job.assignment.task_id.clone();
                        crate::telemetry::running(&model, &task, 1.0);
                        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            execute(&job, &context, engine.as_mut())
                        }))
                        .unwrap_or_else(|panic| {
                            let what = panic_text(panic.as_ref());
                            // The engine may be in any state after a panic: start afresh.
                            engine = new_engine(&mode);
                            metrics::counter!("benchfarm_worker_engine_restarts_total")
                                .increment(1);
                            Err(Failure::from(format!("engine panicked: {what}")))
                        });
                        crate::telemetry::running(&model, &task, -1.0);
                        let holds = match &outcome {
                            Err(e) if e.reason.starts_with("engine panicked") => None,
                            _ => Some(model.as_str()),
                        };
                        crate::telemetry::slot_holds(&mut held, holds);
                        let size = job.assignment.model.as_ref().map_or(0, |m| m.size_bytes);
                        if let Some(bytes) = held_bytes.get(slot as usize) {
                            bytes.store(if holds.is_some() { size } else { 0 }, Ordering::Relaxed);
                        }
                        if events
                            .blocking_send(RunnerEvent::Finished(job.key.clone(), outcome))
                            .is_err()
                        {
                            return;
                        }
                    }
                })?;
        }
        Ok(Runner {
            jobs: tx,
            stop_starting,
            held_bytes,
        })
    }

    /// Bytes of the models the slots' engines hold now (a job of another model frees them).
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add)
    }

    /// From now on, jobs still waiting for a slot are given back instead of started
    /// ([`RunnerEvent::NotStarted`]); running ones finish.
    pub fn stop_starting(&self) {
        self.stop_starting.store(true, Ordering::Relaxed);
    }

    /// Queues a job for the next free slot.
    pub fn submit(&self, job: Job) -> Result<(), String> {
        self.jobs
            .send(job)
            .map_err(|_| "the job runner has stopped".to_string())
    }
}

/// A slot's engine for `mode`.
fn new_engine(mode: &EngineMode) -> Box<dyn Engine> {
    match mode {
        EngineMode::InProcess => Box::new(Engines::new()),
        EngineMode::Child { program } => Box::new(Supervisor::new(program.clone())),
    }
}

/// Runs one job to a graded result, or a reason it could not.
fn execute(
    job: &Job,
    context: &Context,
    engine: &mut dyn Engine,
) -> Result<Box<pb::JobResult>, Failure> {
    let a = &job.assignment;
    let model_ref = a.model.as_ref().ok_or("assignment without a model")?;
    // A throughput job runs a llama-bench test, not a suite task: no suite, prompt or grade.
    let throughput = a.throughput.map(|t| ThroughputTest {
        n_prompt: t.n_prompt,
        n_gen: t.n_gen,
    });
    let suite;
    let task = match throughput {
        Some(_) => None,
        None => {
            suite = suite_of(context, a)?;
            Some(
                suite
                    .task(&a.task_id)
                    .ok_or_else(|| format!("suite {} has no task {:?}", suite.name, a.task_id))?,
            )
        }
    };
    if let Some(pb::model_ref::Source::Remote(spec)) = &model_ref.source {
        let task = task.ok_or("a remote model runs no throughput test")?;
        return execute_remote(job, context, task, model_ref, spec).map_err(Failure::from);
    }
    let model = match &model_ref.source {
        Some(pb::model_ref::Source::ScriptedToml(text)) => {
            let model = cached(&context.scripted, text, |t| {
                ScriptedModel::parse(t, &format!("scripted model {}", model_ref.name))
                    .map(|m| m.with_speed_factor(context.speed_factor))
                    .map_err(|e| e.to_string())
            })?;
            // Faults, delays and long synthetic times are test features: a production worker
            // refuses them, as a failure of the job and not of the worker.
            if !context.allow_scripted_faults
                && let Some(reason) = scripted_test_features(&model, a, task, throughput)
            {
                return Err(Failure {
                    reason,
                    refused: true,
                    suite_unknown: false,
                });
            }
            ModelSource::Scripted(model)
        }
        Some(pb::model_ref::Source::Gguf(_)) => {
            let cached = job.cached.as_ref().map(|lease| &lease.path);
            let path = cached
                .or_else(|| context.models.get(&model_ref.sha256))
                .ok_or_else(|| {
                    format!(
                        "model {} (sha256 {}) is not on this worker",
                        model_ref.name, model_ref.sha256
                    )
                })?;
            ModelSource::Gguf {
                path: path.clone(),
                sha256: model_ref.sha256.clone(),
            }
        }
        // Resolved by the coordinator at submit; an assignment never carries one.
        Some(pb::model_ref::Source::Registered(_)) => {
            return Err("assignment names a registered model it did not resolve".into());
        }
        Some(pb::model_ref::Source::Remote(_)) | None => {
            return Err("assignment model has no source".into());
        }
    };
    // A scripted model runs no llama.cpp: the build's features say nothing about its timings.
    let features = match &model {
        ModelSource::Gguf { .. } => context.features.clone(),
        ModelSource::Scripted(_) => BuildFeatures::default(),
    };
    let request = GenerateRequest {
        model,
        task_id: a.task_id.clone(),
        repetition: a.repetition,
        attempt: job.key.attempt,
        system: task.map(|t| t.system.clone()).unwrap_or_default(),
        prompt: task.map(|t| t.prompt.clone()).unwrap_or_default(),
        max_tokens: task.map_or(1, |t| t.max_tokens),
        temperature: task.map_or(0.0, |t| t.temperature),
        seed: a.seed,
        threads: context.threads,
        cancel: Arc::clone(&job.cancel),
        throughput,
    };
    debug!(job = %a.task_id, model = %model_ref.name, "generating");
    let started = SystemTime::now();
    let outcome = engine.generate(&request);
    let ended = SystemTime::now();
    // A cancelled job reports why it was cancelled (timeout, coordinator), also when stopping it
    // took killing its engine process: that error is a consequence, not the cause.
    let cancelled = job.cancel.load(Ordering::Relaxed);
    let generation = match outcome {
        Err(e) if !cancelled => return Err(e.to_string().into()),
        Ok(g) if !cancelled && g.stop != StopReason::Cancelled => g,
        _ => {
            return Err(job
                .cancel_reason
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_else(|| "cancelled".to_string())
                .into());
        }
    };
    let t = &generation.timings;
    crate::telemetry::engine_phases(&a.trace_parent, &model_ref.name, started, ended, t);
    let (grade, measurement) = match (task, generation.throughput.as_ref()) {
        (Some(task), _) => {
            let grade = graded(a, task, &generation.text);
            crate::telemetry::job_ran(&model_ref.name, t);
            info!(task = %a.task_id, model = %model_ref.name, rep = a.repetition, verdict = %grade.verdict,
                  gen_tokens = t.gen_tokens, wall_ms = t.wall_ms as u64, "job graded");
            (Some(crate::convert::grade_to_wire(&grade)), None)
        }
        (None, Some(m)) => {
            info!(test = %a.task_id, model = %model_ref.name, rep = a.repetition,
                  samples_ns = ?m.samples_ns, "throughput test measured");
            let measurement = pb::ThroughputMeasurement {
                samples_ns: m.samples_ns.clone(),
                model_type: m.model_type.clone(),
                model_n_params: m.model_n_params,
                backends: m.backends.clone(),
            };
            (None, Some(measurement))
        }
        (None, None) => return Err("the engine ran no throughput test".into()),
    };
    let remote = None;
    Ok(Box::new(pb::JobResult {
        key: Some(job.key.clone()),
        answer: generation.text,
        grade,
        throughput: measurement,
        timings: Some(pb::Timings {
            load_ms: t.load_ms,
            cold: t.cold,
            prompt_tokens: t.prompt_tokens,
            prompt_ms: t.prompt_ms,
            ttft_ms: t.ttft_ms,
            gen_tokens: t.gen_tokens,
            gen_ms: t.gen_ms,
            wall_ms: t.wall_ms,
            decode_tokens: t.decode_tokens,
            decode_ms: t.decode_ms,
        }),
        threads: context.threads,
        chat_template: generation.chat_template,
        stop: match generation.stop {
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Cancelled => "cancelled",
        }
        .into(),
        build_features: features.build,
        cpu_features: features.cpu,
        // Set by the client when the result must be cut to the coordinator's message limit.
        truncated: false,
        remote,
    }))
}

/// Which of the scripted engine's test features a job of `model` would use (see
/// [`benchfarm_engine::test_features`]); a throughput job's synthetic time is its test's.
fn scripted_test_features(
    model: &ScriptedModel,
    a: &pb::JobAssignment,
    task: Option<&benchfarm_suite::Task>,
    throughput: Option<ThroughputTest>,
) -> Option<String> {
    match (task, throughput) {
        (Some(task), _) => {
            benchfarm_engine::test_features(model, &a.task_id, a.repetition, &task.prompt)
        }
        (None, Some(test)) => benchfarm_engine::throughput_test_features(model, test),
        (None, None) => None,
    }
}

/// Runs a remote model's job: one streamed completion from its endpoint, graded here like a
/// local answer. Reasoning output is not graded; it travels apart in the result.
fn execute_remote(
    job: &Job,
    context: &Context,
    task: &benchfarm_suite::Task,
    model_ref: &pb::ModelRef,
    spec: &pb::RemoteModel,
) -> Result<Box<pb::JobResult>, String> {
    let a = &job.assignment;
    let caller = context
        .remote
        .get_or_init(RemoteCaller::new)
        .as_ref()
        .map_err(Clone::clone)?;
    let request = RemoteRequest {
        spec,
        model_key: &model_ref.sha256,
        system: &task.system,
        prompt: &task.prompt,
        max_tokens: task.max_tokens,
        temperature: task.temperature,
        seed: a.seed,
        cancel: &job.cancel,
    };
    debug!(job = %a.task_id, model = %model_ref.name, endpoint = %spec.url, "calling remote model");
    let outcome = caller.call(&request);
    if job.cancel.load(Ordering::Relaxed) {
        return Err(job
            .cancel_reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "cancelled".into()));
    }
    let answer = outcome?;
    let grade = graded(a, task, &answer.answer);
    info!(task = %a.task_id, model = %model_ref.name, rep = a.repetition, verdict = %grade.verdict,
          gen_tokens = answer.timings.gen_tokens, wall_ms = answer.timings.wall_ms as u64,
          retries = answer.call.retries, "job graded");
    Ok(Box::new(pb::JobResult {
        key: Some(job.key.clone()),
        answer: answer.answer,
        grade: Some(crate::convert::grade_to_wire(&grade)),
        timings: Some(answer.timings),
        // The endpoint's threads are not ours to know, nor its build.
        threads: 0,
        chat_template: "remote".into(),
        stop: answer.stop,
        build_features: Vec::new(),
        cpu_features: Vec::new(),
        remote: Some(answer.call),
        throughput: None,
        // Set by the client when the result must be cut to the coordinator's message limit.
        truncated: false,
    }))
}

/// Grades `answer` under the job's `grade` span (a child of the coordinator's job span), local
/// and remote answers alike.
fn graded(
    a: &pb::JobAssignment,
    task: &benchfarm_suite::Task,
    answer: &str,
) -> benchfarm_suite::Grade {
    let span = crate::telemetry::grade_span(&a.trace_parent, &a.task_id);
    let _entered = span.enter();
    let grade = task.grade(answer);
    span.record("verdict", grade.verdict.to_string());
    span.record("score", grade.score);
    grade
}

/// The assignment's suite: parsed from its text (and kept by digest), or — when the coordinator
/// sent this connection the suite before and names it by digest only — the one kept.
fn suite_of(context: &Context, a: &pb::JobAssignment) -> Result<Arc<Suite>, Failure> {
    let parse = |text: &str| {
        Suite::parse(
            text,
            &format!("suite {} v{}", a.suite_name, a.suite_version),
        )
        .map_err(|e| e.to_string())
    };
    if a.suite_toml.is_empty() && !a.suite_sha256.is_empty() {
        let kept = context
            .suites
            .lock()
            .ok()
            .and_then(|s| s.get(&a.suite_sha256).cloned());
        return kept.ok_or_else(|| Failure {
            reason: format!(
                "suite {} v{} (sha256 {}) is not held here; the coordinator sends it again",
                a.suite_name, a.suite_version, a.suite_sha256
            ),
            refused: false,
            suite_unknown: true,
        });
    }
    // Kept under the digest of its text, which must be the one the coordinator names it by: a
    // text that does not match is refused rather than kept under the wrong name.
    let key = benchfarm_modelfile::sha256_bytes(a.suite_toml.as_bytes());
    if !a.suite_sha256.is_empty() && a.suite_sha256 != key {
        return Err(Failure::from(format!(
            "suite {} v{}: its text does not match its sha256 {}",
            a.suite_name, a.suite_version, a.suite_sha256
        )));
    }
    Ok(cached(&context.suites, &key, |_| parse(&a.suite_toml))?)
}

/// Parses `text` once and shares the result with later jobs carrying the same text.
fn cached<T>(
    cache: &Mutex<HashMap<String, Arc<T>>>,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Arc<T>, String> {
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(text).cloned()) {
        return Ok(hit);
    }
    let value = Arc::new(parse(text)?);
    match cache.lock() {
        Ok(mut c) => {
            // A run brings one suite and a few models; a long-lived worker sees many runs, so bound it.
            if c.len() > 64 {
                c.clear();
            }
            c.insert(text.to_string(), Arc::clone(&value));
        }
        Err(_) => warn!("parse cache poisoned; not caching"),
    }
    Ok(value)
}
