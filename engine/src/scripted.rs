//! The scripted engine: answers from a [`ScriptedModel`]'s table with synthetic but
//! self-consistent timings, so the farm can be tested end to end without llama.cpp.
//!
//! It really sleeps for the time its timings claim (`load_ms` when it switches model, `delay_ms`,
//! then the synthetic generation time), checking the cancel flag every few milliseconds, so wall
//! clock, timeouts and cancellation behave as they would with a real model.
//!
//! It also carries out the model's faults (docs/scripted-models.md): `fail` and `hang` anywhere,
//! `crash` and `kill` only in an engine made [`ScriptedEngine::with_process_faults`] — killing the
//! process is right for the worker's disposable engine host, and wrong for an engine running inside
//! the worker (or a test), where those faults become an error instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use benchfarm_modelfile::ScriptedModel;
use benchfarm_modelfile::scripted::FaultKind;

use crate::{
    Engine, EngineError, GenerateRequest, Generation, ModelSource, StopReason,
    ThroughputMeasurement, ThroughputTest, Timings,
};

/// How often a sleeping scripted job looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(5);
/// Synthetic prompt evaluation speed; prompt processing is much faster than generation.
const PROMPT_TOKENS_PER_MS: f64 = 10.0;

/// The longest synthetic time one job of a scripted model may take on a worker not started with
/// `--allow-scripted-faults`: the scripted engine really sleeps for the time its timings claim, so
/// a `tokens_per_second` of 0.001 would hold a slot for the job's whole time limit.
pub const MAX_SYNTHETIC_MS: f64 = 10_000.0;

/// What a job of `model` would use of the scripted engine's test features — `[[faults]]`,
/// `delay_ms`, `load_ms`, a synthetic time (prompt and generation, after `speed_factor`) over
/// [`MAX_SYNTHETIC_MS`] — or `None` when it uses none. Such features are for tests and chaos
/// scenarios: a worker runs them only when started with `--allow-scripted-faults`, and otherwise
/// refuses the job with this reason.
pub fn test_features(
    model: &ScriptedModel,
    task_id: &str,
    repetition: u32,
    prompt: &str,
) -> Option<String> {
    let prompt_ms = f64::from(estimate_tokens(prompt)) / PROMPT_TOKENS_PER_MS;
    let gen_ms = f64::from(estimate_tokens(model.answer(task_id, repetition)))
        / model.tokens_per_second()
        * 1000.0;
    refusal(model, prompt_ms + gen_ms, "")
}

/// [`test_features`] for a throughput job of `test`: its synthetic time is the test's
/// ([`throughput_ms`]).
pub fn throughput_test_features(model: &ScriptedModel, test: ThroughputTest) -> Option<String> {
    refusal(model, throughput_ms(model, test), &format!(" for {test}"))
}

/// The refusal of a job of `model` taking `synthetic_ms` (`what` says of what, in the reason),
/// listing every test feature it uses; `None` when it uses none.
fn refusal(model: &ScriptedModel, synthetic_ms: f64, what: &str) -> Option<String> {
    let mut used = Vec::new();
    if !model.faults().is_empty() {
        used.push(format!("{} [[faults]]", model.faults().len()));
    }
    if model.delay_ms() > 0 {
        used.push(format!("delay_ms = {}", model.delay_ms()));
    }
    if model.load_ms() > 0 {
        used.push(format!("load_ms = {}", model.load_ms()));
    }
    if synthetic_ms > MAX_SYNTHETIC_MS {
        used.push(format!(
            "a synthetic time of {synthetic_ms:.0} ms{what} (tokens_per_second = {}), over the {MAX_SYNTHETIC_MS:.0} ms cap",
            model.tokens_per_second()
        ));
    }
    (!used.is_empty()).then(|| {
        format!(
            "refused: scripted model {:?} uses test features ({}); this worker runs them only when started with --allow-scripted-faults",
            model.name(),
            used.join(", ")
        )
    })
}

/// The synthetic time of one run of throughput test `test` on a scripted model: the prompt at the
/// scripted prompt speed, the generation at its `tokens_per_second`.
pub fn throughput_ms(model: &ScriptedModel, test: ThroughputTest) -> f64 {
    f64::from(test.n_prompt) / PROMPT_TOKENS_PER_MS
        + f64::from(test.n_gen) / model.tokens_per_second() * 1000.0
}

/// A deterministic token-count estimate for text: one token per 4 bytes, rounded up.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)
}

/// Runs [`ModelSource::Scripted`] requests.
#[derive(Debug, Default)]
pub struct ScriptedEngine {
    /// The model "loaded" by the last job that finished loading: switching away from it and back
    /// costs its `load_ms` again, as a real engine holding one model would.
    loaded: Option<Arc<ScriptedModel>>,
    /// Whether `crash` and `kill` faults may end this process.
    process_faults: bool,
}

