//! Fault injection with real processes: workers killed with SIGKILL or frozen with SIGSTOP past
//! their lease, a coordinator killed and restarted on the same data and port, jobs that hang, fail,
//! abort or kill their engine process, and a corrupt model file. Each test checks the run's final
//! counts in the report and, from the store once the coordinator has stopped, that every job was
//! counted exactly once.
//!
//! Needs the `coordinator` and `worker` binaries: `cargo test --workspace` (scripts/test.sh) builds
//! them, since those packages have integration tests; before `cargo test -p benchfarm-e2e` alone,
//! run `cargo build --workspace --bins`.

use std::collections::BTreeSet;
use std::time::Duration;

use benchfarm_coordinator::records::{AttemptEnd, JobRecord};
use benchfarm_e2e::process::*;

/// The reason an attempt ended without an answer, if it did.
fn failure(job: &JobRecord, attempt: u32) -> Option<String> {
    match &job.attempts.iter().find(|a| a.attempt == attempt)?.end {
        Some(AttemptEnd::Failed(r) | AttemptEnd::Lost(r)) => Some(r.clone()),
        _ => None,
    }
}

fn succeeded(job: &JobRecord, attempt: u32) -> bool {
    job.attempts
        .iter()
        .any(|a| a.attempt == attempt && a.end == Some(AttemptEnd::Succeeded))
}

/// A farm with `workers` scripted-only workers and a plan of `tasks` × `repetitions` jobs of `model`.
async fn scripted_farm(
    opts: CoordinatorOpts,
    workers: &[&str],
    tasks: usize,
    repetitions: u32,
    model: &Scripted,
) -> (
    Farm,
    Client,
    std::collections::HashMap<String, String>,
    benchfarm_proto::v1::SubmitRunRequest,
) {
    let mut farm = Farm::start(opts).await;
    farm.write("suite.toml", &suite_toml(tasks));
    farm.write("m.toml", &model.toml());
    let request = farm.plan(&plan_text("suite.toml", repetitions, &["m.toml"], ""));
    for name in workers {
        farm.start_worker(name, WorkerOpts::default());
    }
    let mut client = farm.client().await;
    let ids = farm.wait_connected(&mut client, workers).await;
    (farm, client, ids, request)
}

/// 1. `kill -9` one of three workers while it runs a job: its engine process does not outlive it,
/// the run completes, its job is redone elsewhere, every job is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_no_result() {
    let (mut farm, mut client, ids, request) = scripted_farm(
        CoordinatorOpts::default(),
        &["w1", "w2", "w3"],
        10,
        3,
        &Scripted::new("m", 10),
    )
    .await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 30);
    let held = wait_busy(&mut client, &run.run_id, 3, "w2", Duration::from_secs(20)).await;
    farm.worker("w2").kill();
    // Its engine process sees its stdin close and exits too: no orphan keeps running.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while farm.worker("w2").group_alive() {
        assert!(
            std::time::Instant::now() < deadline,
            "w2's engine process outlived it by 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(45), 30, 0).await;
    assert_eq!(report["models"][0]["n"], 30);
    let w2 = worker_status(&mut client, "w2").await.unwrap();
    assert!(!w2.connected, "a killed worker is not connected");

    let store = farm.stop_and_open_store();
    let (jobs, results) = assert_exactly_once(&store, &run.run_id, 30);
    // The job w2 held when it died ended lost, and was counted from another worker.
    for key in &held {
        let job_id = key.split('#').next().unwrap();
        let job = jobs.iter().find(|j| j.id == job_id).unwrap();
        let by_w2 = job
            .attempts
            .iter()
            .find(|a| a.worker_id == ids["w2"])
            .unwrap_or_else(|| panic!("{key} has no attempt by w2: {:?}", job.attempts));
        assert!(
            matches!(by_w2.end, Some(AttemptEnd::Lost(_))),
            "{key}: {:?}",
            by_w2.end
        );
        let counted = results
            .iter()
            .find(|r| r.job_id == job.id && r.counted)
            .unwrap();
        assert_ne!(
            counted.worker_name, "w2",
            "{key} counted from the dead worker"
        );
    }
}

