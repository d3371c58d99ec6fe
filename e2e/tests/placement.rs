//! Placement with real processes: `placement = "every-worker"` and `"per-class"` plans, a worker
//! whose `--max-ram` is too small for a model, and a plan's `require` labels. Each test checks the
//! report's counts and, from the store, where every job ran.
//!
//! Needs the `coordinator` and `worker` binaries: `cargo test --workspace` (scripts/test.sh) builds
//! them, since those packages have integration tests; before `cargo test -p benchfarm-e2e` alone,
//! run `cargo build --workspace --bins`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use benchfarm_coordinator::records::{JobRecord, ResultRecord};
use benchfarm_e2e::process::*;

/// (model index, task, repetition) of a job.
type Cell = (u32, String, u32);

fn cell(job: &JobRecord) -> Cell {
    (job.model_index, job.task_id.clone(), job.repetition)
}

/// Each job's cell, with its counted result.
fn counted<'a>(
    jobs: &'a [JobRecord],
    results: &'a [ResultRecord],
) -> Vec<(Cell, &'a ResultRecord)> {
    jobs.iter()
        .map(|job| {
            let result = results
                .iter()
                .find(|r| r.job_id == job.id && r.counted)
                .unwrap();
            (cell(job), result)
        })
        .collect()
}

const TASKS: usize = 4;
const REPS: u32 = 2;
/// Two models × 4 tasks × 2 repetitions.
const CELLS: usize = 2 * TASKS * REPS as usize;

/// A farm with the suite and two fast scripted models written, and `workers` started and joined.
async fn farm_with(workers: &[(&str, WorkerOpts)]) -> (Farm, Client) {
    let mut farm = Farm::start(CoordinatorOpts::default()).await;
    farm.write("suite.toml", &suite_toml(TASKS));
    for name in ["m1", "m2"] {
        let mut model = Scripted::new(name, TASKS);
        model.tokens_per_second = 400.0; // 100 ms a job
        farm.write(&format!("{name}.toml"), &model.toml());
    }
    for (name, opts) in workers {
        farm.start_worker(name, opts.clone());
    }
    let mut client = farm.client().await;
    let names: Vec<&str> = workers.iter().map(|(n, _)| *n).collect();
    farm.wait_connected(&mut client, &names).await;
    (farm, client)
}

/// 8a. `every-worker`: every (model, task, repetition) runs once on each of the 3 workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_runs_every_job_once() {
    let names = ["w1", "w2", "w3"];
    let (mut farm, mut client) = farm_with(&names.map(|n| (n, WorkerOpts::default()))).await;
    let request = farm.plan(&plan_text(
        "suite.toml",
        REPS,
        &["m1.toml", "m2.toml"],
        "placement = \"every-worker\"",
    ));
    let run = client.submit_run(request).await.unwrap().into_inner();
    let total = CELLS * 3;
    assert_eq!(run.jobs as usize, total);
    wait_finished(
        &mut client,
        &run.run_id,
        Duration::from_secs(40),
        total as u32,
        0,
    )
    .await;

    let store = farm.stop_and_open_store();
    let (jobs, results) = assert_exactly_once(&store, &run.run_id, total);
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_cell: BTreeMap<Cell, Vec<String>> = BTreeMap::new();
    for (cell, result) in counted(&jobs, &results) {
        *per_worker.entry(result.worker_name.clone()).or_default() += 1;
        per_cell
            .entry(cell)
            .or_default()
            .push(result.worker_name.clone());
    }
    assert_eq!(
        per_worker,
        names.iter().map(|n| (n.to_string(), CELLS)).collect(),
        "each worker ran exactly its share"
    );
    assert_eq!(per_cell.len(), CELLS);
    for (cell, mut workers) in per_cell {
        workers.sort();
        assert_eq!(workers, names, "{cell:?}");
    }
}

