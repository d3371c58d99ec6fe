//! The worker against a fake coordinator (a real gRPC server on loopback that the test scripts):
//! a coordinator's `Drain` makes the worker finish its job and leave; results not acknowledged
//! before a restart are re-sent by the next worker process from `STATE/outbox.log`; and with the
//! engine in a child process a crash fails one job while the next runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::coordinator_message::Kind as Down;
use benchfarm_proto::v1::worker_message::Kind as Up;
use benchfarm_proto::v1::worker_service_server::{WorkerService, WorkerServiceServer};
use benchfarm_worker::{EngineMode, JoinConfig, Stop, WorkerOptions};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

const SUITE: &str = r#"
name = "mini"
version = "1"
[[tasks]]
id = "t"
category = "test"
prompt = "say fine"
pass = [{ contains = "fine" }]
"#;

const MODEL: &str = r#"
name = "faulty"
delay_ms = 300
[answers]
t = ["fine"]
[[faults]]
task = "t"
attempts = [7]
kind = "crash"
"#;

/// One worker connection as the test sees it: what the worker sent, and a way to answer.
struct Conn {
    up: mpsc::Receiver<pb::WorkerMessage>,
    down: mpsc::Sender<Result<pb::CoordinatorMessage, Status>>,
}

impl Conn {
    async fn send(&self, kind: Down) {
        self.down
            .send(Ok(pb::CoordinatorMessage { kind: Some(kind) }))
            .await
            .unwrap();
    }

    /// The next message of interest, skipping heartbeats unless `heartbeats`.
    async fn next(&mut self, heartbeats: bool) -> Up {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), self.up.recv())
                .await
                .expect("a worker message within 20 s")
                .expect("the worker stream is open");
            match message.kind.unwrap() {
                Up::Heartbeat(_) if !heartbeats => {}
                kind => return kind,
            }
        }
    }
}

struct Fake {
    conns: mpsc::Sender<Conn>,
}

type DownStream = Pin<Box<dyn Stream<Item = Result<pb::CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerService for Fake {
    type ConnectStream = DownStream;

    async fn connect(
        &self,
        request: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<DownStream>, Status> {
        let mut inbound = request.into_inner();
        let (up_tx, up) = mpsc::channel(256);
        let (down, down_rx) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(Ok(m)) = inbound.next().await {
                if up_tx.send(m).await.is_err() {
                    return;
                }
            }
        });
        self.conns.send(Conn { up, down }).await.unwrap();
        Ok(Response::new(Box::pin(ReceiverStream::new(down_rx))))
    }
}

