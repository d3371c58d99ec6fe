//! The farm's life around a run: a coordinator restart keeps every result, a worker started before
//! its coordinator keeps retrying until it joins, a run whose model no worker has waits and says
//! why, and a bad plan submits nothing.

use benchfarm_e2e::in_process;

use std::time::Duration;

use benchfarm_e2e::in_process::*;
use benchfarm_proto::v1 as pb;

const ECHO: &str = "name = \"echo\"\n[answers]\n\"parse-json\" = [\"jq '.services[] | select(.name == \\\"db\\\") | .port' config.json\"]\n";

/// A minimal valid GGUF (no tensors) naming itself `tiny`: a model file no worker has.
fn tiny_gguf() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // metadata entries
    let key = b"general.name";
    b.extend_from_slice(&(key.len() as u64).to_le_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(&8u32.to_le_bytes()); // string
    b.extend_from_slice(&4u64.to_le_bytes());
    b.extend_from_slice(b"tiny");
    while b.len() % 32 != 0 {
        b.push(0);
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_every_finished_result() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("echo.toml"), ECHO).unwrap();
    let request = plan(
        dir.path(),
        "suite = \"agent-coding\"\nrepetitions = 2\n[[models]]\nscripted = \"echo.toml\"\n",
    );
    let data = dir.path().join("data");
    let server = start_server(&data, Duration::from_secs(30)).await;
    let url = url(&server);
    let worker = start_scripted_worker(&url, "w1", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 1).await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    wait_run(&mut client, &run.run_id, Duration::from_secs(60)).await;
    let before = report_json(&mut client, &run.run_id).await;
    worker.leave().await;
    server.shutdown().await.unwrap();

    let server = start_server(&data, Duration::from_secs(30)).await;
    let mut client = in_process::client(&in_process::url(&server)).await;
    let status = client
        .get_run(pb::GetRunRequest {
            run_id: run.run_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.state(), status.jobs_done, status.jobs_total),
        (pb::RunState::Finished, 20, 20)
    );
    let after = report_json(&mut client, &run.run_id).await;
    assert_eq!(before, after);
    // One task answered correctly (pass) in both repetitions, nine got "" (fail): 2 of 20.
    assert_eq!(
        (
            after["models"][0]["pass"].as_u64(),
            after["models"][0]["fail"].as_u64()
        ),
        (Some(2), Some(18))
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_retries_until_the_coordinator_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    provision_tokens(&url, &dir.path().join("data"));
    let worker = start_scripted_worker(&url, "early", dir.path());
    // Long enough for several failed attempts (backoff starts at 250 ms).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        !worker.task.is_finished(),
        "the worker gave up instead of retrying"
    );
    let server = start_server_on(&dir.path().join("data"), Duration::from_secs(30), addr).await;
    let mut client = client(&url).await;
    wait_workers(&mut client, 1).await;
    worker.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_a_capable_worker_waits_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.gguf"), tiny_gguf()).unwrap();
    let request = plan(
        dir.path(),
        "suite = \"agent-coding\"\nrepetitions = 1\n[[models]]\npath = \"tiny.gguf\"\n",
    );
    assert_eq!(
        request.models[0].name, "tiny",
        "the name comes from the GGUF metadata"
    );
    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let url = url(&server);
    let worker = start_scripted_worker(&url, "w1", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 1).await;
    let run = client.submit_run(request).await.unwrap().into_inner();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = client
        .get_run(pb::GetRunRequest {
            run_id: run.run_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.state(), status.jobs_queued),
        (pb::RunState::Running, 10)
    );
    assert_eq!(status.waiting.len(), 1, "{:?}", status.waiting);
    assert!(
        status.waiting[0]
            .starts_with("waiting: 10 jobs of tiny: no connected worker has the model"),
        "{:?}",
        status.waiting
    );
    let cancelled = client
        .cancel_run(pb::CancelRunRequest {
            run_id: run.run_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.jobs_cancelled, 10);
    let status = client
        .get_run(pb::GetRunRequest { run_id: run.run_id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.state(), status.jobs_cancelled),
        (pb::RunState::Cancelled, 10)
    );
    worker.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_plan_submits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let url = url(&server);
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(
        &plan_path,
        "suite = \"agent-coding\"\n[[models]]\nscripted = \"missing.toml\"\n",
    )
    .unwrap();
    let code = benchfarm_coordinator::cli::client::submit(
        &in_process::target(&url),
        &plan_path,
        false,
        "table",
    )
    .await
    .unwrap();
    assert_eq!(code, 2);
    let err = benchfarm_coordinator::plan::load(&plan_path).unwrap_err();
    assert_eq!(
        (err.line, err.column, err.field.as_str()),
        (3, 12, "models[0].scripted"),
        "{err}"
    );
    let mut client = client(&url).await;
    let runs = client
        .list_runs(pb::ListRunsRequest {})
        .await
        .unwrap()
        .into_inner()
        .runs;
    assert!(runs.is_empty(), "a bad plan must submit nothing: {runs:?}");
    // The server validates too: a suite that does not parse is refused with its position.
    let mut request =
        plan_request_with_suite("name = \"x\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\n");
    request.repetitions = 1;
    let status = client.submit_run(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("suite_toml:"),
        "{}",
        status.message()
    );
    server.shutdown().await.unwrap();
}

fn plan_request_with_suite(suite_toml: &str) -> pb::SubmitRunRequest {
    pb::SubmitRunRequest {
        suite_toml: suite_toml.into(),
        models: vec![pb::ModelRef {
            name: "echo".into(),
            sha256: benchfarm_modelfile::sha256_bytes(ECHO.as_bytes()),
            size_bytes: 0,
            source: Some(pb::model_ref::Source::ScriptedToml(ECHO.into())),
            context_length: 0,
        }],
        repetitions: 1,
        seed: 0,
        label: "test".into(),
        ..Default::default()
    }
}
