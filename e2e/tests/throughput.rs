//! Throughput tests as farm jobs, with real processes: a plan's `throughput = ["pp16", "tg8"]`
//! beside its suite, `placement = "every-worker"` on two workers of two hardware classes. Every
//! (model, test, repetition) is measured once on each worker, exactly once, and the report's
//! llama-bench-shaped table holds them, per class, with the figures the scripted models'
//! synthetic speeds imply — while the graded leaderboard counts only the graded jobs.
//!
//! Needs the `coordinator` and `worker` binaries (`cargo build --workspace --all-targets`, as
//! scripts/test.sh does).

use std::collections::BTreeMap;
use std::time::Duration;

use benchfarm_e2e::process::*;

const TASKS: usize = 2;
const REPS: u32 = 2;
const MODELS: [&str; 2] = ["m1", "m2"];
const TESTS: [&str; 2] = ["pp16", "tg8"];
/// Scripted synthetic speeds: generation at the model's `tokens_per_second`, the prompt at the
/// scripted engine's fixed 10 tokens per millisecond.
const TOKENS_PER_SECOND: f64 = 400.0;
const PROMPT_TOKENS_PER_SECOND: f64 = 10_000.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_tests_run_on_every_worker_once_and_fill_the_report() {
    let mut farm = Farm::start(CoordinatorOpts::default()).await;
    farm.write("suite.toml", &suite_toml(TASKS));
    for name in MODELS {
        let mut model = Scripted::new(name, TASKS);
        model.tokens_per_second = TOKENS_PER_SECOND;
        farm.write(&format!("{name}.toml"), &model.toml());
    }
    let workers = [("wa", "a"), ("wb", "b")];
    for (name, class) in workers {
        farm.start_worker(name, WorkerOpts::default().label("class", class));
    }
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["wa", "wb"]).await;

    let request = farm.plan(&plan_text(
        "suite.toml",
        REPS,
        &["m1.toml", "m2.toml"],
        "placement = \"every-worker\"\nthroughput = [\"pp16\", \"tg8\"]",
    ));
    assert_eq!(request.throughput, ["pp16", "tg8"]);
    let run = client.submit_run(request).await.unwrap().into_inner();
    let graded = MODELS.len() * TASKS * REPS as usize * workers.len();
    let measured = MODELS.len() * TESTS.len() * REPS as usize * workers.len();
    let total = graded + measured;
    assert_eq!(run.jobs as usize, total);
    let status = wait_run(&mut client, &run.run_id, Duration::from_secs(60)).await;
    assert_eq!(
        (status.state(), status.jobs_done, status.jobs_failed),
        (benchfarm_proto::v1::RunState::Finished, total as u32, 0),
        "{status:?}"
    );

    let report = report_json(&mut client, &run.run_id).await;
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(
        (
            n("jobs_total"),
            n("jobs_done"),
            n("jobs_graded"),
            n("jobs_measured")
        ),
        (total as u64, total as u64, graded as u64, measured as u64),
        "{report}"
    );
    // The leaderboard is the graded jobs' alone.
    for m in report["models"].as_array().unwrap() {
        assert_eq!(
            m["n"].as_u64(),
            Some((TASKS * REPS as usize * workers.len()) as u64),
            "{m}"
        );
    }
    // One row per (class, model, test), each with its two repetitions measured on the class's
    // one worker, at the synthetic speed.
    let rows = report["throughput"].as_array().unwrap();
    let mut seen = BTreeMap::new();
    for row in rows {
        let class = row["hardware_class"].as_str().unwrap();
        let test = row["test"].as_str().unwrap();
        let worker = workers.iter().find(|(_, c)| *c == class).unwrap().0;
        assert_eq!(row["repetitions"].as_u64(), Some(u64::from(REPS)), "{row}");
        assert_eq!(
            row["workers"],
            serde_json::json!(vec![worker; REPS as usize]),
            "{row}"
        );
        let expected = match test {
            "tg8" => TOKENS_PER_SECOND,
            "pp16" => PROMPT_TOKENS_PER_SECOND,
            other => panic!("unexpected test {other}"),
        };
        let avg = row["avg_ts"].as_f64().unwrap();
        assert!(
            (avg - expected).abs() / expected < 1e-6,
            "{test} on {class}: {avg} t/s, expected {expected}"
        );
        *seen
            .entry((
                class.to_string(),
                row["model"].as_str().unwrap().to_string(),
            ))
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len(), workers.len() * MODELS.len(), "{rows:?}");
    assert!(seen.values().all(|&tests| tests == TESTS.len()), "{seen:?}");
    // The human formats show the table in llama-bench's shape.
    let table = report_body(&mut client, &run.run_id, "table").await;
    assert!(table.contains("| test") && table.contains("t/s"), "{table}");
    assert!(
        table.contains("tg8") && table.contains("400.00 ± 0.00"),
        "{table}"
    );
    let md = report_body(&mut client, &run.run_id, "md").await;
    assert!(md.contains("## Throughput (llama-bench tests)"), "{md}");

    // `status RUN --wait` on a run that is over returns at once with its detail (exit 0:
    // finished).
    let (code, stdout, stderr) = farm.cli(&["status", &run.run_id, "--wait"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("finished"), "{stdout}");

    // In the store: exactly once, and every throughput job's counted result is a measurement
    // of one timed run, by the worker its pin names.
    let store = farm.stop_and_open_store();
    let (jobs, results) = assert_exactly_once(&store, &run.run_id, total);
    let mut per_cell: BTreeMap<(u32, String, u32), Vec<String>> = BTreeMap::new();
    for job in jobs.iter().filter(|j| j.throughput.is_some()) {
        let result = results
            .iter()
            .find(|r| r.job_id == job.id && r.counted)
            .unwrap();
        let m = result.throughput.as_ref().expect("a measurement");
        assert_eq!(m.samples_ns.len(), 1, "{m:?}");
        assert!(result.answer.is_empty());
        per_cell
            .entry((job.model_index, job.task_id.clone(), job.repetition))
            .or_default()
            .push(result.worker_name.clone());
    }
    assert_eq!(per_cell.len(), MODELS.len() * TESTS.len() * REPS as usize);
    for (cell, mut names) in per_cell {
        names.sort();
        assert_eq!(names, ["wa", "wb"], "{cell:?}");
    }
}
