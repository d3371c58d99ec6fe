//! placement_sim: the placement function alone, on a simulated heterogeneous farm.
//!
//! ```text
//! cargo bench -p benchfarm-coordinator --bench placement_sim
//! ```
//!
//! `e2e/benches/farm_sim.rs` measures the whole farm (real processes, gRPC, sled, engine children);
//! this bench measures only the decisions of [`place`], in a discrete-event simulation of the same
//! farm, so a change to placement can be judged in milliseconds and without the noise of a
//! 2-core machine running nine processes. The same farm: 8 workers at 0.25× … 4× (400 tokens/s at
//! 1×), 3 models that cost 100 ms ÷ speed to load (`PLACEMENT_SIM_LOAD_MS`), 20 tasks of 20–40
//! tokens × 5 repetitions.
//!
//! The simulation feeds [`place`] what the scheduler does, with the scheduler's own [`estimates`]:
//! a worker's speed and load time are learned from its finished jobs (the median measured worker
//! stands in for one without history), a model's expected answer length from its finished jobs,
//! and `busy_for` from the jobs a worker holds. Placement runs after every result. Each result
//! reaches the coordinator `ROUND_TRIP / 2` after the job ends and each assignment reaches the
//! worker `ROUND_TRIP / 2` after placement, so prefetch has something to hide.
//!
//! Worker ids are random in a real farm and break placement's ties, so the simulation runs with
//! `PLACEMENT_SIM_SEEDS` (default 50) id orders and prints the median and worst ratio.
//! `PLACEMENT_SIM_PREFETCH` sets the prefetch depth (default 1, as `coordinator serve`),
//! `PLACEMENT_SIM_KNOWN=1` lets the coordinator know every worker's speed from the start, and
//! `PLACEMENT_SIM_VERBOSE=1` prints every seed's per-worker figures.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use benchfarm_coordinator::records::Requirements;
use benchfarm_coordinator::scheduler::estimates;
use benchfarm_coordinator::scheduler::placement::{PendingJob, WorkerView, place};

const SPEEDS: [f64; 8] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0];
const MODELS: usize = 3;
const TASKS: usize = 20;
const REPETITIONS: usize = 5;
const TOKENS_PER_SECOND: f64 = 400.0;
/// Result to coordinator plus assignment back to the worker, as measured on 127.0.0.1.
const ROUND_TRIP: f64 = 0.002;
/// The suite's default token limit (no task here sets one).
const MAX_TOKENS: u32 = 256;

