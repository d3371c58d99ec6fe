//! What an operator does to a farm: quarantine and clear a failing worker, drain a worker, and
//! refuse a plan no worker can serve (`submit --strict`).

use std::time::Duration;

use benchfarm_e2e::in_process::*;
use benchfarm_proto::v1 as pb;

/// A scripted model whose every answer fails in the engine.
const BROKEN: &str = "name = \"broken\"\n[answers]\n\"parse-json\" = [\"x\"]\n\
                      [[faults]]\ntask = \"parse-json\"\nkind = \"fail\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_failing_in_a_row_is_quarantined_until_cleared() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.toml"), BROKEN).unwrap();
    // A one-task suite: every job is parse-json, which fails in the engine every time.
    let suite = "name = \"one\"\nversion = \"1\"\n[[tasks]]\nid = \"parse-json\"\ncategory = \"c\"\n\
                 prompt = \"p\"\npass = [{ contains = \"x\" }]\n";
    std::fs::write(dir.path().join("one.toml"), suite).unwrap();
    let request = plan(
        dir.path(),
        "suite = \"one.toml\"\nrepetitions = 3\n[[models]]\nscripted = \"broken.toml\"\n",
    );
    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let url = url(&server);
    let worker = start_scripted_worker(&url, "flaky", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 1).await;
    let run = client.submit_run(request).await.unwrap().into_inner();

    // Three failures in a row on the only worker (a retry goes back to it: there is no other):
    // quarantined (default after 3), and what is left waits for another worker.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let w = worker_status(&mut client, "flaky").await.unwrap();
        if !w.quarantined.is_empty() {
            break w;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never quarantined: {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status
            .quarantined
            .starts_with("quarantined: 3 failed jobs in a row"),
        "{}",
        status.quarantined
    );
    assert_eq!(status.jobs_failed, 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let progress = client
        .get_run(pb::GetRunRequest {
            run_id: run.run_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(progress.jobs_running, 0, "{progress:?}");
    assert_eq!(
        progress.jobs_queued + progress.jobs_failed,
        3,
        "{progress:?}"
    );
    assert!(progress.jobs_queued > 0, "{progress:?}");
    assert!(
        progress
            .waiting
            .iter()
            .any(|w| w.contains("draining or quarantined")),
        "{:?}",
        progress.waiting
    );

    // Cleared, it takes the jobs again; each fails a second and a third time and ends failed.
    let cleared = client
        .clear_worker(pb::WorkerRef {
            worker: "flaky".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(cleared.quarantined.is_empty());
    let mut attempts_left = 20;
    let final_status = loop {
        let _ = client
            .clear_worker(pb::WorkerRef {
                worker: "flaky".into(),
            })
            .await;
        let s = client
            .get_run(pb::GetRunRequest {
                run_id: run.run_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if s.state() != pb::RunState::Running {
            break s;
        }
        attempts_left -= 1;
        assert!(attempts_left > 0, "run never ended: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((final_status.jobs_failed, final_status.jobs_done), (3, 0));
    let report = report_json(&mut client, &run.run_id).await;
    let reasons = report["failed_jobs"][0]["reason"].as_str().unwrap();
    assert!(
        reasons.contains("attempt 3: scripted fault: fail"),
        "{reasons}"
    );

    // Unknown workers are a NotFound, not a crash.
    let err = client
        .drain_worker(pb::WorkerRef {
            worker: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // Drained, the worker finishes and leaves on its own.
    client
        .drain_worker(pb::WorkerRef {
            worker: "flaky".into(),
        })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), worker.task)
        .await
        .expect("a drained worker leaves")
        .unwrap()
        .unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_submit_refuses_what_no_worker_can_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("echo.toml"), "name = \"echo\"\n[answers]\n").unwrap();
    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let url = url(&server);
    let worker = start_scripted_worker(&url, "home", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 1).await;
    let text = "suite = \"agent-coding\"\nrequire = { labels = { site = \"lab\" } }\n[[models]]\nscripted = \"echo.toml\"\n";
    let mut request = plan(dir.path(), text);
    request.strict = true;
    let status = client.submit_run(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("no connected worker meets the run's requirements (site=lab)"),
        "{}",
        status.message()
    );
    let runs = client
        .list_runs(pb::ListRunsRequest {})
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert!(runs.is_empty());
    // Without --strict the run is accepted and waits, saying why.
    request.strict = false;
    let run = client.submit_run(request).await.unwrap().into_inner();
    let s = client
        .get_run(pb::GetRunRequest { run_id: run.run_id })
        .await
        .unwrap()
        .into_inner();
    assert!(s.waiting[0].contains("site=lab"), "{:?}", s.waiting);
    worker.leave().await;
    server.shutdown().await.unwrap();
}
