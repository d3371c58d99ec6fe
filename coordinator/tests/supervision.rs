//! Finding 5 of issue 9, end to end: a coordinator whose scheduler dies turns its gRPC health to
//! NOT_SERVING and its `wait` reports the death (so `serve` exits non-zero), instead of serving a
//! farm that no longer schedules. The scheduler is killed for real: its clock panics on the next
//! lease tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use benchfarm_coordinator::clock::{Clock, SystemClock};
use benchfarm_coordinator::grpc::server::{self, ServeConfig, ServeError};
use benchfarm_coordinator::records::UnixMs;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Default)]
struct BreakingClock {
    broken: AtomicBool,
    real: SystemClock,
}

impl Clock for BreakingClock {
    fn now_ms(&self) -> UnixMs {
        assert!(!self.broken.load(Ordering::SeqCst), "the clock broke");
        self.real.now_ms()
    }
}

async fn health(url: &str) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
}

async fn status(url: &str, service: &str) -> ServingStatus {
    let mut health = health(url).await;
    let response = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    ServingStatus::try_from(response.status).expect("a known status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_scheduler_turns_health_not_serving_and_fails_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(BreakingClock::default());
    let mut running = server::start_with_clock(
        // Tokens are on (the default): health stays open without one.
        ServeConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            dir.path().join("data"),
        ),
        clock.clone(),
    )
    .await
    .expect("server starts");
    let url = format!("http://{}", running.addr);
    assert_eq!(
        status(&url, "benchfarm.v1.FarmService").await,
        ServingStatus::Serving
    );
    // Watch health while the server is still up: the flip happens before the server stops.
    let watcher = {
        let url = url.clone();
        tokio::spawn(async move {
            let mut health = health(&url).await;
            let mut stream = health
                .watch(tonic_health::pb::HealthCheckRequest {
                    service: "benchfarm.v1.FarmService".into(),
                })
                .await
                .expect("watch")
                .into_inner();
            while let Ok(Some(update)) = stream.message().await {
                if update.status == ServingStatus::NotServing as i32 {
                    return true;
                }
            }
            false
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    clock.broken.store(true, Ordering::SeqCst);
    let ended = tokio::time::timeout(Duration::from_secs(20), running.wait())
        .await
        .expect("the server stops by itself");
    match ended {
        Err(ServeError::SchedulerDied(why)) => assert!(why.contains("the clock broke"), "{why}"),
        other => panic!("expected SchedulerDied, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("the watch ends")
            .expect("watcher task"),
        "health never said NOT_SERVING"
    );
}