/// Seconds a model takes to load at 1× (`PLACEMENT_SIM_LOAD_MS`, default 100 as in farm_sim).
fn load_seconds() -> f64 {
    std::env::var("PLACEMENT_SIM_LOAD_MS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(100.0)
        / 1000.0
}

fn answer_tokens(task: usize) -> f64 {
    (20 + 5 * (task % 5)) as f64
}

#[derive(Clone)]
struct Job {
    model: usize,
    task: usize,
}

struct SimWorker {
    id: String,
    factor: f64,
    /// Jobs it holds, in arrival order, with the time each reaches it.
    held: VecDeque<(usize, f64)>,
    /// The job running, with its start, end and load seconds (0 when warm).
    running: Option<(usize, f64, f64, f64)>,
    /// Actually loaded in the engine.
    engine_model: Option<usize>,
    /// What the coordinator believes is loaded (the model it last assigned).
    view_model: Option<usize>,
    speed: Option<f64>,
    load: Option<f64>,
    /// The jobs the coordinator sees it holding (assigned, running or waiting, until the result).
    holds: BTreeSet<usize>,
    jobs: usize,
    loads: usize,
    busy: f64,
    last_end: f64,
}

struct Outcome {
    makespan: f64,
    loads: usize,
    pairs: usize,
    per_worker: Vec<(f64, usize, usize, f64, f64)>,
}

/// A small deterministic generator for worker ids.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn simulate(seed: u64, prefetch: u32, known: bool) -> Outcome {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let jobs: Vec<Job> = (0..MODELS)
        .flat_map(|model| {
            (0..TASKS).flat_map(move |task| (0..REPETITIONS).map(move |_| Job { model, task }))
        })
        .collect();
    let mut workers: Vec<SimWorker> = SPEEDS
        .iter()
        .map(|&factor| SimWorker {
            id: format!("{:016x}", next_random(&mut rng)),
            factor,
            held: VecDeque::new(),
            running: None,
            engine_model: None,
            view_model: None,
            // PLACEMENT_SIM_KNOWN=1: the coordinator knows every worker from the start, as it does
            // on a farm it has seen before.
            speed: known.then_some(TOKENS_PER_SECOND * factor),
            load: known.then_some(load_seconds() / factor),
            holds: BTreeSet::new(),
            jobs: 0,
            loads: 0,
            busy: 0.0,
            last_end: 0.0,
        })
        .collect();
    let mut queued: Vec<usize> = (0..jobs.len()).collect();
    let mut model_tokens: BTreeMap<usize, (f64, u32)> = BTreeMap::new();
    // Results in flight to the coordinator: (arrival time, worker, job, cold, load seconds).
    let mut results: Vec<(f64, usize, usize, bool, f64)> = Vec::new();
    let mut done = 0usize;
    let mut now = 0.0f64;
    let mut pairs: HashSet<(usize, usize)> = HashSet::new();

    let coordinator_place =
        |now: f64,
         workers: &mut Vec<SimWorker>,
         queued: &mut Vec<usize>,
         model_tokens: &BTreeMap<usize, (f64, u32)>| {
            let expected = |model: usize| -> f64 {
                estimates::expected_tokens(
                    model_tokens.get(&model).copied(),
                    model_tokens.values().copied(),
                    MAX_TOKENS,
                )
            };
            let measured_speeds: Vec<f64> = workers.iter().filter_map(|w| w.speed).collect();
            let measured_loads: Vec<(f64, f64)> = workers
                .iter()
                .filter_map(|w| Some((w.load?, w.speed?)))
                .collect();
            let views: Vec<WorkerView> = workers
                .iter()
                .map(|w| {
                    let speed = estimates::assumed_speed(w.speed, measured_speeds.iter().copied());
                    let load_seconds = estimates::assumed_load_seconds(
                        w.load,
                        measured_loads.iter().copied(),
                        speed,
                    );
                    let held = w.holds.len() as u32;
                    let ahead = w.holds.iter().map(|&job| {
                        let running_for = match w.running {
                            Some((j, start, ..)) if j == job => Some(now - start),
                            _ => None,
                        };
                        (expected(jobs[job].model) / speed, running_for)
                    });
                    let busy_for = estimates::busy_for(held, 1, ahead);
                    WorkerView {
                        worker_id: w.id.clone(),
                        class: "sim".into(),
                        free_slots: (1 + prefetch).saturating_sub(held),
                        models: HashSet::new(),
                        loaded: w.view_model.map(|m| format!("m{m}")),
                        labels: BTreeMap::new(),
                        arch: "x86_64".into(),
                        ram_total_bytes: 1 << 34,
                        ram_available_bytes: 1 << 34,
                        speed,
                        load_seconds,
                        slots: 1,
                        held,
                        busy_for,
                        accepting: true,
                        cache_room_bytes: 0,
                        transfer_rate: 0.0,
                        remotes: Vec::new(),
                        key_envs: Default::default(),
                    }
                })
                .collect();
            let pending: Vec<PendingJob> = queued
                .iter()
                .map(|&j| PendingJob {
                    job_id: format!("{j:05}"),
                    run_id: "run".into(),
                    model: format!("m{}", jobs[j].model),
                    scripted: true,
                    memory_bytes: 0,
                    pin: None,
                    require: Requirements::default(),
                    avoid: Vec::new(),
                    work_tokens: expected(jobs[j].model),
                    fetch_bytes: None,
                    remote: None,
                })
                .collect();
            for p in place(&pending, &views) {
                let job: usize = p
                    .job_id
                    .parse()
                    .expect("the simulation names jobs by index");
                let w = workers
                    .iter_mut()
                    .find(|w| w.id == p.worker_id)
                    .expect("placement names a worker it was given");
                queued.retain(|&q| q != job);
                w.holds.insert(job);
                w.held.push_back((job, now + ROUND_TRIP / 2.0));
                w.view_model = Some(jobs[job].model);
            }
        };

    coordinator_place(now, &mut workers, &mut queued, &model_tokens);
    while done < jobs.len() {
        // Start whatever can start; then advance to the next event.
        for (i, w) in workers.iter_mut().enumerate() {
            if w.running.is_none()
                && let Some(&(job, arrives)) = w.held.front()
                && arrives <= now + 1e-12
            {
                w.held.pop_front();
                let model = jobs[job].model;
                let cold = w.engine_model != Some(model);
                let load = if cold { load_seconds() / w.factor } else { 0.0 };
                let run = answer_tokens(jobs[job].task) / (TOKENS_PER_SECOND * w.factor);
                w.engine_model = Some(model);
                w.running = Some((job, now, now + load + run, load));
                if cold {
                    w.loads += 1;
                }
                pairs.insert((i, model));
            }
        }
        let next_end = workers
            .iter()
            .filter_map(|w| w.running.map(|(_, _, end, _)| end))
            .fold(f64::INFINITY, f64::min);
        let next_arrival = workers
            .iter()
            .filter(|w| w.running.is_none())
            .filter_map(|w| w.held.front().map(|(_, at)| *at))
            .fold(f64::INFINITY, f64::min);
        let next_result = results.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        now = next_end.min(next_arrival).min(next_result);
        assert!(
            now.is_finite(),
            "the simulation stalled with {done} jobs done"
        );
        for (i, w) in workers.iter_mut().enumerate() {
            if let Some((job, start, end, load)) = w.running
                && end <= now + 1e-12
            {
                w.running = None;
                w.jobs += 1;
                w.busy += end - start;
                w.last_end = end;
                results.push((end + ROUND_TRIP / 2.0, i, job, load > 0.0, load));
            }
        }
        let arrived: Vec<_> = results
            .iter()
            .filter(|r| r.0 <= now + 1e-12)
            .cloned()
            .collect();
        results.retain(|r| r.0 > now + 1e-12);
        if arrived.is_empty() {
            continue;
        }
        for (_, i, job, cold, load) in arrived {
            done += 1;
            let w = &mut workers[i];
            w.holds.remove(&job);
            w.speed = Some(estimates::smoothed(w.speed, TOKENS_PER_SECOND * w.factor));
            if cold {
                w.load = Some(estimates::smoothed(w.load, load));
            }
            let entry = model_tokens.entry(jobs[job].model).or_insert((0.0, 0));
            entry.0 += answer_tokens(jobs[job].task);
            entry.1 += 1;
        }
        coordinator_place(now, &mut workers, &mut queued, &model_tokens);
    }
    Outcome {
        makespan: now,
        loads: workers.iter().map(|w| w.loads).sum(),
        pairs: pairs.len(),
        per_worker: workers
            .iter()
            .map(|w| (w.factor, w.jobs, w.loads, w.busy, w.last_end))
            .collect(),
    }
}