/// 1b. SIGTERM to a worker's whole process group mid-job (what Ctrl-C in its terminal or systemd's
/// default stop does): the engine process survives it, the worker finishes and reports the job it
/// runs, gives back the job waiting for its slot (prefetch) unstarted, then leaves by itself; the
/// job it ran is not run again, and the one it gave back costs no attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_finishes_its_job_and_leaves() {
    let (mut farm, mut client, ids, request) = scripted_farm(
        CoordinatorOpts::default(),
        &["w1", "w2", "w3"],
        10,
        3,
        &Scripted::new("m", 10),
    )
    .await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 30);
    let held = wait_busy(&mut client, &run.run_id, 3, "w2", Duration::from_secs(20)).await;
    assert!(farm.worker("w2").signal_group("TERM"));
    let exit = farm.worker("w2").wait_exit(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "w2 did not drain and exit cleanly within 10 s: {exit:?}"
    );

    wait_finished(&mut client, &run.run_id, Duration::from_secs(45), 30, 0).await;

    let store = farm.stop_and_open_store();
    let (jobs, results) = assert_exactly_once(&store, &run.run_id, 30);
    // w2 held its running job and (prefetch) one waiting for the slot: the running one is
    // answered by w2, the waiting one given back unstarted and answered elsewhere; neither used up
    // an attempt, and nothing failed.
    let mut answered_by_w2 = 0;
    for key in &held {
        let (job_id, attempt) = key.split_once('#').unwrap();
        let attempt: u32 = attempt.parse().unwrap();
        let job = jobs.iter().find(|j| j.id == job_id).unwrap();
        let counted = results
            .iter()
            .find(|r| r.job_id == job.id && r.counted)
            .unwrap();
        let by_w2 = job.attempts.iter().find(|a| a.attempt == attempt).unwrap();
        if counted.worker_id == ids["w2"] && counted.attempt == attempt {
            answered_by_w2 += 1;
        } else {
            assert!(
                matches!(&by_w2.end, Some(AttemptEnd::Returned(r)) if r.contains("draining")),
                "{key}: neither answered by the draining worker nor given back: {:?}",
                job.attempts
            );
            assert_ne!(counted.worker_id, ids["w2"], "{key}: {:?}", job.attempts);
        }
    }
    assert!(
        answered_by_w2 >= 1,
        "the draining worker answered none of the jobs it held: {held:?}"
    );
    for job in &jobs {
        assert!(
            !job.attempts
                .iter()
                .any(|a| matches!(a.end, Some(AttemptEnd::Failed(_)))),
            "{}: an attempt failed: {:?}",
            job.id,
            job.attempts
        );
    }
}

/// 2. `kill -9` the coordinator mid-run and start it again on the same data directory and port: the
/// workers reconnect, re-send what was not acknowledged, and the run completes with no lost and no
/// duplicate result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_restarted_mid_run_loses_and_duplicates_nothing() {
    let (mut farm, mut client, _, request) = scripted_farm(
        CoordinatorOpts::default(),
        &["w1", "w2", "w3"],
        10,
        3,
        &Scripted::new("m", 10),
    )
    .await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 30);
    wait_busy(&mut client, &run.run_id, 6, "w1", Duration::from_secs(20)).await;
    farm.kill_coordinator();
    drop(client);
    // Down long enough for jobs to finish while nobody listens (their results wait in outboxes).
    tokio::time::sleep(Duration::from_millis(700)).await;
    farm.start_coordinator().await;
    let mut client = farm.client().await;

    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(45), 30, 0).await;
    assert_eq!(report["models"][0]["n"], 30);
    for name in ["w1", "w2", "w3"] {
        assert!(
            farm.worker(name).is_running(),
            "worker {name} died with the coordinator"
        );
    }
    farm.wait_connected(&mut client, &["w1", "w2", "w3"]).await;

    let store = farm.stop_and_open_store();
    let (_, results) = assert_exactly_once(&store, &run.run_id, 30);
    assert_eq!(results.iter().filter(|r| r.counted).count(), 30);
}

