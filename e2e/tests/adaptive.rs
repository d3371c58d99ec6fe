//! Adaptive repetitions through the farm: a plan's `repetitions = { min = 2, max = 5,
//! target_ci = 0.05 }` on an in-process coordinator and two workers, with two scripted models.
//! `steady` answers each task the same way every time (greedy decoding) and stops at the minimum,
//! "deterministic"; `noisy` alternates a right and a wrong answer, so its interval over
//! repetitions never narrows to the target and it grows to the maximum, "max reached". The
//! added repetitions are ordinary jobs: the run ends with every job counted once, and the json
//! and md reports say why each model stopped (html too: its leaderboard's "stopped:" line).

use std::time::Duration;

use benchfarm_e2e::in_process::*;

const SUITE: &str = r#"
name = "adaptive"
version = "1"
[[tasks]]
id = "a"
category = "c"
prompt = "say yes"
pass = [{ contains = "yes" }]
[[tasks]]
id = "b"
category = "c"
prompt = "say ok"
pass = [{ contains = "ok" }]
"#;

const STEADY: &str =
    "name = \"steady\"\ntokens_per_second = 1000.0\n[answers]\na = [\"yes\"]\nb = [\"ok\"]\n";
const NOISY: &str = "name = \"noisy\"\ntokens_per_second = 1000.0\n[answers]\na = [\"yes\", \"no\"]\nb = [\"ok\", \"nah\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_repetitions_stop_for_the_right_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("suite.toml"), SUITE).unwrap();
    std::fs::write(dir.path().join("steady.toml"), STEADY).unwrap();
    std::fs::write(dir.path().join("noisy.toml"), NOISY).unwrap();
    let request = plan(
        dir.path(),
        "suite = \"suite.toml\"\nrepetitions = { min = 2, max = 5, target_ci = 0.05 }\n\
         [[models]]\nscripted = \"steady.toml\"\n[[models]]\nscripted = \"noisy.toml\"\n",
    );
    assert_eq!(request.repetitions, 2);
    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let url = url(&server);
    let w1 = start_scripted_worker(&url, "w1", dir.path());
    let w2 = start_scripted_worker(&url, "w2", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 2).await;

    let run = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(run.jobs, 8, "2 models x 2 tasks x the minimum of 2");
    let status = wait_run(&mut client, &run.run_id, Duration::from_secs(60)).await;
    // steady: 2 tasks x 2; noisy: 2 tasks x 5.
    assert_eq!(
        (status.state(), status.jobs_total, status.jobs_done),
        (benchfarm_proto::v1::RunState::Finished, 14, 14),
        "{status:?}"
    );
    let report = report_json(&mut client, &run.run_id).await;
    let model = |name: &str| {
        report["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no model {name} in {report}"))
    };
    let steady = model("steady");
    assert_eq!(
        (steady["n"].as_u64(), steady["stop_reason"].as_str()),
        (Some(4), Some("deterministic")),
        "{steady}"
    );
    let noisy = model("noisy");
    assert_eq!(
        (noisy["n"].as_u64(), noisy["stop_reason"].as_str()),
        (Some(10), Some("max_reached")),
        "{noisy}"
    );
    let md = report_body(&mut client, &run.run_id, "md").await;
    assert!(
        md.contains("deterministic (identical answers across repetitions)")
            && md.contains("max reached"),
        "{md}"
    );
    w1.leave().await;
    w2.leave().await;
    server.shutdown().await.unwrap();

    // Every job, the added ones too, counted exactly once.
    let store = benchfarm_coordinator::store::Store::open_waiting(
        &dir.path().join("data"),
        Duration::from_secs(10),
    )
    .unwrap();
    let jobs = store.jobs_of_run(&run.run_id).unwrap();
    let results = store.results_of_run(&run.run_id).unwrap();
    assert_eq!(jobs.len(), 14);
    for job in &jobs {
        let counted = results
            .iter()
            .filter(|r| r.job_id == job.id && r.counted)
            .count();
        assert_eq!(counted, 1, "{}", job.id);
    }
}
