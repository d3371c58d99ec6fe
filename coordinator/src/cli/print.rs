//! Text the client verbs print: run lists, run details, worker tables, progress lines.
//!
//! Pure functions from wire messages to strings, so their shape is tested without a server.

use std::fmt::Write;

use benchfarm_proto::v1 as pb;

use crate::grpc::enums::{run_state_from_wire, run_state_name};
use crate::records::RunState;

/// One line per job that finished or failed, for `submit --wait`; `None` for other events.
pub fn progress_line(event: &pb::RunEvent) -> Option<String> {
    let status = event.status.as_ref()?;
    if event.job_id.is_empty() {
        return match run_state_from_wire(status.state) {
            Some(RunState::Running) => Some(format!(
                "run {}: {} jobs, {} done, {} queued, {} running",
                status.run_id,
                status.jobs_total,
                status.jobs_done,
                status.jobs_queued,
                status.jobs_running
            )),
            _ => Some(format!(
                "run {} {}",
                status.run_id,
                run_state_name(status.state)
            )),
        };
    }
    let verdict = match pb::Verdict::try_from(event.verdict) {
        Ok(pb::Verdict::Pass) => "pass",
        Ok(pb::Verdict::Partial) => "partial",
        Ok(pb::Verdict::Fail) => "fail",
        // A done job without a verdict is a throughput job: measured, not graded.
        _ if event.job_state() == pb::JobState::Done => "measured",
        _ => "",
    };
    match event.job_state() {
        pb::JobState::Done | pb::JobState::Failed => Some(format!(
            "[{:>4}/{}] {:<7} {} {} #{} on {}",
            status.jobs_done + status.jobs_failed,
            status.jobs_total,
            if event.job_state() == pb::JobState::Failed {
                "FAILED"
            } else {
                verdict
            },
            event.model,
            event.task_id,
            event.repetition,
            event.worker
        )),
        _ => None,
    }
}

/// `coordinator status RUN`.
pub fn run_detail(s: &pb::RunStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run      {}", s.run_id);
    let _ = writeln!(out, "state    {}", run_state_name(s.state));
    let _ = writeln!(out, "label    {}", s.label);
    let _ = writeln!(
        out,
        "suite    {} v{} × {} reps",
        s.suite_name, s.suite_version, s.repetitions
    );
    let _ = writeln!(out, "models   {}", s.models.join(", "));
    let _ = writeln!(
        out,
        "jobs     {} total: {} done, {} failed, {} running, {} queued, {} cancelled",
        s.jobs_total, s.jobs_done, s.jobs_failed, s.jobs_running, s.jobs_queued, s.jobs_cancelled
    );
    for line in &s.waiting {
        let _ = writeln!(out, "         {line}");
    }
    out
}