/// 3. SIGSTOP a worker (its whole process group) for twice its lease, then SIGCONT: its job is
/// redone elsewhere, the worker comes back, and its late result does not count a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_frozen_past_its_lease_is_replaced_and_its_late_result_does_not_count() {
    let (mut farm, mut client, ids, request) = scripted_farm(
        CoordinatorOpts::default(),
        &["w1", "w2", "w3"],
        10,
        4,
        &Scripted::new("m", 10),
    )
    .await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 40);
    let held = wait_busy(&mut client, &run.run_id, 3, "w2", Duration::from_secs(20)).await;
    assert!(farm.worker("w2").signal_group("STOP"));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let frozen = worker_status(&mut client, "w2").await.unwrap();
    assert!(
        !frozen.connected,
        "w2 is still connected 3.5 s into a 2 s lease: {frozen:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(farm.worker("w2").signal_group("CONT"));

    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(45), 40, 0).await;
    assert_eq!(report["models"][0]["n"], 40);
    // Woken up, the worker notices its stream is gone and joins again.
    farm.wait_connected(&mut client, &["w2"]).await;
    assert!(farm.worker("w2").is_running());

    let store = farm.stop_and_open_store();
    let (jobs, results) = assert_exactly_once(&store, &run.run_id, 40);
    for key in &held {
        let job_id = key.split('#').next().unwrap();
        let job = jobs.iter().find(|j| j.id == job_id).unwrap();
        let by_w2 = job
            .attempts
            .iter()
            .find(|a| a.worker_id == ids["w2"])
            .unwrap();
        assert!(
            matches!(&by_w2.end, Some(AttemptEnd::Lost(r)) if r.contains("lease")),
            "{key}: {:?}",
            by_w2.end
        );
        let counted = results
            .iter()
            .find(|r| r.job_id == job.id && r.counted)
            .unwrap();
        assert_ne!(counted.worker_name, "w2", "{key} was not redone elsewhere");
        // A late result of w2, if it arrived while the run was live, is kept but not counted.
        for late in results
            .iter()
            .filter(|r| r.job_id == job.id && r.worker_name == "w2")
        {
            assert!(!late.counted, "{key}: w2's late result was counted");
        }
    }
}

/// 4. A job that hangs past the job timeout is stopped, retried, and succeeds on attempt 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_job_times_out_and_succeeds_on_retry() {
    let model = Scripted::new("m", 4).fault("t01", Some(0), Some(&[1]), "hang");
    let (mut farm, mut client, _, request) = scripted_farm(
        CoordinatorOpts {
            job_timeout_ms: Some(1500),
            max_attempts: Some(3),
            // The cap; the floor (30 s by default) is lowered to it.
            ..CoordinatorOpts::default()
        },
        &["w1", "w2"],
        4,
        2,
        &model,
    )
    .await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 8);
    wait_finished(&mut client, &run.run_id, Duration::from_secs(40), 8, 0).await;
    for name in ["w1", "w2"] {
        assert!(farm.worker(name).is_running(), "worker {name} died");
    }

    let store = farm.stop_and_open_store();
    let (jobs, _) = assert_exactly_once(&store, &run.run_id, 8);
    let hung = job_of(&jobs, "t01", 0);
    assert_eq!(hung.attempts.len(), 2, "{:?}", hung.attempts);
    let reason = failure(hung, 1).expect("attempt 1 ended without an answer");
    assert!(
        reason.to_lowercase().contains("time"),
        "attempt 1 should have timed out: {reason}"
    );
    assert!(succeeded(hung, 2), "{:?}", hung.attempts);
    for job in jobs.iter().filter(|j| j.id != hung.id) {
        assert_eq!(job.attempts.len(), 1, "{} was retried", job.id);
    }
}

