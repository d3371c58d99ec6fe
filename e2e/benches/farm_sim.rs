//! farm_sim: how well the coordinator schedules a heterogeneous farm.
//!
//! ```text
//! cargo build --workspace --bins && cargo bench -p benchfarm-e2e --bench farm_sim
//! ```
//!
//! A real coordinator and 8 real worker processes on 127.0.0.1 (the process harness of the e2e
//! tests), with `--speed-factor` 0.25× … 4×, run 3 scripted models × 20 tasks × 5 repetitions =
//! 300 jobs. Each model costs `load_ms` = 100 ms (at 1×, `FARM_SIM_LOAD_MS`) whenever a worker
//! switches to it; a job lasts 50–100 ms at 1× (answers of 20–40 tokens at 400 tokens/s) and
//! 1/speed of that on a worker.
//!
//! Measured, per iteration (a fresh farm each time):
//! - makespan: the run's submit-to-finish time, from the store (`created` → `finished`);
//! - lower bound: max(Σ work ÷ Σ speed, the longest job on the fastest worker), where a job's work
//!   is its synthetic seconds at 1×; no schedule can beat it (model loads are not in it);
//! - ratio = makespan ÷ lower bound (target ≤ 1.15);
//! - a load-aware bound (every worker that runs a job loads a model first; see
//!   [`load_aware_bound`]) and the makespan's ratio to it, which says how much of the gap loads
//!   alone explain;
//! - model loads: results that were cold, against 2 × the (model, worker) pairs that ran at least
//!   one job (each such pair must load once; the target allows one reload on average).
//!
//! The figures are printed as tables. It exits non-zero only on an error (a process that does not
//! start, a run that does not finish); a missed target is a measurement, not a failure.
//! `FARM_SIM_ITERATIONS` sets the number of iterations (default 3).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use benchfarm_e2e::process::*;