/// Starts the fake coordinator; returns its URL and the feed of worker connections.
async fn fake_coordinator() -> (String, mpsc::Receiver<Conn>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (conns, rx) = mpsc::channel(8);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(WorkerServiceServer::new(Fake { conns }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (url, rx)
}

fn start_worker(
    url: &str,
    state: &Path,
    engine: EngineMode,
) -> (
    watch::Sender<Stop>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let models = state.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let config = JoinConfig {
        coordinator: url.into(),
        models_dir: models,
        labels: Default::default(),
        threads: Some(1),
        state_dir: state.to_path_buf(),
        name: Some("w".into()),
        slots: 1,
        credentials: Default::default(),
    };
    // The faulty model's [[faults]] are what these tests are about.
    let options = WorkerOptions {
        engine,
        allow_scripted_faults: true,
        ..WorkerOptions::default()
    };
    let (stop, rx) = watch::channel(Stop::Run);
    (
        stop,
        tokio::spawn(benchfarm_worker::join_with(config, options, rx)),
    )
}

fn key(job: &str, attempt: u32) -> pb::JobKey {
    pb::JobKey {
        job_id: job.into(),
        attempt,
    }
}

fn assign(job: &str, attempt: u32) -> Down {
    Down::Assign(pb::JobAssignment {
        key: Some(key(job, attempt)),
        run_id: "r".into(),
        model: Some(pb::ModelRef {
            name: "faulty".into(),
            source: Some(pb::model_ref::Source::ScriptedToml(MODEL.into())),
            ..pb::ModelRef::default()
        }),
        suite_toml: SUITE.into(),
        suite_name: "mini".into(),
        suite_version: "1".into(),
        task_id: "t".into(),
        ..pb::JobAssignment::default()
    })
}

/// Accepts the next connection and checks its hello.
async fn accept(conns: &mut mpsc::Receiver<Conn>) -> Conn {
    let mut conn = tokio::time::timeout(Duration::from_secs(20), conns.recv())
        .await
        .expect("the worker connects within 20 s")
        .unwrap();
    let Up::Hello(hello) = conn.next(false).await else {
        panic!("the first message is not a hello");
    };
    // The hello says what the llama.cpp build uses and what the CPU offers (issue 8).
    let engine = hello.engine.expect("hello.engine");
    assert!(
        engine.system_info.starts_with("CPU : "),
        "{:?}",
        engine.system_info
    );
    assert!(
        engine.build_features.iter().any(|f| f == "OPENMP"),
        "{:?}",
        engine.build_features
    );
    assert!(!engine.cpu_features.is_empty(), "no CPU features read");
    conn
}

async fn expect_result(conn: &mut Conn, k: &pb::JobKey) -> pb::JobResult {
    loop {
        match conn.next(false).await {
            Up::Started(s) => assert_eq!(s.key.as_ref(), Some(k)),
            Up::Result(r) => {
                assert_eq!(r.key.as_ref(), Some(k));
                return r;
            }
            other => panic!("expected a result for {k:?}, got {other:?}"),
        }
    }
}

async fn leaves(task: tokio::task::JoinHandle<anyhow::Result<()>>) {
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the worker leaves within 20 s")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn coordinator_drain_finishes_the_running_job_then_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut conns) = fake_coordinator().await;
    let (_stop, task) = start_worker(&url, dir.path(), EngineMode::InProcess);
    let mut conn = accept(&mut conns).await;
    conn.send(assign("j1", 1)).await;
    assert!(matches!(conn.next(false).await, Up::Started(_)));
    // Drain while the job (300 ms) runs: the worker says it is draining, still reports the job.
    conn.send(Down::Drain(pb::Drain {
        reason: "test".into(),
    }))
    .await;
    let mut saw_draining = false;
    let result = loop {
        match conn.next(true).await {
            Up::Heartbeat(h) => saw_draining |= h.draining,
            Up::Result(r) => break r,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(saw_draining, "no draining heartbeat before the result");
    assert_eq!(result.grade.unwrap().verdict, pb::Verdict::Pass as i32);
    // It waits for the acknowledgement, then leaves.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !task.is_finished(),
        "left before its result was acknowledged"
    );
    conn.send(Down::Ack(pb::ResultAck {
        key: Some(key("j1", 1)),
    }))
    .await;
    leaves(task).await;
}

#[tokio::test]
async fn unacknowledged_results_are_resent_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut conns) = fake_coordinator().await;
    let (stop, task) = start_worker(&url, dir.path(), EngineMode::InProcess);
    let mut conn = accept(&mut conns).await;
    conn.send(assign("j1", 2)).await;
    let first = expect_result(&mut conn, &key("j1", 2)).await;
    // The worker goes away before the coordinator acknowledged the result.
    stop.send(Stop::Abandon).unwrap();
    leaves(task).await;
    drop(conn);
    let outbox = std::fs::read_to_string(dir.path().join("outbox.log")).unwrap();
    assert!(outbox.contains("\"job_id\":\"j1\""), "{outbox}");

    let (stop, task) = start_worker(&url, dir.path(), EngineMode::InProcess);
    let mut conn = accept(&mut conns).await;
    match conn.next(false).await {
        Up::Result(r) => assert_eq!(r, first),
        other => panic!("expected the re-sent result, got {other:?}"),
    }
    conn.send(Down::Ack(pb::ResultAck {
        key: Some(key("j1", 2)),
    }))
    .await;
    stop.send(Stop::Drain).unwrap();
    leaves(task).await;
    let outbox = std::fs::read_to_string(dir.path().join("outbox.log")).unwrap();
    assert!(!outbox.contains("j1"), "{outbox}");
}

#[tokio::test]
async fn a_crash_in_the_engine_process_fails_one_job_and_the_worker_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut conns) = fake_coordinator().await;
    let engine = EngineMode::Child {
        program: env!("CARGO_BIN_EXE_worker").into(),
    };
    let (_stop, task) = start_worker(&url, dir.path(), engine);
    let mut conn = accept(&mut conns).await;
    conn.send(assign("j1", 7)).await;
    let failed = loop {
        match conn.next(false).await {
            Up::Started(_) => {}
            Up::Failed(f) => break f,
            other => panic!("expected a failure, got {other:?}"),
        }
    };
    assert_eq!(failed.key, Some(key("j1", 7)));
    assert!(
        failed
            .reason
            .starts_with("engine process died: killed by signal 6 (SIGABRT"),
        "{}",
        failed.reason
    );
    conn.send(assign("j1", 8)).await;
    let result = expect_result(&mut conn, &key("j1", 8)).await;
    assert_eq!(result.answer, "fine");
    conn.send(Down::Ack(pb::ResultAck {
        key: Some(key("j1", 8)),
    }))
    .await;
    // The failure was never acknowledged (the coordinator does not ack failures): the drain
    // must not wait for it.
    conn.send(Down::Drain(pb::Drain::default())).await;
    leaves(task).await;
}

