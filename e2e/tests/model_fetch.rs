//! Model distribution with real processes and the two real models: a worker with an empty cache
//! fetches a registered model, verifies and runs it, and does not fetch it again; a fetch cut by
//! `kill -9` resumes from its offset; a small `--cache-max` evicts the least recently used model; a
//! corrupted cached file is found out, deleted and fetched again; and a coordinator whose copy is
//! corrupt makes the job fail with that reason after one refetch.
//!
//! Needs the `coordinator` and `worker` binaries (see `faults.rs`) and the models from
//! `scripts/fetch-models.sh --gemma` (skipped outside CI when they are missing).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benchfarm_e2e::process::*;

const SMOL_SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const GEMMA_SHA: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

/// A directory holding links to `models`, for `serve --models-dir`.
fn models_dir(farm: &Farm, models: &[&Path]) -> PathBuf {
    let dir = farm.path("served");
    std::fs::create_dir_all(&dir).unwrap();
    for m in models {
        std::os::unix::fs::symlink(m, dir.join(m.file_name().unwrap())).unwrap();
    }
    dir
}

/// A process's log, without the terminal colours tracing puts around field names.
fn log(farm: &Farm, name: &str) -> String {
    let text = std::fs::read_to_string(farm.path(&format!("logs/{name}.log"))).unwrap_or_default();
    regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&text, "")
        .into_owned()
}

/// The worker's cached copy of `sha`.
fn cached(farm: &Farm, worker: &str, sha: &str) -> PathBuf {
    farm.path(&format!("state/{worker}/models/sha256/{sha}"))
}

fn sha_of(path: &Path) -> String {
    benchfarm_modelfile::sha256_file(path).unwrap()
}