/// 8b. `per-class`: with two workers of class a and one of class b, every (model, task, repetition)
/// runs once per class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_class_covers_every_class_once() {
    let (mut farm, mut client) = farm_with(&[
        ("a1", WorkerOpts::default().label("class", "a")),
        ("a2", WorkerOpts::default().label("class", "a")),
        ("b1", WorkerOpts::default().label("class", "b")),
    ])
    .await;
    let request = farm.plan(&plan_text(
        "suite.toml",
        REPS,
        &["m1.toml", "m2.toml"],
        "placement = \"per-class\"",
    ));
    let run = client.submit_run(request).await.unwrap().into_inner();
    let total = CELLS * 2;
    assert_eq!(run.jobs as usize, total);
    let report = wait_finished(
        &mut client,
        &run.run_id,
        Duration::from_secs(40),
        total as u32,
        0,
    )
    .await;
    let classes: BTreeSet<&str> = report["hardware"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["class"].as_str().unwrap())
        .collect();
    assert_eq!(
        classes,
        BTreeSet::from(["a", "b"]),
        "{}",
        report["hardware"]
    );

    let store = farm.stop_and_open_store();
    let (jobs, results) = assert_exactly_once(&store, &run.run_id, total);
    let mut per_cell: BTreeMap<Cell, Vec<String>> = BTreeMap::new();
    for (cell, result) in counted(&jobs, &results) {
        let class_of_worker = if result.worker_name.starts_with('a') {
            "a"
        } else {
            "b"
        };
        assert_eq!(
            result.hardware_class, class_of_worker,
            "the class label names the result's class"
        );
        per_cell
            .entry(cell)
            .or_default()
            .push(result.hardware_class.clone());
    }
    assert_eq!(per_cell.len(), CELLS);
    for (cell, mut classes) in per_cell {
        classes.sort();
        assert_eq!(classes, ["a", "b"], "{cell:?}");
    }
}

/// 9. A worker whose `--max-ram` cannot hold the model never gets its jobs; while it is the only
/// worker, the run waits and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_the_ram_for_a_model_never_gets_it() {
    let Some(model) = default_model() else { return };
    let file_name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    let mut farm = Farm::start(CoordinatorOpts {
        lease_ms: 5000,
        ..CoordinatorOpts::default()
    })
    .await;
    let models = farm.path("models");
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(&model, models.join(file_name)).unwrap();
    farm.write("smoke.toml", &smoke_suite(16));
    let request = farm.plan(&smoke_plan(&models.join(file_name)));
    farm.start_worker(
        "small",
        WorkerOpts::default()
            .models(&models)
            .arg("--max-ram", "64MB"),
    );
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["small"]).await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 2);

    // Only the 64 MB worker: nothing is placed, and the status says why.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let status = run_status(&mut client, &run.run_id).await;
        if !status.waiting.is_empty() || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (status.state(), status.jobs_queued, status.jobs_running),
        (benchfarm_proto::v1::RunState::Running, 2, 0),
        "{status:?}"
    );
    assert_eq!(status.waiting.len(), 1, "{:?}", status.waiting);
    let why = &status.waiting[0];
    assert!(
        why.starts_with("waiting: 2 jobs of SmolLM2-135M: no worker has")
            && why.contains("free for SmolLM2-135M"),
        "the reason names memory: {why}"
    );

    farm.start_worker("big", WorkerOpts::default().models(&models));
    let ids = farm.wait_connected(&mut client, &["small", "big"]).await;
    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(50), 2, 0).await;
    assert_eq!(report["models"][0]["workers"], serde_json::json!(["big"]));

    let store = farm.stop_and_open_store();
    let (jobs, _) = assert_exactly_once(&store, &run.run_id, 2);
    for job in &jobs {
        assert!(
            job.attempts.iter().all(|a| a.worker_id == ids["big"]),
            "{} was given to the 64 MB worker: {:?}",
            job.id,
            job.attempts
        );
    }
}

/// 10. `require = { labels = { site = "lab" } }`: only the workers labelled site=lab run jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_labels_limit_the_workers() {
    let (mut farm, mut client) = farm_with(&[
        ("lab1", WorkerOpts::default().label("site", "lab")),
        ("lab2", WorkerOpts::default().label("site", "lab")),
        ("home", WorkerOpts::default().label("site", "home")),
    ])
    .await;
    let request = farm.plan(&plan_text(
        "suite.toml",
        REPS,
        &["m1.toml", "m2.toml"],
        "require = { labels = { site = \"lab\" } }",
    ));
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs as usize, CELLS);
    wait_finished(
        &mut client,
        &run.run_id,
        Duration::from_secs(40),
        CELLS as u32,
        0,
    )
    .await;

    let store = farm.stop_and_open_store();
    let ids: BTreeMap<String, String> = store
        .workers()
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect();
    let (jobs, results) = assert_exactly_once(&store, &run.run_id, CELLS);
    for job in &jobs {
        for a in &job.attempts {
            assert_eq!(
                ids.get(&a.worker_id).map(|n| n.starts_with("lab")),
                Some(true),
                "{} attempt {} went to {:?}",
                job.id,
                a.attempt,
                ids.get(&a.worker_id)
            );
        }
    }
    let used: BTreeSet<&str> = results.iter().map(|r| r.worker_name.as_str()).collect();
    assert_eq!(
        used,
        BTreeSet::from(["lab1", "lab2"]),
        "both lab workers ran jobs"
    );
}