/// `assign`, naming the suite by digest only (as the coordinator does after a connection's first
/// assignment of it).
fn assign_by_digest(job: &str, attempt: u32) -> Down {
    let Down::Assign(mut a) = assign(job, attempt) else {
        unreachable!()
    };
    a.suite_toml.clear();
    a.suite_sha256 = benchfarm_modelfile::sha256_bytes(SUITE.as_bytes());
    Down::Assign(a)
}

#[tokio::test]
async fn a_suite_named_by_digest_is_the_one_kept_and_an_unknown_one_is_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut conns) = fake_coordinator().await;
    let (_stop, task) = start_worker(&url, dir.path(), EngineMode::InProcess);
    let mut conn = accept(&mut conns).await;
    // By digest before the worker ever saw the text: not started, and said why.
    conn.send(assign_by_digest("j1", 1)).await;
    let failed = loop {
        match conn.next(false).await {
            Up::Started(_) => {}
            Up::Failed(f) => break f,
            other => panic!("expected a failure, got {other:?}"),
        }
    };
    assert!(failed.suite_unknown, "{failed:?}");
    assert!(!failed.refused);
    // With the text (and its digest) once, then by digest: graded with the kept suite.
    let Down::Assign(mut with_text) = assign("j2", 1) else {
        unreachable!()
    };
    with_text.suite_sha256 = benchfarm_modelfile::sha256_bytes(SUITE.as_bytes());
    conn.send(Down::Assign(with_text)).await;
    let first = expect_result(&mut conn, &key("j2", 1)).await;
    conn.send(assign_by_digest("j3", 1)).await;
    let second = expect_result(&mut conn, &key("j3", 1)).await;
    for r in [&first, &second] {
        assert_eq!(r.grade.as_ref().unwrap().verdict, pb::Verdict::Pass as i32);
    }
    // A text that does not match the digest it comes with is refused, not kept under it.
    let Down::Assign(mut lying) = assign("j4", 1) else {
        unreachable!()
    };
    lying.suite_sha256 = "0".repeat(64);
    conn.send(Down::Assign(lying)).await;
    let failed = loop {
        match conn.next(false).await {
            Up::Started(_) => {}
            Up::Failed(f) => break f,
            other => panic!("expected a failure, got {other:?}"),
        }
    };
    assert!(
        failed.reason.contains("does not match its sha256"),
        "{failed:?}"
    );
    for k in ["j2", "j3"] {
        conn.send(Down::Ack(pb::ResultAck {
            key: Some(key(k, 1)),
        }))
        .await;
    }
    conn.send(Down::Drain(pb::Drain::default())).await;
    leaves(task).await;
}