/// The best makespan any schedule could reach here, knowing every speed in advance, with jobs
/// divisible at will and no overhead at all. Every worker loads one model first (`load ÷ speed`),
/// so a group of workers on one model finishes its `work` at the smallest T with
/// Σ max(0, speed·T − load) ≥ work. The schedule is a split of the workers over the models, where
/// one worker may also switch once to a second model (paying a second load); two or more switches
/// cost at least (Σ work + (working workers + 2)·load) ÷ their Σ speed even if balance were
/// perfect, which is taken as their bound. Brute force over the 3^8 splits.
fn ideal_makespan(work_per_model: f64) -> f64 {
    let load = load_seconds();
    let n = SPEEDS.len();
    // Capacity of a worker by time t, after `loads` loads.
    let capacity = |s: f64, t: f64, loads: f64| (s * t - loads * load).max(0.0);
    let smallest_t = |feasible: &dyn Fn(f64) -> bool| {
        let (mut low, mut high) = (0.0, 100.0);
        for _ in 0..60 {
            let mid = (low + high) / 2.0;
            if feasible(mid) {
                high = mid;
            } else {
                low = mid;
            }
        }
        high
    };
    // Two or more switches: at least two loads beyond one per working worker, however well
    // balanced; the slowest workers may sit idle (no load, no capacity).
    let mut sorted = SPEEDS.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut best = (0..n)
        .map(|idle| {
            let speed: f64 = sorted[idle..].iter().sum();
            (MODELS as f64 * work_per_model + (n - idle + 2) as f64 * load) / speed
        })
        .fold(f64::INFINITY, f64::min);
    for code in 0..MODELS.pow(n as u32) {
        let group: Vec<usize> = (0..n)
            .map(|i| (code / MODELS.pow(i as u32)) % MODELS)
            .collect();
        // Without a switch.
        let t = smallest_t(&|t| {
            (0..MODELS).all(|m| {
                (0..n)
                    .filter(|&i| group[i] == m)
                    .map(|i| capacity(SPEEDS[i], t, 1.0))
                    .sum::<f64>()
                    >= work_per_model
            })
        });
        best = best.min(t);
        // Worker j also serves model m2.
        for j in 0..n {
            for m2 in (0..MODELS).filter(|&m| m != group[j]) {
                let t = smallest_t(&|t| {
                    let short = |m: usize| {
                        let have: f64 = (0..n)
                            .filter(|&i| i != j && group[i] == m)
                            .map(|i| capacity(SPEEDS[i], t, 1.0))
                            .sum();
                        (work_per_model - have).max(0.0)
                    };
                    (0..MODELS)
                        .filter(|&m| m != group[j] && m != m2)
                        .all(|m| short(m) <= 1e-12)
                        && short(group[j]) + short(m2) <= capacity(SPEEDS[j], t, 2.0)
                });
                best = best.min(t);
            }
        }
    }
    best
}

