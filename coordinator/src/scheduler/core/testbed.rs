//! The deterministic test bed of the scheduler core: a [`Scheduler`] over an in-memory store and a
//! fake clock, driven step by step, with fake workers that are plain channels (as nativelink's
//! scheduler tests fake theirs), and crashes that keep only what the store had made durable.

use benchfarm_suite::{Grade, Verdict};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::Scheduler;
use crate::clock::{FakeClock, SharedClock};
use crate::records::*;
use crate::scheduler::{Command, Config, IncomingResult, Joining, Liveness, ToWorker, WorkerEvent};
use crate::store::{MemoryKv, Store};

/// The lease the bed's scheduler uses.
pub const LEASE_MS: i64 = 10_000;

pub fn config() -> Config {
    Config {
        lease: std::time::Duration::from_millis(LEASE_MS as u64),
        max_attempts: 3,
        job_timeout: std::time::Duration::from_secs(60),
        job_timeout_floor: std::time::Duration::from_secs(30),
        tick: std::time::Duration::from_millis(500),
        quarantine_after: 3,
        prefetch: 0,
        max_jobs_per_run: 1_000_000,
        limits: crate::limits::Limits::DEFAULT,
        ..Config::default()
    }
}

/// A scheduler, its store and its clock.
pub struct Bed {
    pub kv: MemoryKv,
    pub clock: FakeClock,
    pub scheduler: Scheduler,
    pub config: Config,
    next_conn: u64,
}

impl Bed {
    pub fn new() -> Bed {
        Bed::with_config(config())
    }

    pub fn with_config(config: Config) -> Bed {
        let kv = MemoryKv::new();
        let clock = FakeClock::at(1_700_000_000_000);
        let scheduler = open(&kv, &clock, &config);
        Bed {
            kv,
            clock,
            scheduler,
            config,
            next_conn: 1,
        }
    }

    /// One scheduler step over `commands`.
    pub fn step(&mut self, commands: Vec<Command>) {
        self.scheduler.step(commands);
    }

    /// A lease tick at the current time.
    pub fn tick(&mut self) {
        self.step(vec![Command::Tick]);
    }

    /// Kills the coordinator: its memory is gone, and the store keeps what was flushed plus the
    /// first `keep_unflushed` writes after that. Then it starts again on what is left.
    pub fn crash(&mut self, keep_unflushed: usize) {
        self.kv = self.kv.crash(keep_unflushed);
        self.scheduler = open(&self.kv, &self.clock, &self.config);
    }

    pub fn store(&self) -> Store {
        self.scheduler.store.clone()
    }

    /// A worker with `slots` slots joins (or rejoins) over a new connection, saying it still runs
    /// `running` and holds `unacknowledged` answers.
    pub fn join(
        &mut self,
        id: &str,
        slots: u32,
        running: &[(String, u32)],
        unacknowledged: &[(String, u32)],
    ) -> FakeWorker {
        self.join_as(worker_record(id, slots), running, unacknowledged)
    }

    /// [`Bed::join`] with a worker record of the test's own (its models, its RAM).
    pub fn join_as(
        &mut self,
        record: WorkerRecord,
        running: &[(String, u32)],
        unacknowledged: &[(String, u32)],
    ) -> FakeWorker {
        let id = record.id.clone();
        let conn = self.next_conn;
        self.next_conn += 1;
        let (outbox, inbox) = mpsc::channel(64);
        let seen = Liveness::new(self.clock.now());
        let (reply, _welcome) = oneshot::channel();
        self.step(vec![Command::Join {
            worker: Box::new(Joining {
                record,
                running: running.to_vec(),
                unacknowledged: unacknowledged.to_vec(),
                cache: crate::scheduler::CacheReport::default(),
            }),
            conn,
            outbox,
            seen: seen.clone(),
            reply,
        }]);
        FakeWorker {
            id,
            conn,
            inbox,
            seen,
            clock: self.clock.clone(),
        }
    }

    /// Submits a run of one scripted model, `tasks` tasks × `repetitions`; returns its id.
    pub fn submit(&mut self, id: &str, tasks: usize, repetitions: u32) -> String {
        self.submit_with_throughput(id, tasks, repetitions, Vec::new())
    }

    /// [`Bed::submit`] with `throughput` tests beside the tasks (their jobs after the tasks').
    pub fn submit_with_throughput(
        &mut self,
        id: &str,
        tasks: usize,
        repetitions: u32,
        throughput: Vec<crate::records::ThroughputTest>,
    ) -> String {
        let mut run = run_record(id, tasks, repetitions, self.clock.now());
        run.throughput = throughput;
        self.submit_record(run)
    }