const SPEEDS: [f64; 8] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0];
const MODELS: usize = 3;
const TASKS: usize = 20;
const REPETITIONS: u32 = 5;
const TOKENS_PER_SECOND: f64 = 400.0;
/// Milliseconds a model takes to load at 1× (`FARM_SIM_LOAD_MS`, default 100): twice the shortest
/// job, so loading is dearer than a job everywhere and 1.6–3.2 jobs' worth on the 0.25× board.
fn load_ms() -> u64 {
    std::env::var("FARM_SIM_LOAD_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}
const RATIO_TARGET: f64 = 1.15;

/// Answer length of task i: 20, 25, 30, 35, 40 tokens (50–100 ms at 1×).
fn answer_tokens(i: usize) -> u32 {
    20 + 5 * (i % 5) as u32
}

/// The scripted engine's estimate: one token per 4 bytes, rounded up.
fn estimate_tokens(text: &str) -> u32 {
    text.len().div_ceil(4) as u32
}

/// Synthetic seconds of task i at 1×: prompt evaluation (10 tokens/ms, not scaled by the speed
/// factor, well under 1 ms here) plus generation.
fn work_1x(i: usize) -> f64 {
    let prompt = format!("Task {i}: say ok.");
    let prompt_ms = f64::from(estimate_tokens(&prompt)) / 10.0;
    let gen_ms = f64::from(answer_tokens(i)) / TOKENS_PER_SECOND * 1000.0;
    (prompt_ms + gen_ms) / 1000.0
}

/// A tighter bound that counts model loads: every worker that runs anything loads at least one
/// model first (`load_ms() / speed`), so the makespan T satisfies
/// Σ_w speed_w · max(0, T − load / speed_w) ≥ total work, and T ≥ (load + longest job) / fastest.
fn load_aware_bound(total_work: f64, longest: f64) -> f64 {
    let load = load_ms() as f64 / 1000.0;
    let capacity = |t: f64| -> f64 { SPEEDS.iter().map(|s| (s * t - load).max(0.0)).sum() };
    let (mut low, mut high) = (0.0, total_work + load * SPEEDS.len() as f64);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if capacity(mid) >= total_work {
            high = mid;
        } else {
            low = mid;
        }
    }
    let fastest = SPEEDS.iter().copied().fold(0.0, f64::max);
    high.max((load + longest) / fastest)
}

fn worker_name(speed: f64) -> String {
    format!("x{speed}")
}

/// One iteration's figures.
struct Figures {
    makespan: f64,
    observed: f64,
    lower_bound: f64,
    load_aware_bound: f64,
    cold: usize,
    pairs: usize,
    per_worker: Vec<WorkerFigures>,
}

struct WorkerFigures {
    name: String,
    speed: f64,
    jobs: usize,
    busy: f64,
    cold: usize,
    models: usize,
    /// Seconds from the run's creation to this worker's first assignment and its last result.
    first_assigned: f64,
    last_result: f64,
}

async fn iteration() -> Figures {
    // FARM_SIM_COORDINATOR_ARGS: extra `coordinator serve` flags, e.g. "--prefetch 1", to compare
    // scheduler settings side by side.
    let extra = std::env::var("FARM_SIM_COORDINATOR_ARGS")
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut farm = Farm::start(CoordinatorOpts {
        lease_ms: 10_000,
        extra,
        ..CoordinatorOpts::default()
    })
    .await;
    farm.write("suite.toml", &suite_toml(TASKS));
    let mut files = Vec::new();
    for m in 1..=MODELS {
        let mut model = Scripted::new(&format!("m{m}"), TASKS);
        model.tokens_per_second = TOKENS_PER_SECOND;
        model.load_ms = Some(load_ms());
        model.tokens = answer_tokens;
        let file = format!("m{m}.toml");
        farm.write(&file, &model.toml());
        files.push(file);
    }
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let request = farm.plan(&plan_text("suite.toml", REPETITIONS, &files, ""));
    let names: Vec<String> = SPEEDS.iter().map(|s| worker_name(*s)).collect();
    for (name, speed) in names.iter().zip(SPEEDS) {
        farm.start_worker(
            name,
            WorkerOpts::default().arg("--speed-factor", &speed.to_string()),
        );
    }
    let mut client = farm.client().await;
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    farm.wait_connected(&mut client, &name_refs).await;

    let started = Instant::now();
    let run = client.submit_run(request).await.unwrap().into_inner();
    let jobs_total = MODELS * TASKS * REPETITIONS as usize;
    assert_eq!(run.jobs as usize, jobs_total, "jobs in the run");
    let status = wait_run(&mut client, &run.run_id, Duration::from_secs(120)).await;
    let observed = started.elapsed().as_secs_f64();
    assert_eq!(
        (
            status.state(),
            status.jobs_done as usize,
            status.jobs_failed
        ),
        (benchfarm_proto::v1::RunState::Finished, jobs_total, 0),
        "the run did not finish cleanly: {status:?}"
    );

    let store = farm.stop_and_open_store();
    let record = store.run(&run.run_id).unwrap().unwrap();
    let makespan = (record.finished_unix_ms.unwrap() - record.created_unix_ms) as f64 / 1000.0;
    let (jobs, results) = assert_exactly_once(&store, &run.run_id, jobs_total);

    let task_index = |task: &str| -> usize { task[1..].parse().unwrap() };
    let total_work: f64 = jobs.iter().map(|j| work_1x(task_index(&j.task_id))).sum();
    let longest = jobs
        .iter()
        .map(|j| work_1x(task_index(&j.task_id)))
        .fold(0.0, f64::max);
    let total_speed: f64 = SPEEDS.iter().sum();
    let fastest = SPEEDS.iter().copied().fold(0.0, f64::max);
    let lower_bound = (total_work / total_speed).max(longest / fastest);
    let load_aware_bound = load_aware_bound(total_work, longest);

    let model_of: BTreeMap<&str, u32> = jobs
        .iter()
        .map(|j| (j.id.as_str(), j.model_index))
        .collect();
    let counted: Vec<_> = results.iter().filter(|r| r.counted).collect();
    let mut per_worker = Vec::new();
    let mut pairs = 0;
    for (name, speed) in names.iter().zip(SPEEDS) {
        let mine: Vec<_> = counted.iter().filter(|r| &r.worker_name == name).collect();
        let models: BTreeSet<u32> = mine.iter().map(|r| model_of[r.job_id.as_str()]).collect();
        pairs += models.len();
        let since_created = |ms: i64| (ms - record.created_unix_ms) as f64 / 1000.0;
        let worker_id = mine
            .first()
            .map(|r| r.worker_id.clone())
            .unwrap_or_default();
        let first_assigned = jobs
            .iter()
            .flat_map(|j| &j.attempts)
            .filter(|a| a.worker_id == worker_id)
            .map(|a| since_created(a.assigned_unix_ms))
            .fold(f64::INFINITY, f64::min);
        let last_result = mine
            .iter()
            .map(|r| since_created(r.received_unix_ms))
            .fold(0.0, f64::max);
        per_worker.push(WorkerFigures {
            name: name.clone(),
            speed,
            jobs: mine.len(),
            busy: mine.iter().map(|r| r.timings.wall_ms).sum::<f64>() / 1000.0,
            cold: mine.iter().filter(|r| r.timings.cold).count(),
            models: models.len(),
            first_assigned,
            last_result,
        });
    }
    Figures {
        makespan,
        observed,
        lower_bound,
        load_aware_bound,
        cold: counted.iter().filter(|r| r.timings.cold).count(),
        pairs,
        per_worker,
    }
}

fn main() {
    let iterations: usize = std::env::var("FARM_SIM_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bins = bin_dir();
    let age = std::fs::metadata(bins.join("worker"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or_else(|| "?".into(), |d| format!("{} s", d.as_secs()));
    println!(
        "farm_sim: {} workers ({}×), {MODELS} models (load {} ms at 1×) × {TASKS} tasks × \
         {REPETITIONS} reps = {} jobs of 50–100 ms at 1×; binaries from {} (worker built {age} ago)",
        SPEEDS.len(),
        SPEEDS.map(|s| s.to_string()).join("/"),
        load_ms(),
        MODELS * TASKS * REPETITIONS as usize,
        bins.display()
    );
    let mut all = Vec::new();
    for i in 1..=iterations {
        let figures = runtime.block_on(iteration());
        print_workers(i, &figures);
        all.push(figures);
    }
    print_summary(&all);
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

fn print_summary(all: &[Figures]) {
    println!();
    println!(
        "| iter | makespan s | client s | lower bound s | ratio (≤ {RATIO_TARGET}) | load-aware bound s | ratio to it | cold loads | (model, worker) pairs | loads (≤ 2 × pairs) |"
    );
    println!("|---:|---:|---:|---:|---|---:|---:|---:|---:|---|");
    for (i, f) in all.iter().enumerate() {
        let ratio = f.makespan / f.lower_bound;
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} {} | {:.3} | {:.3} | {} | {} | {} |",
            i + 1,
            f.makespan,
            f.observed,
            f.lower_bound,
            ratio,
            verdict(ratio <= RATIO_TARGET),
            f.load_aware_bound,
            f.makespan / f.load_aware_bound,
            f.cold,
            f.pairs,
            verdict(f.cold <= 2 * f.pairs),
        );
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\nmedian: makespan {:.3} s, ratio {:.3} (target ≤ {RATIO_TARGET}), ratio to the load-aware \
         bound {:.3}, cold loads {} (target ≤ 2 × pairs)",
        median(all.iter().map(|f| f.makespan).collect()),
        median(all.iter().map(|f| f.makespan / f.lower_bound).collect()),
        median(
            all.iter()
                .map(|f| f.makespan / f.load_aware_bound)
                .collect()
        ),
        median(all.iter().map(|f| f.cold as f64).collect()),
    );
}

fn print_workers(iteration: usize, f: &Figures) {
    println!("\niteration {iteration}: makespan {:.3} s", f.makespan);
    println!(
        "| worker | speed | jobs | busy s | busy/makespan | models | cold loads | first assigned s | last result s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for w in &f.per_worker {
        println!(
            "| {} | {} | {} | {:.3} | {:.0}% | {} | {} | {:.3} | {:.3} |",
            w.name,
            w.speed,
            w.jobs,
            w.busy,
            100.0 * w.busy / f.makespan,
            w.models,
            w.cold,
            w.first_assigned,
            w.last_result
        );
    }
}
