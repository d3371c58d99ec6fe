//! Conversions between wire types (`benchfarm-proto`) and the coordinator's domain types.
//!
//! Wire input is untrusted: a missing required field is a `Status::invalid_argument` naming the
//! field, never a panic or a silently defaulted record.

use benchfarm_proto::v1 as pb;
use benchfarm_suite::{CheckOutcome, Grade, Verdict};
use tonic::Status;

use crate::hardware_class::hardware_class;
use crate::records::{
    Hardware, ModelKind, Price, RemoteCall, RemoteSpec, RunModel, ThroughputMeasurement, Timings,
    WorkerModel, WorkerRecord,
};
use crate::scheduler::{IncomingResult, Joining, RunProgress, WorkerSummary};

pub fn verdict_to_wire(v: Verdict) -> pb::Verdict {
    match v {
        Verdict::Pass => pb::Verdict::Pass,
        Verdict::Partial => pb::Verdict::Partial,
        Verdict::Fail => pb::Verdict::Fail,
    }
}

pub fn verdict_from_wire(v: i32) -> Result<Verdict, Status> {
    match pb::Verdict::try_from(v) {
        Ok(pb::Verdict::Pass) => Ok(Verdict::Pass),
        Ok(pb::Verdict::Partial) => Ok(Verdict::Partial),
        Ok(pb::Verdict::Fail) => Ok(Verdict::Fail),
        _ => Err(Status::invalid_argument(format!(
            "result.grade.verdict: unknown value {v}"
        ))),
    }
}

pub fn grade_from_wire(g: pb::Grade) -> Result<Grade, Status> {
    Ok(Grade {
        verdict: verdict_from_wire(g.verdict)?,
        score: g.score,
        extracted: g.extracted,
        checks: g
            .checks
            .into_iter()
            .map(|c| CheckOutcome {
                group: c.group,
                check: c.check,
                held: c.held,
            })
            .collect(),
    })
}

pub fn model_ref(model: &RunModel) -> pb::ModelRef {
    pb::ModelRef {
        name: model.name.clone(),
        sha256: model.sha256.clone(),
        size_bytes: model.size_bytes,
        source: Some(match &model.kind {
            ModelKind::Gguf { file_name } => pb::model_ref::Source::Gguf(pb::GgufModel {
                file_name: file_name.clone(),
            }),
            ModelKind::Scripted { toml } => pb::model_ref::Source::ScriptedToml(toml.clone()),
            ModelKind::Remote(r) => pb::model_ref::Source::Remote(pb::RemoteModel {
                url: r.url.clone(),
                model: r.model.clone(),
                api_key_env: r.api_key_env.clone().unwrap_or_default(),
                price_per_mtok: r.price_per_mtok.map(|p| pb::Price {
                    input: p.input,
                    output: p.output,
                }),
                max_concurrency: r.max_concurrency,
                timeout_ms: r.timeout_ms,
                retries: r.retries,
            }),
        }),
        context_length: 0,
    }
}

/// A worker's cache report from the wire; implausible figures are capped, not trusted.
pub fn cache_from_wire(c: pb::CacheInfo) -> Result<crate::scheduler::CacheReport, Status> {
    if c.models.len() > MAX_CACHE_MODELS {
        return Err(Status::invalid_argument(format!(
            "cache.models: {} models, over the limit of {MAX_CACHE_MODELS}",
            c.models.len()
        )));
    }
    let rate = c.transfer_bytes_per_second;
    Ok(crate::scheduler::CacheReport {
        capacity_bytes: c.capacity_bytes.min(MAX_PLAUSIBLE_CACHE_BYTES),
        pinned_bytes: c.pinned_bytes,
        models: c.models.into_iter().map(worker_model).collect(),
        // A claim faster than any link is an estimate's worth, not a measurement.
        transfer_bytes_per_second: if rate.is_finite() && rate > 0.0 {
            rate.min(MAX_PLAUSIBLE_RATE)
        } else {
            0.0
        },
    })
}

