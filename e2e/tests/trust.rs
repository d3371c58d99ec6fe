//! What a worker may claim, end to end over gRPC: the coordinator grades every answer itself (a
//! worker's wrong grade is not counted, and shows as a disagreement in every report format), and a
//! worker started without `--allow-scripted-faults` refuses a scripted model's test features
//! without being quarantined for it.

use std::time::Duration;

use benchfarm_e2e::in_process::*;
use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::coordinator_message::Kind as Down;
use benchfarm_proto::v1::worker_message::Kind as Up;
use benchfarm_proto::v1::worker_service_client::WorkerServiceClient;
use benchfarm_worker::WorkerOptions;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const SUITE: &str = r#"
name = "trust"
version = "1"
[[tasks]]
id = "yes"
category = "c"
prompt = "say yes"
pass = [{ contains = "yes" }]
"#;

/// A worker that answers every assignment with `answer` and claims `verdict` for it.
async fn lying_worker(url: String, answer: &'static str, verdict: pb::Verdict) {
    let url_of_liar = url.clone();
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = WorkerServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<pb::WorkerMessage>(16);
    let up = |kind| pb::WorkerMessage { kind: Some(kind) };
    tx.send(up(Up::Hello(pb::Hello {
        worker_id: "liar".into(),
        name: "liar".into(),
        hardware: Some(pb::Hardware {
            arch: std::env::consts::ARCH.into(),
            logical_cores: 1,
            ram_total_bytes: 8 << 30,
            ram_available_bytes: 8 << 30,
            ..pb::Hardware::default()
        }),
        slots: 1,
        threads: 1,
        ..pb::Hello::default()
    })))
    .await
    .unwrap();
    // It joins with the farm's shared join token, as any worker may: the token admits it, and
    // the coordinator's own grading is what keeps its claims out of the report.
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", join_token(&url_of_liar))
            .parse()
            .unwrap(),
    );
    let mut inbound = client.connect(request).await.unwrap().into_inner();
    while let Ok(Some(message)) = inbound.message().await {
        if let Some(Down::Assign(a)) = message.kind {
            let key = a.key.unwrap();
            tx.send(up(Up::Started(pb::JobStarted {
                key: Some(key.clone()),
            })))
            .await
            .unwrap();
            tx.send(up(Up::Result(pb::JobResult {
                key: Some(key),
                answer: answer.into(),
                grade: Some(pb::Grade {
                    verdict: verdict as i32,
                    score: 1.0,
                    ..pb::Grade::default()
                }),
                timings: Some(pb::Timings {
                    gen_tokens: 2,
                    gen_ms: 20.0,
                    wall_ms: 25.0,
                    ..pb::Timings::default()
                }),
                threads: 1,
                stop: "eos".into(),
                ..pb::JobResult::default()
            })))
            .await
            .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_sends_a_wrong_grade_is_counted_by_the_coordinators_grade() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"), Duration::from_secs(10)).await;
    let url = url(&server);
    let mut client = client(&url).await;
    // "no" does not contain "yes": the suite fails it; the worker says pass.
    let worker = tokio::spawn(lying_worker(url.clone(), "no", pb::Verdict::Pass));
    wait_workers(&mut client, 1).await;
    std::fs::write(dir.path().join("trust.toml"), SUITE).unwrap();
    std::fs::write(dir.path().join("m.toml"), "name = \"m\"\n").unwrap();
    let request = plan(
        dir.path(),
        "suite = \"trust.toml\"\n[[models]]\nscripted = \"m.toml\"\n",
    );
    let run_id = client
        .submit_run(request)
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let status = wait_run(&mut client, &run_id, Duration::from_secs(30)).await;
    assert_eq!(
        (status.state(), status.jobs_done),
        (pb::RunState::Finished, 1)
    );

    let report = report_json(&mut client, &run_id).await;
    assert_eq!(report["grade_disagreements"], 1, "{report}");
    let model = &report["models"][0];
    assert_eq!(
        (&model["pass"], &model["fail"]),
        (&serde_json::json!(0), &serde_json::json!(1)),
        "the coordinator's fail is counted, not the worker's pass: {model}"
    );
    for format in ["table", "md", "html"] {
        let body = report_body(&mut client, &run_id, format).await;
        assert!(body.contains("grade disagreements: 1"), "{format}: {body}");
    }
    let csv = report_body(&mut client, &run_id, "csv").await;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header[11..14],
        [
            "grade_disagreements",
            "implausible_timings",
            "model_cost_usd"
        ],
        "{csv}"
    );
    // A scripted model costs nothing: the model's cost column follows the two counts.
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row[11..14], ["1", "0", "0"], "{csv}");
    let jsonl = report_body(&mut client, &run_id, "jsonl").await;
    let line: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&line["verdict"], &line["worker_verdict"]),
        (&serde_json::json!("fail"), &serde_json::json!("pass")),
        "{line}"
    );
    worker.abort();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_model_with_faults_on_a_worker_without_allow_scripted_faults_is_refused_without_quarantine()
 {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"), Duration::from_secs(10)).await;
    let url = url(&server);
    let mut client = client(&url).await;
    let no_models = dir.path().join("no-models");
    std::fs::create_dir_all(&no_models).unwrap();
    // A production worker: WorkerOptions::default() has allow_scripted_faults off.
    let worker = start_worker_with(
        &url,
        "prod",
        &no_models,
        &dir.path().join("prod"),
        WorkerOptions::default(),
    );
    wait_workers(&mut client, 1).await;
    std::fs::write(dir.path().join("trust.toml"), SUITE).unwrap();
    // A `fail` fault on every attempt of the only task: on a worker that honoured it, three
    // failures in a row would quarantine the worker (the default --quarantine-after is 3).
    std::fs::write(
        dir.path().join("faulty.toml"),
        "name = \"faulty\"\n[answers]\nyes = [\"yes\"]\n[[faults]]\ntask = \"yes\"\nkind = \"fail\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("honest.toml"),
        "name = \"honest\"\n[answers]\nyes = [\"yes\"]\n",
    )
    .unwrap();
    let request = plan(
        dir.path(),
        "suite = \"trust.toml\"\nrepetitions = 2\n[[models]]\nscripted = \"faulty.toml\"\n",
    );
    let run_id = client
        .submit_run(request)
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let status = wait_run(&mut client, &run_id, Duration::from_secs(60)).await;
    assert_eq!(
        (status.state(), status.jobs_failed),
        (pb::RunState::Finished, 2),
        "{status:?}"
    );
    // Every attempt was refused with the reason, and ran no fault.
    let jsonl = report_body(&mut client, &run_id, "jsonl").await;
    let reasons: Vec<String> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|l| l["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(reasons.len(), 6, "3 attempts x 2 jobs: {jsonl}");
    for reason in &reasons {
        assert!(
            reason.starts_with(
                "refused: scripted model \"faulty\" uses test features (1 [[faults]])"
            ) && reason.contains("--allow-scripted-faults"),
            "{reason}"
        );
    }
    // Six refusals in a row, and the worker is neither quarantined nor charged a failure.
    let workers = list_workers(&mut client).await;
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].quarantined, "", "{:?}", workers[0]);
    assert_eq!(workers[0].jobs_failed, 0);
    // And it still gets and runs jobs.
    let request = plan(
        dir.path(),
        "suite = \"trust.toml\"\n[[models]]\nscripted = \"honest.toml\"\n",
    );
    let run_id = client
        .submit_run(request)
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let status = wait_run(&mut client, &run_id, Duration::from_secs(30)).await;
    assert_eq!((status.jobs_done, status.jobs_failed), (1, 0), "{status:?}");
    let report = report_json(&mut client, &run_id).await;
    assert_eq!(report["models"][0]["pass"], 1, "{report}");
    worker.leave().await;
    server.shutdown().await.unwrap();
}