/// Submits `plan` and waits for it to end; returns its final status.
async fn run_plan(farm: &Farm, client: &mut Client, plan: &str) -> benchfarm_proto::v1::RunStatus {
    let run = client
        .submit_run(farm.plan(plan))
        .await
        .expect("the plan is accepted")
        .into_inner();
    wait_run(client, &run.run_id, Duration::from_secs(300)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_cache_fetches_the_registered_model_once() {
    let Some(smol) = default_model() else { return };
    let mut farm = Farm::start(CoordinatorOpts::default()).await;
    farm.write("smoke.toml", &smoke_suite(32));
    // Uploaded with the CLI: the header is checked here, the digest on arrival.
    let (code, out, err) = farm.cli(&["models", "add", smol.to_str().unwrap(), "--name", "smol"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("smol  b179c9523d0e"), "{out}");
    assert_eq!(
        sha_of(&farm.data().join(format!("models/sha256/{SMOL_SHA}"))),
        SMOL_SHA
    );
    // Again: nothing to send.
    let (code, _, err) = farm.cli(&["models", "add", smol.to_str().unwrap()]);
    assert!(code == 0 && err.contains("registered already"), "{err}");

    farm.start_worker("w1", WorkerOpts::default());
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["w1"]).await;
    // By sha256 prefix the first time, by name the second.
    for plan in [registered_plan("b179c9"), registered_plan("smol")] {
        let status = run_plan(&farm, &mut client, &plan).await;
        assert_eq!(
            (status.state(), status.jobs_done),
            (benchfarm_proto::v1::RunState::Finished, 2),
            "{status:?}\n{}",
            log(&farm, "w1")
        );
    }
    let worker_log = log(&farm, "w1");
    assert_eq!(
        worker_log.matches("model fetched and verified").count(),
        1,
        "fetched more than once:\n{worker_log}"
    );
    assert_eq!(sha_of(&cached(&farm, "w1", SMOL_SHA)), SMOL_SHA);
    // The coordinator knows the worker holds it now.
    let (code, list, _) = farm.cli(&["models", "list"]);
    assert_eq!(code, 0);
    let row = list.lines().find(|l| l.starts_with("smol")).expect(&list);
    for part in ["98.4 MB", "llama", "Q4_1", "upload", "w1"] {
        assert!(row.contains(part), "{part} missing: {row}");
    }
    // Removed: unregistered, and the stored file goes.
    let (code, out, err) = farm.cli(&["models", "rm", "smol"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !farm
            .data()
            .join(format!("models/sha256/{SMOL_SHA}"))
            .exists()
    );
    let refused = client.submit_run(farm.plan(&registered_plan("smol"))).await;
    let status = refused.expect_err("an unknown registered model is refused");
    assert!(
        status.message().starts_with("models[0].registered:"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_cut_by_kill_9_resumes_from_its_offset() {
    let Some(smol) = default_model() else { return };
    let farm = Farm::start(CoordinatorOpts::default()).await;
    let served = models_dir(&farm, &[&smol]);
    // Slow enough on loopback (98 MB at 20 MB/s: about 5 s) to kill the worker mid-transfer.
    let mut farm = restart_with(
        farm,
        &[
            "--models-dir",
            served.to_str().unwrap(),
            "--transfer-rate",
            "20MB/s",
        ],
    )
    .await;
    farm.write("smoke.toml", &smoke_suite(32));
    farm.start_worker("w1", WorkerOpts::default());
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["w1"]).await;
    let run = client
        .submit_run(farm.plan(&registered_plan("SmolLM2-135M-Instruct.Q4_1")))
        .await
        .expect("submitted")
        .into_inner();
    let partial = farm.path(&format!("state/w1/models/partial/{SMOL_SHA}.part"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) < 30_000_000 {
        assert!(
            Instant::now() < deadline,
            "the fetch did not start:\n{}",
            log(&farm, "w1")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    farm.worker("w1").kill_group();
    let cut = std::fs::metadata(&partial).unwrap().len();
    assert!(cut < 98_362_432, "the fetch finished before the kill");
    farm.start_worker("w1", WorkerOpts::default());
    let status = wait_run(&mut client, &run.run_id, Duration::from_secs(300)).await;
    assert_eq!(
        (status.state(), status.jobs_done),
        (benchfarm_proto::v1::RunState::Finished, 2),
        "{status:?}"
    );
    let worker_log = log(&farm, "w1");
    let resumed = worker_log
        .lines()
        .find(|l| l.contains("resuming a partial fetch"))
        .unwrap_or_else(|| panic!("no resume:\n{worker_log}"));
    assert!(
        resumed.contains(&format!("offset={cut}")),
        "{resumed} (cut at {cut})"
    );
    // The coordinator sent the rest from there, not the whole file again.
    let coordinator_log = log(&farm, "coordinator");
    assert!(
        coordinator_log
            .lines()
            .any(|l| l.contains("model transfer ended") && l.contains(&format!("offset={cut}"))),
        "{coordinator_log}"
    );
    assert_eq!(sha_of(&cached(&farm, "w1", SMOL_SHA)), SMOL_SHA);
    assert!(!partial.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_cache_evicts_and_a_corrupted_cached_file_is_fetched_again() {
    let (Some(smol), Some(gemma)) = (default_model(), gemma_model()) else {
        return;
    };
    let farm = Farm::start(CoordinatorOpts::default()).await;
    let served = models_dir(&farm, &[&smol, &gemma]);
    farm.write("smoke.toml", &smoke_suite(24));
    // The directory is registered at start: restart on it.
    let mut farm = restart_with(farm, &["--models-dir", served.to_str().unwrap()]).await;
    // 98 MB + 253 MB do not fit under 300 MB together.
    let small = WorkerOpts::default().arg("--cache-max", "300MB");
    farm.start_worker("w1", small.clone());
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["w1"]).await;
    for (plan, sha) in [
        ("SmolLM2-135M-Instruct.Q4_1", SMOL_SHA),
        ("gemma-3-270m-q4_k_m", GEMMA_SHA),
    ] {
        let status = run_plan(&farm, &mut client, &registered_plan(plan)).await;
        assert_eq!(
            (status.state(), status.jobs_done),
            (benchfarm_proto::v1::RunState::Finished, 2),
            "{plan}: {status:?}\n{}",
            log(&farm, "w1")
        );
        assert!(cached(&farm, "w1", sha).exists());
    }
    // Gemma took SmolLM2's place.
    assert!(!cached(&farm, "w1", SMOL_SHA).exists());
    assert!(log(&farm, "w1").contains("cached model evicted"));

    // A flipped byte in the cached Gemma, while the worker is down.
    farm.worker("w1").kill_group();
    let path = cached(&farm, "w1", GEMMA_SHA);
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut byte = [0u8; 1];
        f.seek(SeekFrom::Start(100_000_000)).unwrap();
        f.read_exact(&mut byte).unwrap();
        f.seek(SeekFrom::Start(100_000_000)).unwrap();
        f.write_all(&[byte[0] ^ 0xff]).unwrap();
    }
    assert_ne!(sha_of(&path), GEMMA_SHA);
    farm.start_worker("w1", small);
    farm.wait_connected(&mut client, &["w1"]).await;
    let status = run_plan(&farm, &mut client, &registered_plan("gemma-3-270m-q4_k_m")).await;
    assert_eq!(
        (status.state(), status.jobs_done),
        (benchfarm_proto::v1::RunState::Finished, 2),
        "{status:?}\n{}",
        log(&farm, "w1")
    );
    let worker_log = log(&farm, "w1");
    assert!(
        worker_log.contains("cached model corrupt; deleted, fetching it again"),
        "{worker_log}"
    );
    assert_eq!(sha_of(&path), GEMMA_SHA);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_copy_on_the_coordinator_fails_the_job_after_one_refetch() {
    let Some(smol) = default_model() else { return };
    let farm = Farm::start(CoordinatorOpts::default()).await;
    // A copy (not a link): it is corrupted after registration.
    let served = farm.path("served");
    std::fs::create_dir_all(&served).unwrap();
    let copy = served.join("smol.gguf");
    std::fs::copy(&smol, &copy).unwrap();
    farm.write("smoke.toml", &smoke_suite(24));
    let mut farm = restart_with(
        farm,
        &[
            "--models-dir",
            served.to_str().unwrap(),
            "--max-attempts",
            "1",
        ],
    )
    .await;
    {
        // Same size, registered before: the digest the coordinator holds is now wrong for the
        // bytes it sends.
        let mut f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
        f.seek(SeekFrom::Start(50_000_000)).unwrap();
        f.write_all(b"corrupt").unwrap();
    }
    farm.start_worker("w1", WorkerOpts::default());
    let mut client = farm.client().await;
    farm.wait_connected(&mut client, &["w1"]).await;
    let status = run_plan(&farm, &mut client, &registered_plan("smol")).await;
    assert_eq!(status.jobs_failed, 2, "{status:?}");
    let worker_log = log(&farm, "w1");
    assert!(
        worker_log.contains("fetched model corrupt; deleted, fetching it again"),
        "{worker_log}"
    );
    let store = farm.stop_and_open_store();
    let jobs = store.jobs_of_run(&store.runs().unwrap()[0].id).unwrap();
    for job in &jobs {
        let end = format!("{:?}", job.attempts[0].end);
        assert!(
            end.contains("the fetched bytes hash to") && end.contains("fetched again"),
            "{end}"
        );
    }
    assert!(!cached(&farm, "w1", SMOL_SHA).exists());
}

/// The farm's coordinator restarted with `extra` flags on the same data directory and port.
async fn restart_with(mut farm: Farm, extra: &[&str]) -> Farm {
    farm.kill_coordinator();
    farm.set_coordinator_args(extra);
    farm.start_coordinator().await;
    farm
}