fn main() {
    let env = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seeds = env("PLACEMENT_SIM_SEEDS", 50).max(1);
    let prefetch = env("PLACEMENT_SIM_PREFETCH", 1) as u32;
    let verbose = env("PLACEMENT_SIM_VERBOSE", 0) == 1;
    let known = env("PLACEMENT_SIM_KNOWN", 0) == 1;

    let work: f64 = (0..MODELS * TASKS * REPETITIONS)
        .map(|j| answer_tokens((j / REPETITIONS) % TASKS) / TOKENS_PER_SECOND)
        .sum();
    let speed: f64 = SPEEDS.iter().sum();
    let fastest = SPEEDS.iter().copied().fold(0.0, f64::max);
    let lower_bound = (work / speed).max(answer_tokens(4) / TOKENS_PER_SECOND / fastest);
    println!(
        "placement_sim: {} workers, {MODELS} models (load {} s at 1×), {} jobs, \
         prefetch {prefetch}, round trip {} ms, {seeds} worker-id orders; lower bound {lower_bound:.3} s",
        SPEEDS.len(),
        load_seconds(),
        MODELS * TASKS * REPETITIONS,
        ROUND_TRIP * 1000.0
    );
    let ideal = ideal_makespan(work / MODELS as f64);
    println!(
        "the best any schedule could do (every speed known, divisible jobs, no overhead): \
         {ideal:.3} s, ratio {:.3}",
        ideal / lower_bound
    );
    let mut ratios = Vec::new();
    let mut loads = Vec::new();
    for seed in 1..=seeds {
        let outcome = simulate(seed, prefetch, known);
        let ratio = outcome.makespan / lower_bound;
        if verbose {
            println!(
                "seed {seed}: makespan {:.3} s, ratio {ratio:.3}, loads {} for {} pairs",
                outcome.makespan, outcome.loads, outcome.pairs
            );
            for (factor, jobs, loads, busy, last) in &outcome.per_worker {
                println!(
                    "  x{factor}: {jobs} jobs, {loads} loads, busy {busy:.3} s, last end {last:.3} s"
                );
            }
        }
        ratios.push(ratio);
        loads.push((outcome.loads, outcome.pairs));
    }
    ratios.sort_by(f64::total_cmp);
    let within = ratios.iter().filter(|r| **r <= 1.15).count();
    let worst_loads = loads
        .iter()
        .map(|(l, p)| *l as f64 / *p as f64)
        .fold(0.0, f64::max);
    println!(
        "ratio: median {:.3}, best {:.3}, worst {:.3}; {within}/{} orders within 1.15; \
         mean loads {:.1}, worst loads ÷ pairs {worst_loads:.2}",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        ratios.len(),
        loads.iter().map(|(l, _)| *l as f64).sum::<f64>() / loads.len() as f64,
    );
}
