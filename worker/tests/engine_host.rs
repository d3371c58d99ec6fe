//! The supervised engine process against the real `worker` binary: faults that kill the engine
//! process cost one job and give a readable error, and the next job on the same supervisor runs
//! in a fresh process; cancels stop a hung engine; a long-lived host keeps its model loaded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use benchfarm_engine::{Engine, GenerateRequest, ModelSource, StopReason};
use benchfarm_modelfile::ScriptedModel;
use benchfarm_worker::supervisor::{CANCEL_GRACE, Supervisor};

const MODEL: &str = r#"
name = "faulty"
load_ms = 50
[answers]
ok = ["fine"]
crashes = ["never seen"]
[[faults]]
task = "crashes"
attempts = [1]
kind = "crash"
[[faults]]
task = "killed"
kind = "kill"
[[faults]]
task = "fails"
kind = "fail"
[[faults]]
task = "hangs"
kind = "hang"
"#;

fn request(task: &str, attempt: u32) -> GenerateRequest {
    GenerateRequest {
        model: ModelSource::Scripted(Arc::new(ScriptedModel::parse(MODEL, "faulty").unwrap())),
        task_id: task.into(),
        repetition: 0,
        attempt,
        system: String::new(),
        prompt: "p".into(),
        max_tokens: 16,
        temperature: 0.0,
        seed: 0,
        threads: 1,
        cancel: Arc::new(AtomicBool::new(false)),
        throughput: None,
    }
}

fn supervisor() -> Supervisor {
    Supervisor::new(env!("CARGO_BIN_EXE_worker").into())
}

#[test]
fn crash_costs_one_job_and_the_next_runs_in_a_fresh_process() {
    let mut engine = supervisor();
    let first = engine.generate(&request("ok", 1)).unwrap();
    assert_eq!(first.text, "fine");
    assert!(first.timings.cold);
    // The host is long-lived: the model stays loaded.
    let warm = engine.generate(&request("ok", 1)).unwrap();
    assert!(!warm.timings.cold);
    let pid = engine.pid().expect("a host runs");

    let err = engine
        .generate(&request("crashes", 1))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("engine process died: killed by signal 6 (SIGABRT"),
        "{err}"
    );
    assert!(
        err.contains("scripted fault: crash"),
        "stderr tail missing: {err}"
    );
    assert!(engine.pid().is_none());

    // Attempt 2 of the same job is not faulted and runs in a new process, cold again.
    let retry = engine.generate(&request("crashes", 2)).unwrap();
    assert_eq!(retry.text, "never seen");
    assert!(retry.timings.cold);
    assert_ne!(engine.pid(), Some(pid));
}

#[test]
fn kill_costs_one_job_and_the_next_succeeds() {
    let mut engine = supervisor();
    let err = engine
        .generate(&request("killed", 1))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("engine process died: killed by signal 9 (SIGKILL)"),
        "{err}"
    );
    assert_eq!(engine.generate(&request("ok", 1)).unwrap().text, "fine");
}

#[test]
fn fail_is_passed_through_and_the_host_survives() {
    let mut engine = supervisor();
    engine.generate(&request("ok", 1)).unwrap();
    let pid = engine.pid();
    let err = engine
        .generate(&request("fails", 3))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "scripted fault: fail");
    assert_eq!(engine.pid(), pid, "a fail fault must not cost the process");
    assert!(!engine.generate(&request("ok", 1)).unwrap().timings.cold);
}

#[test]
fn cancel_reaches_a_hung_engine_in_the_child() {
    let mut engine = supervisor();
    engine.generate(&request("ok", 1)).unwrap();
    let pid = engine.pid();
    let req = request("hangs", 1);
    let cancel = Arc::clone(&req.cancel);
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        cancel.store(true, Ordering::Relaxed);
    });
    let start = Instant::now();
    let g = engine.generate(&req).unwrap();
    canceller.join().unwrap();
    assert_eq!(g.stop, StopReason::Cancelled);
    // Stopped by the cancel message, well inside the grace that would kill the process.
    assert!(
        start.elapsed() < Duration::from_millis(200) + CANCEL_GRACE,
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        engine.pid(),
        pid,
        "a cooperative cancel must not cost the process"
    );
}

#[test]
fn dropping_the_supervisor_ends_its_process() {
    let mut engine = supervisor();
    engine.generate(&request("ok", 1)).unwrap();
    let pid = engine.pid().unwrap();
    drop(engine);
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !proc.exists(),
        "engine process {pid} outlived its supervisor"
    );
}

#[test]
fn stop_signals_for_the_worker_do_not_end_the_engine_process() {
    let mut engine = supervisor();
    engine.generate(&request("ok", 1)).unwrap();
    let pid = engine.pid().unwrap();
    // What a terminal's Ctrl-C or systemd's stop would deliver to the whole group.
    for signal in ["-INT", "-TERM"] {
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(engine.generate(&request("ok", 1)).unwrap().text, "fine");
    assert_eq!(engine.pid(), Some(pid));
}
