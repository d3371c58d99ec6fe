//! What a test asks a running farm over gRPC: workers, run status, waits and reports.

use std::time::{Duration, Instant};

use benchfarm_proto::v1 as pb;

use super::*;

pub async fn run_status(client: &mut Client, run_id: &str) -> pb::RunStatus {
    client
        .get_run(pb::GetRunRequest {
            run_id: run_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until the run is over and returns its final status.
pub async fn wait_run(client: &mut Client, run_id: &str, limit: Duration) -> pb::RunStatus {
    let deadline = Instant::now() + limit;
    loop {
        let status = run_status(client, run_id).await;
        if status.state() != pb::RunState::Running {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "run not over within {limit:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the run to end and asserts it finished with `done` jobs done and `failed` failed, both
/// in its status and in its report (which counts `done + failed` jobs). Returns the report.
pub async fn wait_finished(
    client: &mut Client,
    run_id: &str,
    limit: Duration,
    done: u32,
    failed: u32,
) -> serde_json::Value {
    let status = wait_run(client, run_id, limit).await;
    assert_eq!(
        (status.state(), status.jobs_done, status.jobs_failed),
        (pb::RunState::Finished, done, failed),
        "{status:?}"
    );
    let report = report_json(client, run_id).await;
    assert_eq!(
        report_counts(&report),
        (u64::from(done + failed), u64::from(done), u64::from(failed))
    );
    report
}

/// Waits until at least `done` jobs of the run are done and the worker `name` holds a job (so that
/// what the test does to it next happens mid-job). Returns the worker's running jobs.
pub async fn wait_busy(
    client: &mut Client,
    run_id: &str,
    done: u32,
    name: &str,
    limit: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let status = run_status(client, run_id).await;
        assert_eq!(
            status.state(),
            pb::RunState::Running,
            "the run ended too early: {status:?}"
        );
        if status.jobs_done >= done
            && let Some(w) = worker_status(client, name).await
            && w.connected
            && !w.running_jobs.is_empty()
        {
            return w.running_jobs;
        }
        assert!(
            Instant::now() < deadline,
            "worker {name} not busy with {done} jobs done within {limit:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