/// `coordinator status`: one line per run.
pub fn run_list(runs: &[pb::RunStatus]) -> String {
    if runs.is_empty() {
        return "no runs\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36}  {:<9}  {:>11}  {:<16}  label",
        "run", "state", "done/total", "suite"
    );
    for r in runs {
        let _ = writeln!(
            out,
            "{:<36}  {:<9}  {:>11}  {:<16}  {}",
            r.run_id,
            run_state_name(r.state),
            format!("{}/{}", r.jobs_done, r.jobs_total),
            format!("{} v{}", r.suite_name, r.suite_version),
            r.label
        );
        for line in &r.waiting {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

/// `coordinator workers`.
/// The RAM a worker may use: its total, capped by its cgroup limit (a container's `mem_limit`),
/// so a 1 GB board in a container on a 32 GB host shows 1 GB.
fn usable_ram_bytes(hw: &pb::Hardware) -> u64 {
    match hw.cgroup_memory_limit_bytes {
        0 => hw.ram_total_bytes,
        limit => limit.min(hw.ram_total_bytes),
    }
}

pub fn worker_table(workers: &[pb::WorkerStatus]) -> String {
    if workers.is_empty() {
        return "no workers have joined\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20}  {:<9}  {:>7}  {:>9}  {:>6}  {:<40}  models",
        "worker", "state", "threads", "ram GB", "done", "class"
    );
    for w in workers {
        let hw = w.hardware.clone().unwrap_or_default();
        let models: Vec<&str> = w.models.iter().map(|m| m.name.as_str()).collect();
        let state = match (w.connected, w.running_jobs.len()) {
            (false, _) => "gone".to_string(),
            (true, 0) => "idle".to_string(),
            (true, n) => format!("busy({n})"),
        };
        let _ = writeln!(
            out,
            "{:<20}  {:<9}  {:>7}  {:>9.1}  {:>6}  {:<40}  {}",
            w.name,
            state,
            w.threads,
            usable_ram_bytes(&hw) as f64 / 1e9,
            w.jobs_done,
            w.hardware_class,
            if models.is_empty() {
                "(scripted only)".to_string()
            } else {
                models.join(", ")
            }
        );
        if let Some(line) = features_line(w.engine.as_ref()) {
            let _ = writeln!(out, "{:<20}  {line}", "");
        }
    }
    out
}

/// "build: AVX AVX2 FMA · unused: AVX512" — the CPU features the worker's llama.cpp build uses, and
/// those its CPU has that the build leaves unused (the timings then describe the build, not the
/// machine); `None` for a worker that does not report them.
fn features_line(engine: Option<&pb::EngineInfo>) -> Option<String> {
    let engine = engine?;
    if engine.build_features.is_empty() {
        return None;
    }
    let unused: Vec<&str> = engine
        .cpu_features
        .iter()
        .filter(|f| !engine.build_features.contains(f))
        .map(String::as_str)
        .collect();
    let mut line = format!("build: {}", engine.build_features.join(" "));
    if !unused.is_empty() {
        line.push_str(&format!(" · portable build: {} unused", unused.join(" ")));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_line_names_its_build_features_and_the_unused_ones() {
        let engine = pb::EngineInfo {
            build_features: vec!["AVX".into(), "AVX2".into()],
            cpu_features: vec!["AVX".into(), "AVX2".into(), "AVX512".into()],
            ..pb::EngineInfo::default()
        };
        assert_eq!(
            features_line(Some(&engine)).as_deref(),
            Some("build: AVX AVX2 · portable build: AVX512 unused")
        );
        let native = pb::EngineInfo {
            cpu_features: vec!["AVX".into()],
            build_features: vec!["AVX".into()],
            ..pb::EngineInfo::default()
        };
        assert_eq!(features_line(Some(&native)).as_deref(), Some("build: AVX"));
        assert_eq!(features_line(Some(&pb::EngineInfo::default())), None);
    }

    fn status(state: pb::RunState) -> pb::RunStatus {
        pb::RunStatus {
            run_id: "r1".into(),
            state: state.into(),
            jobs_total: 60,
            jobs_done: 11,
            jobs_failed: 1,
            waiting: vec![
                "waiting: 3 jobs of m: no connected worker has the model (sha256 abc)".into(),
            ],
            ..pb::RunStatus::default()
        }
    }

    #[test]
    fn progress_lines_for_finished_jobs_only() {
        let mut e = pb::RunEvent {
            status: Some(status(pb::RunState::Running)),
            job_id: "r1-00001".into(),
            job_state: pb::JobState::Done.into(),
            model: "m".into(),
            task_id: "parse-json".into(),
            repetition: 2,
            worker: "w1".into(),
            verdict: pb::Verdict::Partial as i32,
        };
        assert_eq!(
            progress_line(&e).unwrap(),
            "[  12/60] partial m parse-json #2 on w1"
        );
        e.job_state = pb::JobState::Assigned.into();
        assert_eq!(progress_line(&e), None);
    }

    #[test]
    fn status_detail_lists_why_jobs_wait() {
        let text = run_detail(&status(pb::RunState::Running));
        assert!(text.contains("60 total: 11 done, 1 failed"), "{text}");
        assert!(text.contains("no connected worker has the model"), "{text}");
    }
}