/// The most models one cache report may list.
pub const MAX_CACHE_MODELS: usize = 10_000;
/// More disk than any worker's cache has (1 PiB).
const MAX_PLAUSIBLE_CACHE_BYTES: u64 = 1 << 50;
/// Faster than any link a farm has (100 GB/s).
const MAX_PLAUSIBLE_RATE: f64 = 100e9;

fn worker_model(m: pb::ModelInfo) -> WorkerModel {
    WorkerModel {
        sha256: m.sha256.to_ascii_lowercase(),
        name: m.name,
        size_bytes: m.size_bytes,
        file_name: m.file_name,
    }
}

/// A cache report on the wire (`coordinator workers`).
pub fn cache_to_wire(c: &crate::scheduler::CacheReport) -> pb::CacheInfo {
    pb::CacheInfo {
        capacity_bytes: c.capacity_bytes,
        pinned_bytes: c.pinned_bytes,
        models: c
            .models
            .iter()
            .map(|m| pb::ModelInfo {
                sha256: m.sha256.clone(),
                name: m.name.clone(),
                size_bytes: m.size_bytes,
                file_name: m.file_name.clone(),
                ..pb::ModelInfo::default()
            })
            .collect(),
        transfer_bytes_per_second: c.transfer_bytes_per_second,
    }
}

/// A remote model from the wire, checked as the plan checks it (the client may not be ours).
fn remote_spec(r: pb::RemoteModel, field: impl Fn(&str) -> String) -> Result<RemoteSpec, Status> {
    let bad = |f: &str, m: &str| Err(Status::invalid_argument(format!("{}: {m}", field(f))));
    if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
        return bad("remote.url", "not an http(s) URL");
    }
    if crate::hardware_class::endpoint_host(&r.url).is_empty() || r.url.contains('@') {
        return bad("remote.url", "no host, or credentials in the URL");
    }
    if r.model.trim().is_empty() {
        return bad("remote.model", "empty");
    }
    if !r.api_key_env.is_empty() && !benchfarm_modelfile::is_key_env_name(&r.api_key_env) {
        return bad(
            "remote.api_key_env",
            "not an environment variable name ending in _KEY or _TOKEN",
        );
    }
    if let Some(p) = &r.price_per_mtok
        && !(p.input.is_finite() && p.output.is_finite() && p.input >= 0.0 && p.output >= 0.0)
    {
        return bad("remote.price_per_mtok", "not a price");
    }
    if r.max_concurrency == 0 || r.timeout_ms == 0 {
        return bad(
            "remote.max_concurrency / remote.timeout_ms",
            "must be at least 1",
        );
    }
    Ok(RemoteSpec {
        url: r.url,
        model: r.model,
        api_key_env: (!r.api_key_env.is_empty()).then_some(r.api_key_env),
        price_per_mtok: r.price_per_mtok.map(|p| Price {
            input: p.input,
            output: p.output,
        }),
        max_concurrency: r.max_concurrency,
        timeout_ms: r.timeout_ms,
        retries: r.retries.min(10),
    })
}

pub fn run_model(m: pb::ModelRef, index: usize) -> Result<RunModel, Status> {
    let field = |f: &str| format!("models[{index}].{f}");
    if m.name.trim().is_empty() {
        return Err(Status::invalid_argument(format!(
            "{}: empty",
            field("name")
        )));
    }
    if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Status::invalid_argument(format!(
            "{}: not a sha256 hex digest",
            field("sha256")
        )));
    }
    let kind = match m.source {
        Some(pb::model_ref::Source::Gguf(g)) => ModelKind::Gguf {
            file_name: g.file_name,
        },
        Some(pb::model_ref::Source::ScriptedToml(toml)) => ModelKind::Scripted { toml },
        // Resolved by `submit::resolve_registered` before a run is built; here it is a request
        // that skipped that step.
        Some(pb::model_ref::Source::Registered(_)) => {
            return Err(Status::invalid_argument(format!(
                "{}: a registered model must be resolved by the coordinator first",
                field("registered")
            )));
        }
        Some(pb::model_ref::Source::Remote(r)) => ModelKind::Remote(remote_spec(r, field)?),
        None => {
            return Err(Status::invalid_argument(format!(
                "{}: missing",
                field("source")
            )));
        }
    };
    Ok(RunModel {
        name: m.name,
        sha256: m.sha256.to_ascii_lowercase(),
        size_bytes: m.size_bytes,
        kind,
    })
}