    /// Submits `run` as it is; returns its id.
    pub fn submit_record(&mut self, run: RunRecord) -> String {
        let id = run.id.clone();
        let (reply, mut rx) = oneshot::channel();
        self.step(vec![Command::Submit {
            run: Box::new(run),
            strict: false,
            reply,
        }]);
        rx.try_recv()
            .expect("submit answered")
            .expect("submit accepted");
        id
    }

    /// Asks the scheduler something and returns the answer.
    pub fn ask<T>(&mut self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
        let (reply, mut rx) = oneshot::channel();
        self.step(vec![make(reply)]);
        rx.try_recv()
            .expect("the scheduler answers in the same step")
    }

    /// Every job of a run as stored.
    pub fn jobs(&self, run_id: &str) -> Vec<JobRecord> {
        self.store().jobs_of_run(run_id).expect("jobs")
    }

    /// Every result of a run as stored.
    pub fn results(&self, run_id: &str) -> Vec<ResultRecord> {
        self.store().results_of_run(run_id).expect("results")
    }

    pub fn run_state(&self, run_id: &str) -> RunState {
        self.store()
            .run(run_id)
            .expect("run")
            .expect("stored")
            .state
    }

    /// Checks the scheduler's indexes against its jobs, rebuilt from scratch.
    pub fn assert_index_consistent(&self) {
        let rebuilt = super::index::JobIndex::rebuilt(self.scheduler.jobs.values());
        assert!(
            self.scheduler.index.same_as(&rebuilt),
            "index drifted:\n{:?}\nvs rebuilt\n{:?}",
            self.scheduler.index,
            rebuilt
        );
    }
}

fn open(kv: &MemoryKv, clock: &FakeClock, config: &Config) -> Scheduler {
    let store = Store::in_memory(kv.clone()).expect("memory store opens");
    let clock: SharedClock = std::sync::Arc::new(clock.clone());
    Scheduler::load(
        store,
        config.clone(),
        clock,
        broadcast::channel(16).0,
        crate::grading::Graders::default(),
    )
    .expect("load")
}

impl FakeClock {
    pub fn now(&self) -> UnixMs {
        crate::clock::Clock::now_ms(self)
    }
}

/// A worker as the scheduler sees one: a connection number, an inbox and a liveness stamp.
pub struct FakeWorker {
    pub id: String,
    pub conn: u64,
    pub inbox: mpsc::Receiver<ToWorker>,
    pub seen: Liveness,
    clock: FakeClock,
}

impl FakeWorker {
    /// A message from this worker, stamped by its connection as the real one does on receipt.
    pub fn says(&self, event: WorkerEvent) -> Command {
        self.seen.stamp(self.clock.now());
        Command::Event {
            worker_id: self.id.clone(),
            conn: self.conn,
            event,
        }
    }

    /// The connection closed.
    pub fn leaves(&self) -> Command {
        Command::Leave {
            worker_id: self.id.clone(),
            conn: self.conn,
            reason: "stream closed".into(),
        }
    }

    /// Everything the coordinator sent since the last call.
    pub fn drain(&mut self) -> Vec<ToWorker> {
        let mut out = Vec::new();
        while let Ok(message) = self.inbox.try_recv() {
            out.push(message);
        }
        out
    }

    /// The (job, attempt) keys of the assignments among `messages`.
    pub fn assigned(messages: &[ToWorker]) -> Vec<(String, u32)> {
        messages
            .iter()
            .filter_map(|k| match k {
                ToWorker::Assign(a) => Some((a.key.job_id.clone(), a.key.attempt)),
                _ => None,
            })
            .collect()
    }

    /// The (job, attempt) keys of the acknowledgements among `messages`.
    pub fn acked(messages: &[ToWorker]) -> Vec<(String, u32)> {
        messages
            .iter()
            .filter_map(|k| match k {
                ToWorker::Ack(key) => Some((key.job_id.clone(), key.attempt)),
                _ => None,
            })
            .collect()
    }

    pub fn started(&self, key: &(String, u32)) -> Command {
        self.says(WorkerEvent::Started {
            job_id: key.0.clone(),
            attempt: key.1,
        })
    }

    pub fn result(&self, key: &(String, u32)) -> Command {
        self.says(WorkerEvent::Result(Box::new(result(key))))
    }