impl ScriptedEngine {
    /// An engine that turns `crash` and `kill` faults into errors (it runs inside the worker).
    pub fn new() -> Self {
        Self::default()
    }

    /// An engine that carries out `crash` (abort) and `kill` (SIGKILL) faults on its own
    /// process: only for a process that exists to run the engine, such as `worker engine-host`.
    pub fn with_process_faults() -> Self {
        Self {
            loaded: None,
            process_faults: true,
        }
    }
}

impl Engine for ScriptedEngine {
    fn generate(&mut self, req: &GenerateRequest) -> Result<Generation, EngineError> {
        let ModelSource::Scripted(model) = &req.model else {
            return Err(EngineError::InvalidRequest(
                "the scripted engine only runs scripted models".into(),
            ));
        };
        let start = Instant::now();
        let cold = model.load_ms() > 0 && self.loaded.as_deref() != Some(&**model);
        let load_ms = if cold { model.load_ms() as f64 } else { 0.0 };
        if cold {
            // A model whose load was cancelled is not loaded: the next job pays again.
            self.loaded = None;
            if !sleep_unless_cancelled(Duration::from_millis(model.load_ms()), &req.cancel) {
                return Ok(cancelled(start, load_ms, Timings::default()));
            }
        }
        self.loaded = Some(Arc::clone(model));

        if let Some(kind) = model.fault(&req.task_id, req.repetition, req.attempt) {
            tracing::warn!(task = %req.task_id, repetition = req.repetition, attempt = req.attempt,
                           fault = %kind, "scripted fault");
            match kind {
                FaultKind::Fail => return Err(EngineError::ScriptedFault(kind.to_string())),
                FaultKind::Hang => {
                    while !req.cancel.load(Ordering::Relaxed) {
                        std::thread::sleep(CANCEL_POLL);
                    }
                    return Ok(cancelled(start, load_ms, Timings::default()));
                }
                FaultKind::Crash | FaultKind::Kill if !self.process_faults => {
                    return Err(EngineError::ScriptedFault(format!(
                        "{kind} (not carried out: the engine runs inside the worker process)"
                    )));
                }
                FaultKind::Crash => {
                    tracing::error!(pid = std::process::id(), "scripted fault: crash, aborting");
                    std::process::abort();
                }
                FaultKind::Kill => return Err(kill_own_process()),
            }
        }

        if let Some(test) = req.throughput {
            return Ok(synthetic_throughput(model, test, req, start, load_ms, cold));
        }

        let answer = model.answer(&req.task_id, req.repetition);
        let prompt_tokens =
            estimate_tokens(&req.system).saturating_add(estimate_tokens(&req.prompt));
        let prompt_ms = f64::from(prompt_tokens) / PROMPT_TOKENS_PER_MS;
        let gen_tokens = estimate_tokens(answer);
        let gen_ms = f64::from(gen_tokens) / model.tokens_per_second() * 1000.0;

        let gen_start = Instant::now();
        let delay = Duration::from_millis(model.delay_ms());
        let busy = Duration::from_secs_f64((prompt_ms + gen_ms) / 1000.0);
        if !sleep_unless_cancelled(delay + busy, &req.cancel) {
            // Report what a real engine would have: whatever share of the answer fit in the time.
            let elapsed_ms = gen_start.elapsed().as_secs_f64() * 1000.0;
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
                decode_tokens: estimate_tokens(&text),
                decode_ms: gen_elapsed,
                ..Timings::default()
            };
            let mut generation = cancelled(start, load_ms, timings);
            generation.text = text;
            return Ok(generation);
        }
        Ok(Generation {
            text: answer.to_string(),
            timings: Timings {
                prompt_tokens,
                prompt_ms,
                ttft_ms: if gen_tokens > 0 { prompt_ms } else { 0.0 },
                gen_tokens,
                gen_ms,
                load_ms,
                cold,
                wall_ms: start.elapsed().as_secs_f64() * 1000.0,
                // A scripted model has no decode apart from its generation: one figure for both.
                decode_tokens: gen_tokens,
                decode_ms: gen_ms,
            },
            chat_template: "scripted".into(),
            stop: StopReason::Eos,
            llama_perf: None,
            throughput: None,
        })
    }
}

