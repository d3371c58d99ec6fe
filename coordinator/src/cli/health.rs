//! `coordinator health`: asks a coordinator's standard `grpc.health.v1` service whether it serves,
//! for container health checks and scripts (no token: health stays open, docs/security.md).
//!
//! Both benchfarm services are checked by default, because a coordinator whose scheduler died
//! turns exactly those NOT_SERVING (the server's overall `""` entry stays SERVING until it stops).
//! Exit 0 when every checked service is SERVING, 1 otherwise (including "cannot reach it").

use std::time::Duration;

use anyhow::{Context, Result};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::connect::{Target, channel};

/// The services `coordinator health` checks when none is named.
pub const SERVICES: [&str; 2] = ["benchfarm.v1.FarmService", "benchfarm.v1.WorkerService"];

/// One service's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    pub service: String,
    pub status: ServingStatus,
}

/// Asks `target` for each of `services`' status, giving up after `timeout` in all.
pub async fn check(
    target: &Target,
    services: &[String],
    timeout: Duration,
) -> Result<Vec<ServiceHealth>> {
    tokio::time::timeout(timeout, check_inner(target, services))
        .await
        .with_context(|| {
            format!(
                "no health answer from {} within {} ms",
                target.url,
                timeout.as_millis()
            )
        })?
}

async fn check_inner(target: &Target, services: &[String]) -> Result<Vec<ServiceHealth>> {
    // The health service needs no token: the channel's interceptor is not used.
    let (channel, _) = channel(target).await?;
    let mut client = HealthClient::new(channel);
    let mut answers = Vec::with_capacity(services.len());
    for service in services {
        let response = client
            .check(HealthCheckRequest {
                service: service.clone(),
            })
            .await
            .with_context(|| format!("health check of {service:?}"))?
            .into_inner();
        answers.push(ServiceHealth {
            service: service.clone(),
            // An unknown number is treated as not serving, never as healthy.
            status: ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown),
        });
    }
    Ok(answers)
}

/// The verb: prints one line per service and returns the exit code (0: all SERVING).
pub async fn health(target: &Target, service: Option<&str>, timeout: Duration) -> Result<i32> {
    let services: Vec<String> = match service {
        Some(s) => vec![s.to_string()],
        None => SERVICES.iter().map(|s| s.to_string()).collect(),
    };
    let answers = match check(target, &services, timeout).await {
        Ok(answers) => answers,
        Err(e) => {
            println!("{}: unhealthy: {e:#}", target.url);
            return Ok(1);
        }
    };
    let mut healthy = true;
    for answer in &answers {
        println!(
            "{} {}: {}",
            target.url,
            answer.service,
            answer.status.as_str_name()
        );
        healthy &= answer.status == ServingStatus::Serving;
    }
    Ok(if healthy { 0 } else { 1 })
}
