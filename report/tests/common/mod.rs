//! Shared fixture for the integration tests: a small, hand-checkable run.
//!
//! Run "r1", suite "smoke" v1.0, 3 repetitions, 27 jobs planned (3 models × 3 tasks × 3 reps).
//! - alpha (98 MB gguf) on cpu-avx2/w1, 8 threads: t1 P P P · t2 P ½ F · t3 F F F;
//!   wall 1..9 s (job k of 9 takes k s), every job 100 gen tokens in 500 ms.
//! - beta (1.8 GB gguf): t1, t2 on cpu-avx2/w2 (8 threads), t3 on gpu-h100/w3 (4 threads);
//!   t1 P P P · t2 P P P · t3 P P ½; wall 1 s, 100 gen tokens in 500 ms.
//! - script (scripted, 0 bytes): no outcome, two failed jobs.
#![allow(dead_code)] // each test binary uses a different part of the fixture

use benchfarm_report::{FailedJob, ModelInfo, Outcome, RunInfo, TaskInfo, Verdict};

pub fn outcome(model: &str, task: &str, rep: u32, verdict: Verdict) -> Outcome {
    Outcome {
        model: model.into(),
        task_id: task.into(),
        repetition: rep,
        verdict,
        worker_id: "id-w1".into(),
        worker_name: "w1".into(),
        hardware_class: "cpu-avx2".into(),
        threads: 8,
        wall_ms: 1000.0,
        load_ms: 0.0,
        cold: false,
        prompt_tokens: 400,
        prompt_ms: 200.0,
        ttft_ms: 250.0,
        gen_tokens: 100,
        gen_ms: 500.0,
        ..Default::default()
    }
}

pub fn info() -> RunInfo {
    RunInfo {
        run_id: "r1".into(),
        suite_name: "smoke".into(),
        suite_version: "1.0".into(),
        repetitions: 3,
        state: "finished".into(),
        models: vec![
            ModelInfo {
                name: "alpha".into(),
                size_bytes: 98_000_000,
                sha256: "aa".into(),
                kind: "gguf".into(),
                price_per_mtok: None,
            },
            ModelInfo {
                name: "beta".into(),
                size_bytes: 1_800_000_000,
                sha256: "bb".into(),
                kind: "gguf".into(),
                price_per_mtok: None,
            },
            ModelInfo {
                name: "script".into(),
                size_bytes: 0,
                sha256: String::new(),
                kind: "scripted".into(),
                price_per_mtok: None,
            },
        ],
        tasks: vec![
            TaskInfo {
                id: "t1".into(),
                category: "edit".into(),
            },
            TaskInfo {
                id: "t2".into(),
                category: "edit".into(),
            },
            TaskInfo {
                id: "t3".into(),
                category: "fix".into(),
            },
        ],
        jobs_total: 27,
        failed_jobs: vec![
            FailedJob {
                model: "script".into(),
                task_id: "t1".into(),
                repetition: 0,
                reason: "worker crashed\nsegfault".into(),
            },
            FailedJob {
                model: "script".into(),
                task_id: "t2".into(),
                repetition: 0,
                reason: "timeout".into(),
            },
        ],
    }
}

pub fn outcomes() -> Vec<Outcome> {
    use Verdict::{Fail as F, Partial as H, Pass as P};
    let mut out = Vec::new();
    let alpha = [("t1", [P, P, P]), ("t2", [P, H, F]), ("t3", [F, F, F])];
    let mut k = 0.0;
    for (task, verdicts) in alpha {
        for (rep, v) in verdicts.into_iter().enumerate() {
            k += 1.0;
            let mut o = outcome("alpha", task, rep as u32, v);
            o.wall_ms = 1000.0 * k;
            out.push(o);
        }
    }
    let beta = [("t1", [P, P, P]), ("t2", [P, P, P]), ("t3", [P, P, H])];
    for (task, verdicts) in beta {
        for (rep, v) in verdicts.into_iter().enumerate() {
            let mut o = outcome("beta", task, rep as u32, v);
            o.worker_name = "w2".into();
            o.worker_id = "id-w2".into();
            if task == "t3" {
                o.worker_name = "w3".into();
                o.worker_id = "id-w3".into();
                o.hardware_class = "gpu-h100".into();
                o.threads = 4;
            }
            out.push(o);
        }
    }
    out
}