/// A generation stopped by its cancel flag, with the load (if any) and `timings` so far.
/// A throughput job on a scripted model: it sleeps for the test's synthetic time and reports it
/// as the one timed run (a cancelled job reports what it had slept).
fn synthetic_throughput(
    model: &ScriptedModel,
    test: ThroughputTest,
    req: &GenerateRequest,
    start: Instant,
    load_ms: f64,
    cold: bool,
) -> Generation {
    let busy_ms = throughput_ms(model, test);
    let run_start = Instant::now();
    let finished = sleep_unless_cancelled(Duration::from_secs_f64(busy_ms / 1000.0), &req.cancel);
    let ran_ms = if finished {
        busy_ms
    } else {
        run_start.elapsed().as_secs_f64() * 1000.0
    };
    Generation {
        text: String::new(),
        timings: Timings {
            load_ms,
            cold,
            prompt_tokens: test.n_prompt,
            gen_tokens: test.n_gen,
            wall_ms: start.elapsed().as_secs_f64() * 1000.0,
            ..Timings::default()
        },
        chat_template: "scripted".into(),
        stop: if finished {
            StopReason::MaxTokens
        } else {
            StopReason::Cancelled
        },
        llama_perf: None,
        throughput: Some(ThroughputMeasurement {
            samples_ns: vec![(ran_ms * 1e6).round() as u64],
            model_type: String::new(),
            model_n_params: 0,
            backends: "CPU".into(),
        }),
    }
}

fn cancelled(start: Instant, load_ms: f64, timings: Timings) -> Generation {
    Generation {
        text: String::new(),
        timings: Timings {
            load_ms,
            cold: load_ms > 0.0,
            wall_ms: start.elapsed().as_secs_f64() * 1000.0,
            ..timings
        },
        chat_template: "scripted".into(),
        stop: StopReason::Cancelled,
        llama_perf: None,
        throughput: None,
    }
}

/// SIGKILLs this process, as the OOM killer would. `kill(1)` does it because the workspace
/// forbids `unsafe` (and so `libc::kill`); the error is returned only if that fails.
fn kill_own_process() -> EngineError {
    let pid = std::process::id();
    tracing::error!(
        pid,
        "scripted fault: kill, sending SIGKILL to the engine process"
    );
    let outcome = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status();
    // SIGKILL is delivered asynchronously; give it a moment before concluding it failed.
    std::thread::sleep(Duration::from_secs(2));
    EngineError::ScriptedFault(match outcome {
        Ok(status) => format!("kill (the engine process survived `kill -9`: {status})"),
        Err(e) => format!("kill (cannot run `kill`: {e})"),
    })
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
            attempt: 1,
            system: "be brief".into(),
            prompt: "write a function".into(),
            max_tokens: 64,
            temperature: 0.0,
            seed: 0,
            threads: 1,
            cancel: Arc::default(),
            throughput: None,
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
        let mut engine = ScriptedEngine::new();
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
        let g = ScriptedEngine::new()
            .generate(&request(&model, "t", 0))
            .unwrap();
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
        let g = ScriptedEngine::new().generate(&req).unwrap();
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
            ScriptedEngine::new().generate(&req),
            Err(EngineError::InvalidRequest(_))
        ));
    }

    #[test]
    fn load_ms_is_paid_when_switching_models() {
        let a = "name = \"a\"\nload_ms = 60\n[answers]\nt = [\"x\"]";
        let b = "name = \"b\"\n[answers]\nt = [\"y\"]";
        let mut engine = ScriptedEngine::new();
        let start = Instant::now();
        let first = engine.generate(&request(a, "t", 0)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(60));
        assert!(first.timings.cold);
        assert_eq!(first.timings.load_ms, 60.0);
        assert!(first.timings.wall_ms >= 60.0, "{:?}", first.timings);
        let again = engine.generate(&request(a, "t", 1)).unwrap();
        assert!(!again.timings.cold);
        assert_eq!(again.timings.load_ms, 0.0);
        // A model without load_ms is never cold, but switching to it unloads the other one.
        let other = engine.generate(&request(b, "t", 0)).unwrap();
        assert!(!other.timings.cold);
        assert!(engine.generate(&request(a, "t", 0)).unwrap().timings.cold);
    }

    #[test]
    fn a_cancelled_load_is_paid_again() {
        let a = "name = \"a\"\nload_ms = 10000\n[answers]\nt = [\"x\"]";
        let mut engine = ScriptedEngine::new();
        let req = request(a, "t", 0);
        req.cancel.store(true, Ordering::Relaxed);
        let g = engine.generate(&req).unwrap();
        assert_eq!(g.stop, StopReason::Cancelled);
        assert!(g.timings.cold);
        assert!(engine.loaded.is_none());
    }

    const FAULTS: &str = r#"
