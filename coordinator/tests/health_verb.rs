//! `coordinator health`, the container health check: SERVING from a live coordinator (without a
//! token, although tokens are on), and a non-zero exit for an unknown service and for a port
//! nothing listens on.

use std::time::Duration;

use benchfarm_coordinator::cli::connect::Target;
use benchfarm_coordinator::cli::health::{self, SERVICES};
use benchfarm_coordinator::grpc::server::{self, ServeConfig};
use tonic_health::pb::health_check_response::ServingStatus;

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_coordinator_is_healthy_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = server::start(ServeConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().join("data"),
    ))
    .await
    .expect("server starts");
    assert!(running.tokens.is_some(), "tokens are on by default");
    let target = Target::insecure(&format!("http://{}", running.addr));
    let services: Vec<String> = SERVICES.iter().map(|s| s.to_string()).collect();
    let answers = health::check(&target, &services, TIMEOUT)
        .await
        .expect("health answers");
    assert_eq!(answers.len(), 2);
    for answer in &answers {
        assert_eq!(answer.status, ServingStatus::Serving, "{answer:?}");
    }
    assert_eq!(
        health::health(&target, None, TIMEOUT).await.expect("verb"),
        0
    );
    // A service the server does not have is not healthy (the health service says NOT_FOUND).
    assert_eq!(
        health::health(&target, Some("benchfarm.v1.NoSuchService"), TIMEOUT)
            .await
            .expect("verb"),
        1
    );
}

#[tokio::test]
async fn nothing_listening_is_unhealthy() {
    // A port that was free a moment ago: bound, read, released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let target = Target::insecure(&format!("http://127.0.0.1:{port}"));
    assert!(
        health::check(&target, &["".to_string()], TIMEOUT)
            .await
            .is_err()
    );
    assert_eq!(
        health::health(&target, None, TIMEOUT).await.expect("verb"),
        1
    );
}