fn hardware_from_wire(h: pb::Hardware) -> Hardware {
    Hardware {
        cpu_model: h.cpu_model,
        arch: h.arch,
        physical_cores: h.physical_cores,
        logical_cores: h.logical_cores,
        simd: h.simd,
        ram_total_bytes: h.ram_total_bytes,
        ram_available_bytes: h.ram_available_bytes,
        os: h.os,
        kernel: h.kernel,
        // The wire has no optional scalars: "" and 0 say none.
        board: benchfarm_domain::none_if_empty(h.board),
        cgroup_cpu_limit: benchfarm_domain::none_if_zero_cpus(h.cgroup_cpu_limit),
        cgroup_memory_limit_bytes: benchfarm_domain::none_if_zero_bytes(
            h.cgroup_memory_limit_bytes,
        ),
    }
}

fn hardware_to_wire(h: &Hardware) -> pb::Hardware {
    pb::Hardware {
        cpu_model: h.cpu_model.clone(),
        arch: h.arch.clone(),
        physical_cores: h.physical_cores,
        logical_cores: h.logical_cores,
        simd: h.simd.clone(),
        ram_total_bytes: h.ram_total_bytes,
        ram_available_bytes: h.ram_available_bytes,
        os: h.os.clone(),
        kernel: h.kernel.clone(),
        board: h.board.clone().unwrap_or_default(),
        cgroup_cpu_limit: h.cgroup_cpu_limit.unwrap_or(0.0),
        cgroup_memory_limit_bytes: h.cgroup_memory_limit_bytes.unwrap_or(0),
    }
}

/// A worker's hello as the scheduler's [`Joining`].
/// The most job slots a worker may claim.
pub const MAX_SLOTS: u32 = 1024;
/// The most job keys one hello or heartbeat may list.
pub const MAX_KEYS_PER_MESSAGE: usize = 100_000;

/// (job id, attempt) of wire job keys.
pub fn keys(keys: Vec<pb::JobKey>) -> Vec<(String, u32)> {
    keys.into_iter().map(|k| (k.job_id, k.attempt)).collect()
}

/// Labels one worker may declare, and the longest key or value.
pub const MAX_HELLO_LABELS: usize = 32;
pub const MAX_HELLO_LABEL_BYTES: usize = 128;
/// More memory than any machine a farm benchmarks small models on has (64 TiB).
const MAX_PLAUSIBLE_RAM_BYTES: u64 = 64 << 40;
/// More logical cores than any such machine has.
const MAX_PLAUSIBLE_CORES: u32 = 4096;

/// A worker's labels within the limits, or an error naming `hello.labels`.
fn check_labels(labels: &std::collections::HashMap<String, String>) -> Result<(), Status> {
    if labels.len() > MAX_HELLO_LABELS {
        return Err(Status::invalid_argument(format!(
            "hello.labels: {} labels, over the limit of {MAX_HELLO_LABELS}",
            labels.len()
        )));
    }
    if let Some((k, _)) = labels
        .iter()
        .find(|(k, v)| k.len() > MAX_HELLO_LABEL_BYTES || v.len() > MAX_HELLO_LABEL_BYTES)
    {
        return Err(Status::invalid_argument(format!(
            "hello.labels: label {:?}: key or value over {MAX_HELLO_LABEL_BYTES} bytes",
            k.chars().take(32).collect::<String>()
        )));
    }
    Ok(())
}

