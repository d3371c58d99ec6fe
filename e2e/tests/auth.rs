//! Who may join and what they may claim, against a real in-process coordinator on 127.0.0.1:
//! tokens and roles on every RPC, results bound to the attempt's worker, identity bound to tokens,
//! revocation, and results over the message limit.

use std::time::Duration;

use benchfarm_coordinator::auth::Role;
use benchfarm_coordinator::auth::policy::METHODS;
use benchfarm_coordinator::cli::connect::{Target, connect};
use benchfarm_e2e::in_process::*;
use benchfarm_e2e::tls;
use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::worker_message::Kind as Up;
use benchfarm_proto::v1::worker_service_client::WorkerServiceClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

/// A token of `role` added through the API with the operator token.
async fn add_token(
    client: &mut benchfarm_coordinator::cli::connect::FarmClient,
    name: &str,
    role: Role,
) -> String {
    client
        .add_token(pb::AddTokenRequest {
            name: name.into(),
            role: benchfarm_coordinator::grpc::tokens::role_to_wire(role) as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

/// Calls `path` as a unary RPC with an empty message and `token`; returns the status code. The gate
/// decides before any message is decoded, so one empty message serves every method, streaming ones
/// included.
async fn call(url: &str, path: &'static str, token: Option<&str>) -> Code {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(pb::ListRunsRequest {});
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<pb::ListRunsRequest, pb::ListRunsResponse>::default();
    let route = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let result = tokio::time::timeout(Duration::from_secs(10), grpc.unary(request, route, codec))
        .await
        .unwrap_or_else(|_| panic!("{path} hung"));
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn path(service: &str, method: &str) -> &'static str {
    Box::leak(format!("/{service}/{method}").into_boxed_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_missing_wrong_and_wrong_role_tokens() {
    let dir = tempfile::tempdir().unwrap();
    // Each call below is a new connection, four or five per RPC: more than the per-address burst
    // of 64 now that ModelService's RPCs are in the table, so this server allows more.
    let server = start_server_with(
        &dir.path().join("data"),
        Duration::from_secs(30),
        "127.0.0.1:0".parse().unwrap(),
        |config| config.connections.burst = 1000,
    )
    .await;
    let url = url(&server);
    let mut operator = client(&url).await;
    let submitter = add_token(&mut operator, "reader", Role::Submitter).await;
    let worker = add_token(&mut operator, "board-1", Role::Worker).await;
    let op = api_token(&url);
    let token_of = |role: Role| match role {
        Role::Worker => worker.as_str(),
        Role::Submitter => submitter.as_str(),
        Role::Operator => op.as_str(),
    };

    let mut checked = 0;
    for (service, method, needed) in METHODS {
        let p = path(service, method);
        assert_eq!(
            call(&url, p, None).await,
            Code::Unauthenticated,
            "{p} without a token"
        );
        assert_eq!(
            call(&url, p, Some("bf_not-a-token")).await,
            Code::Unauthenticated,
            "{p} with a wrong token"
        );
        for role in Role::ALL.into_iter().filter(|r| !r.permits(*needed)) {
            assert_eq!(
                call(&url, p, Some(token_of(role))).await,
                Code::PermissionDenied,
                "{p} with a {role} token"
            );
        }
        // The right role passes the gate (the empty request may then be refused as invalid).
        if *method != "Connect" && *method != "WatchRun" {
            let code = call(&url, p, Some(token_of(*needed))).await;
            assert!(
                !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                "{p} with a {needed} token: {code:?}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, METHODS.len());
    // Health stays open (the answer is a health response, which this test's codec cannot read:
    // any code but the gate's two will do).
    let health = call(&url, "/grpc.health.v1.Health/Check", None).await;
    assert!(
        !matches!(health, Code::Unauthenticated | Code::PermissionDenied),
        "{health:?}"
    );

    // Tokens are listed by name and role, never in clear, and revocation takes effect at once.
    let listed = operator
        .list_tokens(pb::ListTokensRequest {})
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["api", "worker-join", "reader", "board-1"]);
    let on_disk = std::fs::read_to_string(dir.path().join("data/tokens.json")).unwrap();
    for token in [&submitter, &worker, &op] {
        assert!(
            !on_disk.contains(token.as_str()),
            "a token is stored in clear"
        );
    }
    operator
        .revoke_token(pb::RevokeTokenRequest {
            name: "reader".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        call(
            &url,
            path("benchfarm.v1.FarmService", "ListRuns"),
            Some(&submitter)
        )
        .await,
        Code::Unauthenticated
    );
    server.shutdown().await.unwrap();
}

/// A raw worker stream: hello sent, the coordinator's messages readable.
struct RawWorker {
    tx: mpsc::Sender<pb::WorkerMessage>,
    inbound: tonic::Streaming<pb::CoordinatorMessage>,
}

async fn raw_worker(url: &str, token: &str, id: &str) -> Result<RawWorker, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = WorkerServiceClient::new(channel);
    let (tx, rx) = mpsc::channel(16);
    tx.send(pb::WorkerMessage {
        kind: Some(Up::Hello(pb::Hello {
            worker_id: id.into(),
            name: id.into(),
            hardware: Some(pb::Hardware {
                cpu_model: "forger".into(),
                arch: std::env::consts::ARCH.into(),
                physical_cores: 1,
                logical_cores: 1,
                ram_total_bytes: 1 << 30,
                ram_available_bytes: 1 << 30,
                ..pb::Hardware::default()
            }),
            slots: 1,
            threads: 1,
            version: "0.1.0".into(),
            ..pb::Hello::default()
        })),
    })
    .await
    .unwrap();
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let inbound = client.connect(request).await?.into_inner();
    Ok(RawWorker { tx, inbound })
}

fn forged_pass(job_id: &str, attempt: u32) -> pb::WorkerMessage {
    pb::WorkerMessage {
        kind: Some(Up::Result(pb::JobResult {
            key: Some(pb::JobKey {
                job_id: job_id.into(),
                attempt,
            }),
            answer: "FORGED ANSWER".into(),
            grade: Some(pb::Grade {
                verdict: pb::Verdict::Pass as i32,
                score: 1.0,
                ..pb::Grade::default()
            }),
            timings: Some(pb::Timings {
                wall_ms: 1.0,
                gen_tokens: 1,
                gen_ms: 1.0,
                ..pb::Timings::default()
            }),
            threads: 1,
            ..pb::JobResult::default()
        })),
    }
}

/// (task, repetition) → (verdict, answer) of a run's counted outcomes, from its jsonl.
async fn counted(
    client: &mut benchfarm_coordinator::cli::connect::FarmClient,
    run: &str,
) -> Vec<(String, u64, String, String)> {
    let jsonl = report_body(client, run, "jsonl").await;
    let mut rows: Vec<(String, u64, String, String)> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["counted"].as_bool() == Some(true))
        .map(|v| {
            (
                v["task_id"].as_str().unwrap_or_default().to_string(),
                v["repetition"].as_u64().unwrap_or_default(),
                v["verdict"].as_str().unwrap_or_default().to_string(),
                v["answer"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_result_from_another_stream_is_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    // Slow enough that every job is held by the honest worker while the forger speaks.
    std::fs::write(
        dir.path().join("honest.toml"),
        "name = \"honest\"\ntokens_per_second = 100000.0\ndelay_ms = 150\n[answers]\n\
         \"parse-json\" = [\"jq '.port' config.json\"]\n",
    )
    .unwrap();
    let text =
        "suite = \"agent-coding\"\nrepetitions = 1\n[[models]]\nscripted = \"honest.toml\"\n";
    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let url = url(&server);
    let w1 = start_scripted_worker(&url, "w1", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 1).await;
    let honest_id = client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers[0]
        .worker_id
        .clone();

    // A second stream claiming the honest worker's id with the shared join token is refused, and
    // the honest worker keeps its stream.
    let join = join_token(&url);
    let refused = raw_worker(&url, &join, &honest_id)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");

    // A forger under its own id: it sends a PASS for every job of the run, as each is running.
    let mut forger = raw_worker(&url, &join, "forger-0001").await.unwrap();
    let _welcome = forger.inbound.message().await.unwrap();
    // The forger takes no jobs: it says it is draining.
    forger
        .tx
        .send(pb::WorkerMessage {
            kind: Some(Up::Heartbeat(pb::Heartbeat {
                draining: true,
                ..pb::Heartbeat::default()
            })),
        })
        .await
        .unwrap();
    let forged_run = client
        .submit_run(plan(dir.path(), text))
        .await
        .unwrap()
        .into_inner();
    for index in 0..forged_run.jobs {
        let job_id = format!("{}-{:010}", forged_run.run_id, index);
        for attempt in 1..=2 {
            forger.tx.send(forged_pass(&job_id, attempt)).await.unwrap();
        }
    }
    let done = wait_run(&mut client, &forged_run.run_id, Duration::from_secs(120)).await;
    assert_eq!(done.state(), pb::RunState::Finished);
    let forged_rows = counted(&mut client, &forged_run.run_id).await;
    let jsonl = report_body(&mut client, &forged_run.run_id, "jsonl").await;
    assert!(
        !jsonl.contains("FORGED"),
        "a forged answer reached the report"
    );
    assert!(forged_rows.iter().all(|r| r.3 != "FORGED ANSWER"));

    // The same plan without a forger: the same report.
    drop(forger);
    let honest_run = client
        .submit_run(plan(dir.path(), text))
        .await
        .unwrap()
        .into_inner();
    wait_run(&mut client, &honest_run.run_id, Duration::from_secs(120)).await;
    let honest_rows = counted(&mut client, &honest_run.run_id).await;
    assert_eq!(forged_rows.len(), forged_run.jobs as usize);
    assert_eq!(forged_rows, honest_rows, "the forger changed the report");
    let score = |v: &serde_json::Value| v["models"][0]["score"].clone();
    assert_eq!(
        score(&report_json(&mut client, &forged_run.run_id).await),
        score(&report_json(&mut client, &honest_run.run_id).await)
    );
    w1.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_worker_token_owns_its_id_and_revoking_it_requeues_the_held_job() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slow.toml"),
        "name = \"slow\"\ntokens_per_second = 100000.0\ndelay_ms = 600\n",
    )
    .unwrap();
    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let url = url(&server);
    let mut operator = client(&url).await;
    let own = add_token(&mut operator, "board-1", Role::Worker).await;

    // A worker with its own token: bound to its id at its first Connect.
    let (stop, rx) = tokio::sync::watch::channel(benchfarm_worker::Stop::Run);
    let no_models = dir.path().join("no-models");
    std::fs::create_dir_all(&no_models).unwrap();
    let state = dir.path().join("board-1");
    let config = |token: &str| benchfarm_worker::JoinConfig {
        coordinator: url.clone(),
        models_dir: no_models.clone(),
        labels: Default::default(),
        threads: Some(1),
        state_dir: state.clone(),
        name: Some("board-1".into()),
        slots: 1,
        credentials: benchfarm_worker::credentials::Credentials::new(
            &url,
            Some(token),
            &Default::default(),
        )
        .unwrap(),
    };
    let board = tokio::spawn(benchfarm_worker::join(config(&own), rx));
    wait_workers(&mut operator, 1).await;
    let tokens = operator
        .list_tokens(pb::ListTokensRequest {})
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let bound = tokens.iter().find(|t| t.name == "board-1").unwrap();
    assert!(!bound.bound_worker.is_empty(), "the token was not bound");
    let board_id = bound.bound_worker.clone();

    // The shared join token cannot speak for the bound id, even while the worker is offline later.
    let claim = raw_worker(&url, &join_token(&url), &board_id)
        .await
        .err()
        .expect("refused");
    assert_eq!(claim.code(), Code::PermissionDenied, "{claim:?}");

    // One slow job, held by the board; then its token is revoked.
    let run = operator
        .submit_run(plan(
            dir.path(),
            "suite = \"agent-coding\"\nrepetitions = 1\n[[models]]\nscripted = \"slow.toml\"\n",
        ))
        .await
        .unwrap()
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let workers = operator
            .list_workers(pb::ListWorkersRequest {})
            .await
            .unwrap()
            .into_inner()
            .workers;
        if workers.iter().any(|w| !w.running_jobs.is_empty()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the board never took the job"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    operator
        .revoke_token(pb::RevokeTokenRequest {
            name: "board-1".into(),
        })
        .await
        .unwrap();
    // The board is cut off, and on reconnecting is refused for good: it leaves with the reason.
    let ended = tokio::time::timeout(Duration::from_secs(20), board)
        .await
        .expect("the revoked worker leaves")
        .unwrap();
    let why = ended
        .expect_err("a refused worker ends with an error")
        .to_string();
    assert!(why.contains("Unauthenticated"), "{why}");
    drop(stop);

    // Its job went back to the queue: another worker finishes the run, each job once.
    let w2 = start_scripted_worker(&url, "w2", dir.path());
    let status = wait_run(&mut operator, &run.run_id, Duration::from_secs(120)).await;
    assert_eq!(status.state(), pb::RunState::Finished);
    assert_eq!(status.jobs_done, run.jobs);
    let rows = counted(&mut operator, &run.run_id).await;
    assert_eq!(rows.len(), run.jobs as usize);
    w2.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_the_message_limit_is_stored_truncated_and_the_stream_survives() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "a".repeat(200 * 1024);
    std::fs::write(
        dir.path().join("verbose.toml"),
        format!(
            "name = \"verbose\"\ntokens_per_second = 10000000.0\n[answers]\n\"parse-json\" = [\"{huge}\"]\n"
        ),
    )
    .unwrap();
    let limit = 64 * 1024;
    let server = start_server_with(
        &dir.path().join("data"),
        Duration::from_secs(30),
        "127.0.0.1:0".parse().unwrap(),
        |config| config.streams.max_message_bytes = limit,
    )
    .await;
    let url = url(&server);
    let w1 = start_scripted_worker(&url, "w1", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 1).await;
    let run = client
        .submit_run(plan(
            dir.path(),
            "suite = \"agent-coding\"\nrepetitions = 2\n[[models]]\nscripted = \"verbose.toml\"\n",
        ))
        .await
        .unwrap()
        .into_inner();
    let status = wait_run(&mut client, &run.run_id, Duration::from_secs(120)).await;
    assert_eq!(status.state(), pb::RunState::Finished);
    assert_eq!(
        status.jobs_done,
        run.jobs,
        "every job after the big one was done too: {status:?}\n{}",
        report_body(&mut client, &run.run_id, "jsonl")
            .await
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let jsonl = report_body(&mut client, &run.run_id, "jsonl").await;
    let big: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["task_id"] == "parse-json")
        .collect();
    assert_eq!(big.len(), 2);
    for v in &big {
        assert_eq!(v["truncated"], true, "{}", v["job"]);
        let answer = v["answer"].as_str().unwrap();
        assert!(
            answer.len() < limit && answer.len() > limit / 2,
            "{}",
            answer.len()
        );
        assert!(huge.starts_with(answer));
    }
    // One stream all along: the worker never reconnected.
    let workers = client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    assert_eq!(workers.len(), 1);
    w1.leave().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_need_the_ca_and_mtls_needs_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tls::make(&dir.path().join("pki"));
    let server = start_server_with(
        &dir.path().join("data"),
        Duration::from_secs(30),
        "127.0.0.1:0".parse().unwrap(),
        |config| {
            config.tls = Some(benchfarm_coordinator::grpc::server::TlsFiles {
                cert: pki.server_cert.clone(),
                key: pki.server_key.clone(),
                client_ca: Some(pki.ca.clone()),
            })
        },
    )
    .await;
    let https = format!("https://localhost:{}", server.addr.port());
    let token = api_token(&url(&server));
    let target = |ca: Option<&std::path::Path>, client: bool| Target {
        url: https.clone(),
        token: Some(token.clone()),
        tls: benchfarm_coordinator::cli::connect::ClientTls {
            ca: ca.map(|p| p.to_path_buf()),
            client_cert: client.then(|| pki.client_cert.clone()),
            client_key: client.then(|| pki.client_key.clone()),
        },
    };
    let list = |t: Target| async move {
        match connect(&t).await {
            Ok(mut c) => c
                .list_runs(pb::ListRunsRequest {})
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("{e:#}")),
        }
    };
    assert!(list(target(Some(&pki.ca), true)).await.is_ok());
    assert!(
        list(target(Some(&pki.other_ca), true)).await.is_err(),
        "an untrusted server was accepted"
    );
    assert!(
        list(target(Some(&pki.ca), false)).await.is_err(),
        "mTLS let a client without a certificate in"
    );
    assert!(
        list(target(None, true)).await.is_err(),
        "https without --ca"
    );
    // Plaintext to a TLS port fails too.
    assert!(
        list(Target::with_token(
            &format!("http://{}", server.addr),
            &token
        ))
        .await
        .is_err()
    );
    server.shutdown().await.unwrap();
}
