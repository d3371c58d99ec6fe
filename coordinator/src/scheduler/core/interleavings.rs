//! A property test of the scheduler core over random interleavings of everything that happens to
//! a farm: submits, joins and rejoins on new connections, heartbeats, assignments delivered or
//! lost, starts, results, re-sent results, failures, lost acks, disconnects, worker restarts,
//! lease expiry, cancels, drains, and coordinator crashes at any point that keep only what was
//! flushed (plus a random prefix of the writes after it, as sled's ordered log can).
//!
//! The workers are modelled honestly (they remember what they were given, keep unacknowledged
//! answers across restarts, and say so in every hello and heartbeat); the invariants are checked
//! after every step, and at the end the farm is settled (every worker well-behaved) and every job
//! must be terminal, counted exactly once or failed. `PROPTEST_CASES` sets the number of cases (CI
//! runs the default below; a long run is documented in docs/benchmarks.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::scheduler::ToWorker;
use proptest::prelude::*;

use super::testbed::*;
use crate::job::JobState;
use crate::records::RunState;
use crate::scheduler::{Command, WorkerEvent};

const WORKERS: usize = 3;

/// A (job id, attempt).
type Key = (String, u32);

#[derive(Debug, Clone)]
enum Op {
    /// A run of `tasks` tasks (and with `throughput`, one throughput test beside them; with
    /// `adaptive`, a rule whose target is never met, so each model grows one repetition).
    Submit {
        tasks: usize,
        reps: u32,
        throughput: bool,
        adaptive: bool,
    },
    Join(usize),
    Heartbeat(usize),
    /// The worker reads its inbox: assignments become running jobs, acks clear its outbox.
    Deliver(usize),
    /// Everything in flight to the worker is lost (assignments and acks).
    LoseInbox(usize),
    Start(usize, usize),
    Finish {
        worker: usize,
        job: usize,
        ok: bool,
    },
    Resend(usize),
    Disconnect(usize),
    /// The worker process restarts: what it ran is gone, its outbox (on disk) is not.
    Restart(usize),
    Advance(i64),
    Crash(usize),
    Cancel(usize),
    Drain(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WORKERS;
    prop_oneof![
        1 => (1..3usize, 1..3u32, any::<bool>(), any::<bool>()).prop_map(
            |(tasks, reps, throughput, adaptive)| Op::Submit { tasks, reps, throughput, adaptive }
        ),
        2 => w.clone().prop_map(Op::Join),
        3 => w.clone().prop_map(Op::Heartbeat),
        6 => w.clone().prop_map(Op::Deliver),
        1 => w.clone().prop_map(Op::LoseInbox),
        4 => (w.clone(), 0..3usize).prop_map(|(w, j)| Op::Start(w, j)),
        6 => (w.clone(), 0..3usize, prop::bool::weighted(0.85))
            .prop_map(|(worker, job, ok)| Op::Finish { worker, job, ok }),
        2 => w.clone().prop_map(Op::Resend),
        1 => w.clone().prop_map(Op::Disconnect),
        1 => w.clone().prop_map(Op::Restart),
        2 => prop_oneof![Just(1_000i64), Just(LEASE_MS / 2), Just(LEASE_MS + 1)].prop_map(Op::Advance),
        1 => (0..6usize).prop_map(Op::Crash),
        1 => (0..4usize).prop_map(Op::Cancel),
        1 => w.prop_map(Op::Drain),
    ]
}

/// A worker as the test models it.
#[derive(Default)]
struct Model {
    conn: Option<FakeWorker>,
    /// Jobs received and not finished: (key, started).
    running: Vec<((String, u32), bool)>,
    /// Answers sent and not acknowledged: key → ok.
    outbox: BTreeMap<(String, u32), bool>,
}

struct Farm {
    bed: Bed,
    workers: Vec<Model>,
    runs: Vec<String>,
    /// Every assignment key ever received, and by whom.
    assigned: HashMap<(String, u32), usize>,
    /// Results acknowledged to a worker (which then forgets them): they must never be lost.
    acked_results: BTreeSet<(String, u32)>,
}

impl Farm {
    fn new() -> Farm {
        Farm {
            bed: Bed::new(),
            workers: (0..WORKERS).map(|_| Model::default()).collect(),
            runs: Vec::new(),
            assigned: HashMap::new(),
            acked_results: BTreeSet::new(),
        }
    }

    fn name(w: usize) -> String {
        format!("w{w}")
    }

    fn command(&mut self, w: usize, event: impl FnOnce(&FakeWorker) -> Command) {
        if let Some(conn) = &self.workers[w].conn {
            let command = event(conn);
            self.bed.step(vec![command]);
        }
    }

    /// What the worker's heartbeat lists: (running, unacknowledged).
    fn heartbeat_of(&self, w: usize) -> (Vec<Key>, Vec<Key>) {
        let m = &self.workers[w];
        (
            m.running.iter().map(|(k, _)| k.clone()).collect(),
            m.outbox.keys().cloned().collect(),
        )
    }