/// Corrects hardware claims no machine can make, so placement (which trusts RAM and cores) is
/// not handed the queue by a worker that says it has a petabyte; returns what it corrected.
pub fn implausible_hardware(hw: &mut crate::records::Hardware) -> Vec<String> {
    let mut flags = Vec::new();
    if hw.ram_total_bytes > MAX_PLAUSIBLE_RAM_BYTES {
        flags.push(format!(
            "ram_total_bytes {} over 64 TiB",
            hw.ram_total_bytes
        ));
        hw.ram_total_bytes = MAX_PLAUSIBLE_RAM_BYTES;
    }
    if hw.ram_available_bytes > hw.ram_total_bytes {
        flags.push(format!(
            "ram_available_bytes {} over ram_total_bytes {}",
            hw.ram_available_bytes, hw.ram_total_bytes
        ));
        hw.ram_available_bytes = hw.ram_total_bytes;
    }
    if hw
        .cgroup_memory_limit_bytes
        .is_some_and(|l| l > hw.ram_total_bytes)
    {
        // A cgroup without a memory limit reports a huge number: the machine's RAM is the limit.
        hw.cgroup_memory_limit_bytes = None;
    }
    if hw.logical_cores > MAX_PLAUSIBLE_CORES {
        flags.push(format!(
            "logical_cores {} over {MAX_PLAUSIBLE_CORES}",
            hw.logical_cores
        ));
        hw.logical_cores = MAX_PLAUSIBLE_CORES;
    }
    if hw.physical_cores > hw.logical_cores {
        flags.push(format!(
            "physical_cores {} over logical_cores {}",
            hw.physical_cores, hw.logical_cores
        ));
        hw.physical_cores = hw.logical_cores;
    }
    flags
}

pub fn joining(hello: pb::Hello) -> Result<Joining, Status> {
    if hello.worker_id.trim().is_empty() {
        return Err(Status::invalid_argument("hello.worker_id: empty"));
    }
    let mut hardware = hardware_from_wire(hello.hardware.unwrap_or_default());
    for claim in implausible_hardware(&mut hardware) {
        tracing::warn!(worker = %hello.worker_id, claim = %claim, "worker hardware claim corrected");
    }
    let engine = hello.engine.unwrap_or_default();
    check_labels(&hello.labels)?;
    let labels: std::collections::BTreeMap<_, _> = hello.labels.into_iter().collect();
    let class = hardware_class(&hardware, &labels, &engine.backends);
    if hello.running.len() + hello.unacknowledged.len() > MAX_KEYS_PER_MESSAGE {
        return Err(Status::invalid_argument(format!(
            "hello.running + hello.unacknowledged: more than {MAX_KEYS_PER_MESSAGE} job keys"
        )));
    }
    let cache = cache_from_wire(hello.cache.unwrap_or_default())?;
    Ok(Joining {
        cache,
        running: keys(hello.running),
        unacknowledged: keys(hello.unacknowledged),
        record: WorkerRecord {
            name: if hello.name.is_empty() {
                hello.worker_id.clone()
            } else {
                hello.name
            },
            id: hello.worker_id,
            hardware,
            labels,
            models: hello.models.into_iter().map(worker_model).collect(),
            engine: engine.name,
            llama_cpp_build: engine.llama_cpp_build,
            backends: engine.backends,
            system_info: engine.system_info,
            build_features: engine.build_features,
            cpu_features: engine.cpu_features,
            // A worker claiming more slots than any machine has is capped, not trusted: the
            // scheduler adds its prefetch to this number.
            slots: hello.slots.clamp(1, MAX_SLOTS),
            threads: hello.threads,
            hardware_class: class,
            last_seen_unix_ms: 0,
            jobs_done: 0,
            jobs_failed: 0,
            remotes: hello
                .remotes
                .into_iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .take(MAX_REMOTES)
                .collect(),
            // Names only: anything that is not an API-key variable name is dropped, so a confused
            // worker that sent a value cannot get it stored.
            remote_key_envs: hello
                .remote_key_envs
                .into_iter()
                .filter(|v| benchfarm_modelfile::is_key_env_name(v))
                .take(MAX_REMOTES)
                .collect(),
        },
    })
}