/// 5. A job that fails on every attempt ends failed after `--max-attempts`, named with every
/// attempt's reason in the report; the rest of the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_every_attempt_fails_alone() {
    let model = Scripted::new("m", 4).fault("t02", Some(0), None, "fail");
    let (mut farm, mut client, _, request) = scripted_farm(
        CoordinatorOpts {
            max_attempts: Some(3),
            ..CoordinatorOpts::default()
        },
        &["w1", "w2"],
        4,
        2,
        &model,
    )
    .await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 8);
    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(40), 7, 1).await;
    let failed = &report["failed_jobs"];
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(
        (&failed[0]["task_id"], &failed[0]["repetition"]),
        (&serde_json::json!("t02"), &serde_json::json!(0))
    );
    let reason = failed[0]["reason"].as_str().unwrap();
    for attempt in 1..=3 {
        assert!(
            reason.contains(&format!("attempt {attempt}:")),
            "the reason names attempt {attempt}: {reason}"
        );
    }
    assert!(!reason.contains("attempt 4"), "{reason}");
    // The failed job is shown as failed, not as missing, in every format.
    let mut body = std::collections::HashMap::new();
    for format in ["table", "md", "csv", "jsonl", "html"] {
        body.insert(format, report_body(&mut client, &run.run_id, format).await);
    }
    assert!(
        body["table"].contains("8/8 jobs · 1 failed"),
        "{}",
        body["table"]
    );
    assert!(
        body["md"].contains("- `m` · `t02` · rep 0: attempt 1: scripted fault: fail"),
        "{}",
        body["md"]
    );
    let csv_t02 = body["csv"]
        .lines()
        .find(|l| l.starts_with("m,t02,"))
        .unwrap();
    // failed_jobs is the eleventh column (grade_disagreements, implausible_timings and model_cost_usd follow).
    assert_eq!(
        csv_t02.split(',').nth(10),
        Some("1"),
        "failed_jobs of t02: {csv_t02}"
    );
    let errors: Vec<serde_json::Value> = body["jsonl"]
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["verdict"] == "error")
        .collect();
    assert_eq!(errors.len(), 3, "one line per failed attempt");
    assert!(
        errors
            .iter()
            .all(|l| l["task_id"] == "t02" && l["repetition"] == 0)
    );
    assert_eq!(errors.iter().filter(|l| l["job_failed"] == true).count(), 1);
    assert!(
        body["html"].contains(
            "<li class=\"failed-job\" data-model=\"m\" data-task=\"t02\" data-rep=\"0\">"
        ),
        "the html report lists the failed job"
    );

    let store = farm.stop_and_open_store();
    let (jobs, _) = assert_exactly_once(&store, &run.run_id, 8);
    let job = job_of(&jobs, "t02", 0);
    assert_eq!(
        job.state,
        benchfarm_coordinator::job::JobState::Failed,
        "{job:?}"
    );
    assert_eq!(job.attempts.len(), 3, "{:?}", job.attempts);
    for a in 1..=3 {
        assert!(
            matches!(
                job.attempts
                    .iter()
                    .find(|x| x.attempt == a)
                    .and_then(|x| x.end.as_ref()),
                Some(AttemptEnd::Failed(_))
            ),
            "attempt {a}: {:?}",
            job.attempts
        );
    }
}