    fn join(&mut self, w: usize) {
        let (running, unacked) = self.heartbeat_of(w);
        let conn = self.bed.join(&Farm::name(w), 1, &running, &unacked);
        self.workers[w].conn = Some(conn);
        // Right behind the hello, the worker re-sends what is unacknowledged.
        self.resend(w);
    }

    fn resend(&mut self, w: usize) {
        let outbox: Vec<_> = self.workers[w]
            .outbox
            .iter()
            .map(|(k, ok)| (k.clone(), *ok))
            .collect();
        for (key, ok) in outbox {
            self.command(w, |c| answer(c, &key, ok));
        }
    }

    fn deliver(&mut self, w: usize) {
        let Some(conn) = self.workers[w].conn.as_mut() else {
            return;
        };
        let messages = conn.drain();
        for message in messages {
            match message {
                ToWorker::Assign(a) => {
                    let key = (a.key.job_id, a.key.attempt);
                    if let Some(previous) = self.assigned.insert(key.clone(), w) {
                        panic!("attempt {key:?} assigned twice: to w{previous} and w{w}");
                    }
                    self.workers[w].running.push((key, false));
                }
                ToWorker::Ack(key) => {
                    let key = (key.job_id, key.attempt);
                    if self.workers[w].outbox.remove(&key) == Some(true) {
                        // The answer of a job whose run is still going must be in the store by
                        // the time it is acknowledged (a cancelled run's answers are dropped).
                        let store = self.bed.store();
                        let run_id = crate::run::run_of_job(&key.0).expect("job id");
                        let live = store
                            .run(run_id)
                            .expect("run")
                            .is_some_and(|r| r.state == RunState::Running);
                        let stored = store.result(&key.0, key.1).expect("result").is_some();
                        assert!(
                            stored || !live,
                            "result {key:?} acknowledged but not stored"
                        );
                        if stored {
                            self.acked_results.insert(key);
                        }
                    }
                }
                ToWorker::Cancel { key, .. } => {
                    let key = (key.job_id, key.attempt);
                    self.workers[w].running.retain(|(k, _)| k != &key);
                }
                ToWorker::Drain { .. } => {}
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Submit {
                tasks,
                reps,
                throughput,
                adaptive,
            } => {
                let id = format!("r{}", self.runs.len());
                let tests = if throughput {
                    vec![crate::records::ThroughputTest {
                        n_prompt: 0,
                        n_gen: 8,
                    }]
                } else {
                    Vec::new()
                };
                let mut run = run_record(&id, tasks, reps, self.bed.clock.now());
                run.throughput = tests;
                if adaptive {
                    run.adaptive = Some(crate::records::AdaptiveRule {
                        min: reps,
                        max: reps + 1,
                        target_ci: Some(1e-9),
                        target_rsd: None,
                    });
                }
                self.bed.submit_record(run);
                self.runs.push(id);
            }
            Op::Join(w) => self.join(w),
            Op::Heartbeat(w) => {
                let (running, unacked) = self.heartbeat_of(w);
                self.command(w, |c| c.heartbeat(&running, &unacked));
            }
            Op::Deliver(w) => self.deliver(w),
            Op::LoseInbox(w) => {
                if let Some(conn) = self.workers[w].conn.as_mut() {
                    conn.drain();
                }
            }
            Op::Start(w, j) => {
                let Some((key, started)) = self.workers[w].running.get_mut(j) else {
                    return;
                };
                *started = true;
                let key = key.clone();
                self.command(w, |c| c.started(&key));
            }
            Op::Finish {
                worker: w,
                job: j,
                ok,
            } => {
                if j >= self.workers[w].running.len() {
                    return;
                }
                let (key, _) = self.workers[w].running.remove(j);
                self.workers[w].outbox.insert(key.clone(), ok);
                self.command(w, |c| answer(c, &key, ok));
            }
            Op::Resend(w) => self.resend(w),
            Op::Disconnect(w) => {
                if let Some(conn) = self.workers[w].conn.take() {
                    self.bed.step(vec![conn.leaves()]);
                }
            }
            Op::Restart(w) => {
                self.workers[w].running.clear();
                if let Some(conn) = self.workers[w].conn.take() {
                    self.bed.step(vec![conn.leaves()]);
                }
                self.join(w);
            }
            Op::Advance(ms) => {
                self.bed.clock.advance(ms);
                self.bed.tick();
            }
            Op::Crash(keep) => {
                self.bed.crash(keep);
                // Every stream broke with the coordinator.
                for m in &mut self.workers {
                    m.conn = None;
                }
            }
            Op::Cancel(r) => {
                if let Some(run_id) = self.runs.get(r).cloned() {
                    let _ = self.bed.ask(|reply| Command::Cancel { run_id, reply });
                }
            }
            Op::Drain(w) => {
                let worker = Farm::name(w);
                let _ = self.bed.ask(|reply| Command::Drain { worker, reply });
            }
        }
    }

    /// What must hold after every step.
    fn check(&self) {
        let store = self.bed.store();
        self.bed.assert_index_consistent();
        for run_id in &self.runs {
            let jobs = store.jobs_of_run(run_id).expect("jobs");
            let results = store.results_of_run(run_id).expect("results");
            let mut counted: HashMap<&str, u32> = HashMap::new();
            for r in results.iter().filter(|r| r.counted) {
                *counted.entry(r.job_id.as_str()).or_default() += 1;
                let job = jobs
                    .iter()
                    .find(|j| j.id == r.job_id)
                    .expect("job of result");
                assert!(
                    job.attempts
                        .iter()
                        .any(|a| a.attempt == r.attempt && a.worker_id == r.worker_id),
                    "counted result {}#{} from {} is not a recorded attempt of that worker: {:?}",
                    r.job_id,
                    r.attempt,
                    r.worker_id,
                    job.attempts
                );
            }
            for job in &jobs {
                let n = counted.get(job.id.as_str()).copied().unwrap_or(0);
                assert!(n <= 1, "job {} counted {n} times", job.id);
                if let JobState::Done { attempt } = job.state {
                    assert_eq!(n, 1, "job {} done without a counted result", job.id);
                    assert!(
                        results
                            .iter()
                            .any(|r| r.counted && r.attempt == attempt && r.job_id == job.id)
                    );
                }
                let tries = job
                    .attempts
                    .iter()
                    .filter(|a| {
                        a.end
                            .as_ref()
                            .is_none_or(crate::records::AttemptEnd::is_try)
                    })
                    .count() as u32;
                assert!(
                    tries <= self.bed.config.max_attempts,
                    "job {} tried {tries} times",
                    job.id
                );
            }
            if let Some(run) = store.run(run_id).expect("run") {
                let all_terminal = jobs.iter().all(|j| j.state.is_terminal());
                match run.state {
                    RunState::Finished => assert!(all_terminal, "run {run_id} finished early"),
                    RunState::Running => assert!(
                        !all_terminal || jobs.is_empty(),
                        "run {run_id} has every job terminal but is not finished"
                    ),
                    RunState::Cancelled => {}
                }
            }
        }
        for key in &self.acked_results {
            let stored = store.result(&key.0, key.1).expect("result");
            assert!(stored.is_some(), "acknowledged result {key:?} was lost");
        }
    }

    /// Every worker behaves from now on until every run is over. Each reconnects first, as a
    /// drained or quarantined worker's operator would have it do.
    fn settle(&mut self) {
        for w in 0..WORKERS {
            self.apply(&Op::Disconnect(w));
            self.join(w);
        }
        for _ in 0..200 {
            let live = self.runs.iter().any(|r| {
                self.bed
                    .store()
                    .run(r)
                    .expect("run")
                    .is_some_and(|r| r.state == RunState::Running)
            });
            if !live {
                return;
            }
            for w in 0..WORKERS {
                if self.workers[w].conn.is_none() {
                    self.join(w);
                }
                self.deliver(w);
                while !self.workers[w].running.is_empty() {
                    self.apply(&Op::Start(w, 0));
                    self.apply(&Op::Finish {
                        worker: w,
                        job: 0,
                        ok: true,
                    });
                }
                self.deliver(w);
                self.resend(w);
                self.apply(&Op::Heartbeat(w));
            }
            self.bed.clock.advance(LEASE_MS / 3);
            self.bed.tick();
            self.check();
        }
        panic!("the farm did not settle in 200 rounds");
    }
}

fn answer(c: &FakeWorker, key: &(String, u32), ok: bool) -> Command {
    if ok {
        // Jobs with an odd index answer wrongly: verdicts vary across repetitions, so an
        // adaptive run's interval never meets its target and each model grows to its maximum.
        let mut r = result(key);
        if key.0.ends_with(['1', '3', '5', '7', '9']) {
            r.answer = format!("wrong for {}#{}", key.0, key.1);
        }
        c.says(WorkerEvent::Result(Box::new(r)))
    } else {
        c.says(WorkerEvent::Failed {
            job_id: key.0.clone(),
            attempt: key.1,
            reason: "engine error".into(),
            not_started: false,
            refused: false,
            suite_unknown: false,
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_job_is_counted_exactly_once_under_any_interleaving(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let mut farm = Farm::new();
        farm.apply(&Op::Submit {
            tasks: 2,
            reps: 2,
            throughput: true,
            adaptive: true,
        });
        for op in &ops {
            farm.apply(op);
            farm.check();
        }
        farm.settle();
        let store = farm.bed.store();
        for run_id in &farm.runs {
            let run = store.run(run_id).expect("run").expect("stored");
            prop_assert!(run.state != RunState::Running);
            // An adaptive run finishes only once each of its models has stopped, for a reason.
            if run.adaptive.is_some() && run.state == RunState::Finished {
                prop_assert!(
                    run.stop_reasons.len() == run.models.len()
                        && run.stop_reasons.iter().all(Option::is_some),
                    "{:?}",
                    run.stop_reasons
                );
            }
            for job in store.jobs_of_run(run_id).expect("jobs") {
                prop_assert!(job.state.is_terminal(), "{:?}", job);
            }
        }
    }
}
