//! Client verbs over gRPC: submit (and wait), status, workers, report, cancel, regrade.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use benchfarm_proto::v1 as pb;

pub use super::connect::{FarmClient, Target, connect};
use super::print;
use crate::grpc::enums::run_state_from_wire;
use crate::records::RunState;

/// `coordinator submit PLAN [--wait]`: resolves the plan locally (nothing is sent if it is wrong),
/// submits it, prints the run id; with `wait`, follows progress and prints the table at the end.
/// Returns the process exit code.
pub async fn submit(target: &Target, plan_path: &Path, wait: bool, format: &str) -> Result<i32> {
    submit_with(target, plan_path, wait, format, false).await
}

/// [`submit`], with `strict`: the coordinator refuses the run when a model has no connected worker
/// that can run it under the plan's requirements (exit 1 with its reason).
pub async fn submit_with(
    target: &Target,
    plan_path: &Path,
    wait: bool,
    format: &str,
    strict: bool,
) -> Result<i32> {
    let mut plan = match crate::plan::load(plan_path) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(2);
        }
    };
    plan.request.strict = strict;
    // Checked before anything is submitted: a typo must not cost a run.
    let format = wire_format(format)?;
    let mut client = connect(target).await?;
    let response = client
        .submit_run(plan.request)
        .await
        .context("submit failed")?
        .into_inner();
    println!("{}", response.run_id);
    eprintln!("submitted run {} ({} jobs)", response.run_id, response.jobs);
    if !response.live_url.is_empty() {
        eprintln!(
            "live page: {}",
            reachable_url(&response.live_url, &target.url)
        );
    }
    if !wait {
        return Ok(0);
    }
    let state = watch(&mut client, &response.run_id).await?;
    let report = client
        .get_report(pb::GetReportRequest {
            run_id: response.run_id.clone(),
            format,
        })
        .await?
        .into_inner();
    print!("{}", report.body);
    if !report.body.ends_with('\n') {
        println!();
    }
    Ok(if state == Some(RunState::Finished) {
        0
    } else {
        1
    })
}

/// A `--format` name as the wire's enum (an unknown name is an error naming the flag).
fn wire_format(name: &str) -> Result<i32> {
    let format: benchfarm_report::Format = name
        .parse()
        .map_err(|e: benchfarm_report::UnknownFormat| anyhow::anyhow!("--format: {e}"))?;
    Ok(crate::grpc::enums::report_format_to_wire(format).into())
}

/// Follows a run until it is over, showing its progress ([`super::progress`]: bars per model on
/// a terminal, else one line per finished job on stderr). Returns the final state (`None`: one this
/// build does not know). Reconnects the
/// watch if the coordinator drops a lagging watcher.
pub async fn watch(client: &mut FarmClient, run_id: &str) -> Result<Option<RunState>> {
    let mut progress = super::progress::Progress::for_this_terminal();
    let state = watch_with(client, run_id, &mut progress).await;
    progress.finish();
    state
}

async fn watch_with(
    client: &mut FarmClient,
    run_id: &str,
    progress: &mut super::progress::Progress,
) -> Result<Option<RunState>> {
    loop {
        let mut stream = client
            .watch_run(pb::WatchRunRequest {
                run_id: run_id.into(),
            })
            .await?
            .into_inner();
        loop {
            match stream.message().await {
                Ok(Some(event)) => {
                    progress.event(&event);
                    if let Some(status) = &event.status {
                        let state = run_state_from_wire(status.state);
                        if state != Some(RunState::Running) {
                            return Ok(state);
                        }
                    }
                }
                Ok(None) => break,
                Err(status) if status.code() == tonic::Code::ResourceExhausted => break,
                Err(status) => bail!("watching run {run_id} failed: {}", status.message()),
            }
        }
        // The stream ended without a final state (dropped as a slow watcher): look and go again.
        let status = client
            .get_run(pb::GetRunRequest {
                run_id: run_id.into(),
            })
            .await?
            .into_inner();
        let state = run_state_from_wire(status.state);
        if state != Some(RunState::Running) {
            return Ok(state);
        }
    }
}

/// `coordinator status [RUN] [--wait]`: with `--wait`, follows the run until it is over first (see
/// [`watch`]) and exits 1 unless it finished.
pub async fn status(target: &Target, run: Option<&str>, wait: bool) -> Result<i32> {
    let mut client = connect(target).await?;
    let mut code = 0;
    if let (Some(run_id), true) = (run, wait) {
        let state = watch(&mut client, run_id).await?;
        code = i32::from(state != Some(RunState::Finished));
    }
    let mut out = std::io::stdout().lock();
    match run {
        Some(run_id) => {
            let s = client
                .get_run(pb::GetRunRequest {
                    run_id: run_id.into(),
                })
                .await?
                .into_inner();
            write!(out, "{}", print::run_detail(&s))?;
        }
        None => {
            let runs = client
                .list_runs(pb::ListRunsRequest {})
                .await?
                .into_inner()
                .runs;
            write!(out, "{}", print::run_list(&runs))?;
        }
    }
    Ok(code)
}