/// The most remote declarations (and key variable names) one hello may carry.
pub const MAX_REMOTES: usize = 256;

pub fn incoming_result(r: pb::JobResult) -> Result<IncomingResult, Status> {
    let key = r
        .key
        .ok_or_else(|| Status::invalid_argument("result.key: missing"))?;
    // A throughput job's result is a measurement, not an answer: it has no grade.
    let grade = match (r.grade, &r.throughput) {
        (Some(g), _) => grade_from_wire(g)?,
        (None, Some(_)) => benchfarm_suite::Grade {
            verdict: benchfarm_suite::Verdict::Fail,
            score: 0.0,
            extracted: String::new(),
            checks: Vec::new(),
        },
        (None, None) => return Err(Status::invalid_argument("result.grade: missing")),
    };
    let t = r.timings.unwrap_or_default();
    Ok(IncomingResult {
        job_id: key.job_id,
        attempt: key.attempt,
        answer: r.answer,
        grade,
        coordinator_grade: None,
        answer_truncated_from: None,
        timings: Timings {
            load_ms: t.load_ms,
            cold: t.cold,
            prompt_tokens: t.prompt_tokens,
            prompt_ms: t.prompt_ms,
            ttft_ms: t.ttft_ms,
            gen_tokens: t.gen_tokens,
            gen_ms: t.gen_ms,
            wall_ms: t.wall_ms,
            decode_tokens: t.decode_tokens,
            decode_ms: t.decode_ms,
        },
        threads: r.threads,
        chat_template: r.chat_template,
        stop: r.stop,
        build_features: r.build_features,
        cpu_features: r.cpu_features,
        truncated: r.truncated,
        throughput: r.throughput.map(|m| ThroughputMeasurement {
            samples_ns: m.samples_ns,
            model_type: m.model_type,
            model_n_params: m.model_n_params,
            backends: m.backends,
        }),
        remote: r.remote.map(|c| RemoteCall {
            endpoint: c.endpoint,
            http_status: c.http_status,
            retries: c.retries,
            retry_reasons: c.retry_reasons,
            tokens_estimated: c.tokens_estimated,
            reasoning: c.reasoning,
            reasoning_tokens: c.reasoning_tokens,
        }),
    })
}

impl From<RunProgress> for pb::RunStatus {
    fn from(p: RunProgress) -> Self {
        pb::RunStatus {
            run_id: p.run_id,
            state: pb::RunState::from(p.state).into(),
            suite_name: p.suite_name,
            suite_version: p.suite_version,
            repetitions: p.repetitions,
            jobs_total: p.total,
            jobs_queued: p.queued,
            jobs_running: p.running,
            jobs_done: p.done,
            jobs_failed: p.failed,
            waiting: p.waiting,
            label: p.label,
            created_unix_ms: p.created_unix_ms,
            model_counts: p
                .models
                .iter()
                .zip(&p.per_model)
                .map(|(model, c)| pb::ModelCounts {
                    model: model.clone(),
                    total: c.queued + c.running + c.done + c.failed + c.cancelled,
                    done: c.done,
                    failed: c.failed,
                    running: c.running,
                })
                .collect(),
            models: p.models,
            jobs_cancelled: p.cancelled,
        }
    }
}