name = "f"
[answers]
t = ["fine"]
[[faults]]
task = "t"
attempts = [1]
kind = "fail"
[[faults]]
task = "t"
repetition = 0
attempts = [2]
kind = "hang"
[[faults]]
task = "t"
attempts = [3]
kind = "crash"
[[faults]]
task = "t"
attempts = [4]
kind = "kill"
"#;

    fn attempt(task: &str, repetition: u32, attempt: u32) -> GenerateRequest {
        let mut req = request(FAULTS, task, repetition);
        req.attempt = attempt;
        req
    }

    #[test]
    fn fail_fault_is_an_error_on_its_attempt_only() {
        let mut engine = ScriptedEngine::new();
        let err = engine.generate(&attempt("t", 0, 1)).unwrap_err();
        assert!(matches!(err, EngineError::ScriptedFault(_)));
        assert_eq!(err.to_string(), "scripted fault: fail");
        assert_eq!(engine.generate(&attempt("t", 0, 5)).unwrap().text, "fine");
        // The hang is for repetition 0 only.
        assert_eq!(engine.generate(&attempt("t", 1, 2)).unwrap().text, "fine");
    }

    #[test]
    fn hang_fault_waits_for_cancel() {
        let req = attempt("t", 0, 2);
        let cancel = Arc::clone(&req.cancel);
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            cancel.store(true, Ordering::Relaxed);
        });
        let start = Instant::now();
        let g = ScriptedEngine::new().generate(&req).unwrap();
        canceller.join().unwrap();
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert_eq!(g.stop, StopReason::Cancelled);
        assert_eq!(g.text, "");
    }

    #[test]
    fn process_faults_are_errors_inside_the_worker() {
        let mut engine = ScriptedEngine::new();
        for (n, kind) in [(3, "crash"), (4, "kill")] {
            let err = engine
                .generate(&attempt("t", 0, n))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("scripted fault: {kind} (not carried out")),
                "{err}"
            );
        }
    }

    #[test]
    fn test_features_are_named() {
        let parse = |t: &str| ScriptedModel::parse(t, "m").unwrap();
        let plain = parse("name = \"m\"\n[answers]\nt = [\"ok\"]");
        assert_eq!(test_features(&plain, "t", 0, "prompt"), None);
        let reason = test_features(&parse(FAULTS), "t", 0, "p").unwrap();
        assert!(reason.contains("4 [[faults]]"), "{reason}");
        assert!(reason.contains("--allow-scripted-faults"), "{reason}");
        let slow = parse("name = \"s\"\ndelay_ms = 5\nload_ms = 7\n[answers]\nt = [\"abcd\"]");
        let reason = test_features(&slow, "t", 0, "p").unwrap();
        assert!(reason.contains("delay_ms = 5, load_ms = 7"), "{reason}");
        // 1 token at 0.01 tok/s: 100 s of synthetic generation.
        let crawl = parse("name = \"c\"\ntokens_per_second = 0.01\n[answers]\nt = [\"abcd\"]");
        let reason = test_features(&crawl, "t", 0, "p").unwrap();
        assert!(
            reason.contains(
                "a synthetic time of 100000 ms (tokens_per_second = 0.01), over the 10000 ms cap"
            ),
            "{reason}"
        );
        // A task with no answer generates nothing, however slow the model.
        assert_eq!(test_features(&crawl, "other", 0, "p"), None);
    }

    #[test]
    fn prefix_respects_char_boundaries() {
        assert_eq!(prefix_of_tokens("ééééé", 1), "éé");
        assert_eq!(prefix_of_tokens("abc", 9), "abc");
    }

    #[test]
    fn a_throughput_job_sleeps_its_synthetic_time_and_reports_it() {
        let model = ScriptedModel::parse("name = \"m\"\ntokens_per_second = 400.0\n", "m").unwrap();
        let mut req = request("name = \"m\"\ntokens_per_second = 400.0\n", "t", 0);
        req.throughput = Some(ThroughputTest {
            n_prompt: 16,
            n_gen: 8,
        });
        // 16 prompt tokens at 10 per ms and 8 generated at 400 per second: 1.6 + 20 ms.
        assert!((throughput_ms(&model, req.throughput.unwrap()) - 21.6).abs() < 1e-9);
        let g = ScriptedEngine::new().generate(&req).unwrap();
        let m = g.throughput.expect("a measurement");
        assert_eq!(m.samples_ns, [21_600_000]);
        assert!(g.text.is_empty());
        assert_eq!((g.timings.prompt_tokens, g.timings.gen_tokens), (16, 8));
        assert!(
            g.timings.wall_ms >= 21.0,
            "it really took the time: {:?}",
            g.timings
        );
    }

    #[test]
    fn a_throughput_job_over_the_synthetic_cap_is_a_test_feature() {
        let slow = ScriptedModel::parse("name = \"m\"\ntokens_per_second = 0.5\n", "m").unwrap();
        let tg8 = ThroughputTest {
            n_prompt: 0,
            n_gen: 8,
        };
        let why = throughput_test_features(&slow, tg8).expect("refused");
        assert!(
            why.contains("a synthetic time of 16000 ms for tg8 (tokens_per_second = 0.5)"),
            "{why}"
        );
        let fast = ScriptedModel::parse("name = \"m\"\n", "m").unwrap();
        assert_eq!(throughput_test_features(&fast, tg8), None);
    }
}