/// `coordinator workers [--drain ID] [--clear ID]`.
pub async fn workers(target: &Target, drain: Option<&str>, clear: Option<&str>) -> Result<i32> {
    let mut client = connect(target).await?;
    if let Some(worker) = drain {
        let w = client
            .drain_worker(pb::WorkerRef {
                worker: worker.into(),
            })
            .await?
            .into_inner();
        println!(
            "draining {} ({}): it finishes its running jobs and leaves",
            w.name, w.worker_id
        );
    }
    if let Some(worker) = clear {
        let w = client
            .clear_worker(pb::WorkerRef {
                worker: worker.into(),
            })
            .await?
            .into_inner();
        println!("cleared {} ({}): it takes jobs again", w.name, w.worker_id);
    }
    let workers = client
        .list_workers(pb::ListWorkersRequest {})
        .await?
        .into_inner()
        .workers;
    print!("{}", print::worker_table(&workers));
    Ok(0)
}

/// `coordinator report RUN --format F`.
pub async fn report(target: &Target, run_id: &str, format: &str) -> Result<i32> {
    let mut client = connect(target).await?;
    let r = client
        .get_report(pb::GetReportRequest {
            run_id: run_id.into(),
            format: wire_format(format)?,
        })
        .await?
        .into_inner();
    print!("{}", r.body);
    if !r.body.ends_with('\n') {
        println!();
    }
    Ok(0)
}

/// `coordinator cancel RUN`.
pub async fn cancel(target: &Target, run_id: &str) -> Result<i32> {
    let mut client = connect(target).await?;
    let r = client
        .cancel_run(pb::CancelRunRequest {
            run_id: run_id.into(),
        })
        .await?
        .into_inner();
    println!("cancelled {} jobs of run {run_id}", r.jobs_cancelled);
    Ok(0)
}

/// `coordinator regrade RUN [--suite FILE|NAME]`.
pub async fn regrade(target: &Target, run_id: &str, suite: Option<&str>) -> Result<i32> {
    let suite_toml = match suite {
        None => String::new(),
        Some(name_or_path) => match benchfarm_suite::resolve(name_or_path) {
            Ok((_, text)) => text,
            Err(err) => {
                eprintln!("error: {err}");
                return Ok(2);
            }
        },
    };
    let mut client = connect(target).await?;
    let r = client
        .regrade_run(pb::RegradeRunRequest {
            run_id: run_id.into(),
            suite_toml,
        })
        .await?
        .into_inner();
    println!(
        "regraded {} results with suite version {}: {} changed",
        r.results, r.suite_version, r.changed
    );
    for line in &r.changes {
        println!("  {line}");
    }
    Ok(0)
}

/// `live` (a URL the coordinator built from its bind address) with an unspecified host (0.0.0.0,
/// [::]) replaced by the host of `target` (the URL this client reached the coordinator at); any
/// other URL as it is.
pub fn reachable_url(live: &str, target: &str) -> String {
    let Ok(uri) = live.parse::<http::Uri>() else {
        return live.to_string();
    };
    let unspecified = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_unspecified());
    let target_host = target
        .parse::<http::Uri>()
        .ok()
        .and_then(|t| t.host().map(str::to_string));
    match (unspecified, target_host, uri.port_u16()) {
        (true, Some(host), Some(port)) => {
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            format!("http://{host}:{port}{path}")
        }
        _ => live.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::reachable_url;

    #[test]
    fn an_unspecified_host_becomes_the_one_the_client_reached() {
        assert_eq!(
            reachable_url("http://0.0.0.0:8080/runs/r1", "http://farm.lan:50051"),
            "http://farm.lan:8080/runs/r1"
        );
        assert_eq!(
            reachable_url("http://[::]:8080/runs/r1", "https://10.0.0.5:50051"),
            "http://10.0.0.5:8080/runs/r1"
        );
        assert_eq!(
            reachable_url("http://127.0.0.1:8080/runs/r1", "http://farm.lan:50051"),
            "http://127.0.0.1:8080/runs/r1"
        );
        assert_eq!(reachable_url("not a url", "http://x:1"), "not a url");
    }
}