impl From<WorkerSummary> for pb::WorkerStatus {
    fn from(w: WorkerSummary) -> Self {
        let r = w.record;
        pb::WorkerStatus {
            worker_id: r.id,
            name: r.name,
            connected: w.connected,
            hardware: Some(hardware_to_wire(&r.hardware)),
            labels: r.labels.into_iter().collect(),
            models: r
                .models
                .into_iter()
                .map(|m| pb::ModelInfo {
                    sha256: m.sha256,
                    name: m.name,
                    size_bytes: m.size_bytes,
                    file_name: m.file_name,
                    ..pb::ModelInfo::default()
                })
                .collect(),
            engine: Some(pb::EngineInfo {
                name: r.engine,
                llama_cpp_build: r.llama_cpp_build,
                backends: r.backends,
                system_info: r.system_info,
                build_features: r.build_features,
                cpu_features: r.cpu_features,
            }),
            slots: r.slots,
            threads: r.threads,
            running_jobs: w.running,
            jobs_done: r.jobs_done,
            jobs_failed: r.jobs_failed,
            last_seen_unix_ms: r.last_seen_unix_ms,
            hardware_class: r.hardware_class,
            draining: w.draining,
            quarantined: w.quarantined.unwrap_or_default(),
            tokens_per_second: w.speed.unwrap_or(0.0),
            cache: Some(cache_to_wire(&w.cache)),
            remotes: r.remotes,
            remote_key_envs: r.remote_key_envs,
        }
    }
}

/// Maps scheduler errors to the status a client should see.
impl From<crate::scheduler::SchedulerError> for Status {
    fn from(err: crate::scheduler::SchedulerError) -> Self {
        use crate::scheduler::SchedulerError as E;
        match err {
            E::NoSuchRun(_) | E::NoSuchWorker(_) => Status::not_found(err.to_string()),
            E::Refused(_) => Status::failed_precondition(err.to_string()),
            E::Invalid(_) => Status::invalid_argument(err.to_string()),
            E::Store(_) => Status::internal(err.to_string()),
            E::Stopped => Status::unavailable(err.to_string()),
        }
    }
}

/// The plan's requirements from the wire; `field` errors name `require.*`.
pub fn requirements(r: Option<pb::Requirements>) -> Result<crate::records::Requirements, Status> {
    let r = r.unwrap_or_default();
    if !r.min_ram_gb.is_finite() || r.min_ram_gb < 0.0 {
        return Err(Status::invalid_argument(format!(
            "require.min_ram_gb: {} is not a size",
            r.min_ram_gb
        )));
    }
    Ok(crate::records::Requirements {
        labels: r.labels.into_iter().collect(),
        min_ram_bytes: (r.min_ram_gb * 1e9) as u64,
        arch: (!r.arch.is_empty()).then_some(r.arch),
    })
}

#[cfg(test)]
mod hello_tests {
    use super::*;

    #[test]
    fn impossible_hardware_is_corrected_and_said() {
        let mut hw = crate::records::Hardware {
            ram_total_bytes: u64::MAX,
            ram_available_bytes: u64::MAX,
            logical_cores: 1_000_000,
            physical_cores: 2_000_000,
            ..Default::default()
        };
        let flags = implausible_hardware(&mut hw);
        assert_eq!(flags.len(), 4, "{flags:?}");
        assert_eq!(hw.ram_total_bytes, MAX_PLAUSIBLE_RAM_BYTES);
        assert!(hw.ram_available_bytes <= hw.ram_total_bytes);
        assert_eq!(hw.physical_cores, hw.logical_cores);
        let mut fine = crate::records::Hardware {
            ram_total_bytes: 8 << 30,
            ram_available_bytes: 4 << 30,
            logical_cores: 8,
            physical_cores: 4,
            ..Default::default()
        };
        assert!(implausible_hardware(&mut fine).is_empty());
    }

    #[test]
    fn too_many_or_too_long_labels_name_the_field() {
        let many: std::collections::HashMap<String, String> =
            (0..40).map(|i| (format!("k{i}"), "v".into())).collect();
        let err = check_labels(&many).unwrap_err();
        assert!(
            err.message().starts_with("hello.labels:"),
            "{}",
            err.message()
        );
        let long: std::collections::HashMap<String, String> =
            [("k".to_string(), "v".repeat(500))].into();
        assert!(check_labels(&long).is_err());
        let ok: std::collections::HashMap<String, String> =
            [("class".to_string(), "board".to_string())].into();
        assert!(check_labels(&ok).is_ok());
    }
}