/// 6. A worker whose copy of the model is truncated stays joined without advertising it and gets
/// none of its jobs; the run completes on the worker with the real file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_model_file_is_not_advertised_and_its_jobs_run_elsewhere() {
    let Some(model) = default_model() else { return };
    let file_name = "SmolLM2-135M-Instruct.Q4_1.gguf";
    let mut farm = Farm::start(CoordinatorOpts {
        lease_ms: 5000,
        ..CoordinatorOpts::default()
    })
    .await;
    let corrupt = farm.path("models-a");
    let good = farm.path("models-b");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::create_dir_all(&good).unwrap();
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(corrupt.join(file_name), &bytes[..bytes.len() / 2]).unwrap();
    drop(bytes);
    std::os::unix::fs::symlink(&model, good.join(file_name)).unwrap();
    farm.write("smoke.toml", &smoke_suite(16));
    let request = farm.plan(&smoke_plan(&good.join(file_name)));
    let sha = request.models[0].sha256.clone();
    farm.start_worker("a", WorkerOpts::default().models(&corrupt));
    farm.start_worker("b", WorkerOpts::default().models(&good));
    let mut client = farm.client().await;
    let ids = farm.wait_connected(&mut client, &["a", "b"]).await;
    let a = worker_status(&mut client, "a").await.unwrap();
    assert!(
        a.models.is_empty(),
        "the truncated file is advertised: {:?}",
        a.models
    );
    let b = worker_status(&mut client, "b").await.unwrap();
    assert!(b.models.iter().any(|m| m.sha256 == sha), "{:?}", b.models);

    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 2);
    let report = wait_finished(&mut client, &run.run_id, Duration::from_secs(50), 2, 0).await;
    assert_eq!(report["models"][0]["workers"], serde_json::json!(["b"]));
    let a = worker_status(&mut client, "a").await.unwrap();
    assert!(a.connected, "worker a left");
    assert!(farm.worker("a").is_running());

    let store = farm.stop_and_open_store();
    let (jobs, _) = assert_exactly_once(&store, &run.run_id, 2);
    for job in &jobs {
        assert!(
            job.attempts.iter().all(|x| x.worker_id == ids["b"]),
            "{} went to the worker without the model: {:?}",
            job.id,
            job.attempts
        );
    }
}

/// 7. The engine process killed (SIGKILL) or aborting mid-job: the job fails on that attempt and
/// succeeds on the next, and the worker process stays up and joined throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_process_killed_or_aborted_leaves_the_worker_joined() {
    let model = Scripted::new("m", 4)
        .fault("t01", None, Some(&[1]), "kill")
        .fault("t02", None, Some(&[1]), "crash");
    let (mut farm, mut client, ids, request) = scripted_farm(
        CoordinatorOpts {
            max_attempts: Some(3),
            ..CoordinatorOpts::default()
        },
        &["w1"],
        4,
        1,
        &model,
    )
    .await;
    let pid = farm.worker("w1").pid();
    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 4);
    wait_finished(&mut client, &run.run_id, Duration::from_secs(40), 4, 0).await;
    let w1 = worker_status(&mut client, "w1").await.unwrap();
    assert!(w1.connected, "w1 is not connected");
    assert_eq!(w1.worker_id, ids["w1"]);
    let proc = farm.worker("w1");
    assert!(proc.is_running(), "the worker process died");
    assert_eq!(proc.pid(), pid);

    let store = farm.stop_and_open_store();
    let (jobs, _) = assert_exactly_once(&store, &run.run_id, 4);
    let mut retried = BTreeSet::new();
    for task in ["t01", "t02"] {
        let job = job_of(&jobs, task, 0);
        assert_eq!(job.attempts.len(), 2, "{task}: {:?}", job.attempts);
        // Failed, not lost: the worker reported it on the same connection.
        assert!(
            matches!(job.attempts[0].end, Some(AttemptEnd::Failed(_))),
            "{task} attempt 1: {:?}",
            job.attempts[0].end
        );
        assert!(succeeded(job, 2), "{task}: {:?}", job.attempts);
        retried.extend(job.attempts.iter().map(|a| a.worker_id.clone()));
    }
    assert_eq!(retried, BTreeSet::from([ids["w1"].clone()]));
}