    pub fn failed(&self, key: &(String, u32), reason: &str) -> Command {
        self.says(WorkerEvent::Failed {
            job_id: key.0.clone(),
            attempt: key.1,
            reason: reason.into(),
            not_started: false,
            refused: false,
            suite_unknown: false,
        })
    }

    pub fn heartbeat(
        &self,
        running: &[(String, u32)],
        unacknowledged: &[(String, u32)],
    ) -> Command {
        self.says(WorkerEvent::Heartbeat {
            running: running.to_vec(),
            unacknowledged: unacknowledged.to_vec(),
            draining: false,
            cache: None,
            ram_available_bytes: None,
        })
    }
}

/// A fake worker's answer to any job: an answer and a measurement (it does not look at the
/// job's kind; the core keeps the grade of a task's answer and the measurement of a throughput
/// job's).
pub fn result(key: &(String, u32)) -> IncomingResult {
    IncomingResult {
        job_id: key.0.clone(),
        attempt: key.1,
        answer: format!("answer of {}#{}", key.0, key.1),
        coordinator_grade: None,
        answer_truncated_from: None,
        grade: Grade {
            verdict: Verdict::Pass,
            score: 1.0,
            extracted: String::new(),
            checks: Vec::new(),
        },
        timings: Timings {
            gen_tokens: 10,
            gen_ms: 100.0,
            wall_ms: 120.0,
            ..Timings::default()
        },
        threads: 1,
        chat_template: "scripted".into(),
        stop: "eos".into(),
        build_features: Vec::new(),
        cpu_features: Vec::new(),
        truncated: false,
        remote: None,
        throughput: Some(crate::records::ThroughputMeasurement {
            samples_ns: vec![1_000_000],
            model_type: String::new(),
            model_n_params: 0,
            backends: "CPU".into(),
        }),
    }
}

pub fn worker_record(id: &str, slots: u32) -> WorkerRecord {
    WorkerRecord {
        id: id.into(),
        name: id.into(),
        hardware: Hardware {
            arch: "x86_64".into(),
            ram_total_bytes: 8 << 30,
            ram_available_bytes: 8 << 30,
            ..Hardware::default()
        },
        labels: Default::default(),
        models: Vec::new(),
        engine: "scripted".into(),
        llama_cpp_build: String::new(),
        backends: Vec::new(),
        system_info: String::new(),
        build_features: Vec::new(),
        cpu_features: Vec::new(),
        slots,
        threads: 1,
        hardware_class: "test".into(),
        last_seen_unix_ms: 0,
        jobs_done: 0,
        jobs_failed: 0,
        remotes: Vec::new(),
        remote_key_envs: Vec::new(),
    }
}

/// The bed's suite: tasks t0 .. t{tasks-1}, each passed by any answer containing "answer".
pub fn suite_of(tasks: usize) -> String {
    let mut text = String::from("name = \"bed\"\nversion = \"1\"\n");
    for i in 0..tasks.max(1) {
        text.push_str(&format!(
            "[[tasks]]\nid = \"t{i}\"\ncategory = \"c\"\nprompt = \"say ok\"\npass = [{{ contains = \"answer\" }}]\n"
        ));
    }
    text
}

pub fn run_record(id: &str, tasks: usize, repetitions: u32, now: UnixMs) -> RunRecord {
    RunRecord {
        id: id.into(),
        created_unix_ms: now,
        label: "bed".into(),
        suite_name: "bed".into(),
        suite_version: "1".into(),
        suite_toml: suite_of(tasks),
        models: vec![RunModel {
            name: "scripted".into(),
            sha256: "0".repeat(64),
            size_bytes: 0,
            kind: ModelKind::Scripted {
                toml: String::new(),
            },
        }],
        tasks: (0..tasks)
            .map(|i| RunTask {
                id: format!("t{i}"),
                category: "c".into(),
                max_tokens: 64,
            })
            .collect(),
        throughput: Vec::new(),
        repetitions,
        adaptive: None,
        model_repetitions: Vec::new(),
        stop_reasons: Vec::new(),
        seed: 1,
        placement: Placement::Spread,
        require: Requirements::default(),
        jobs_total: 0,
        state: RunState::Running,
        finished_unix_ms: None,
        suite_history: Vec::new(),
        counts: None,
        trace_parent: String::new(),
    }
}

/// A (job id, attempt) key.
pub fn key(job_id: &str, attempt: u32) -> (String, u32) {
    (job_id.to_string(), attempt)
}
