//! Named regression tests of the scheduler core, one (or a few) per finding of the careful read in
//! issue 9, each driving the real core on the deterministic test bed. Each scenario is written as
//! the finding tells it; the assertion is what exactly-once demands.

use crate::scheduler::ToWorker;

use super::testbed::*;
use crate::job::JobState;
use crate::records::*;
use crate::scheduler::{Command, SchedulerError, WorkerEvent};
use crate::store::kv::Tree;

/// Finding 1. A result sent but not yet acknowledged when the coordinator died is not in the
/// worker's `running` any more; the worker re-sends it right after its hello. The join must not
/// mark that attempt lost first, or a free worker takes the job, the re-sent answer is stale and
/// the job runs (and costs an attempt) again.
#[test]
fn finding_1_a_result_resent_after_a_reconnect_is_counted_not_run_again() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    let run = bed.submit("r1", 1, 1);
    let job = FakeWorker::assigned(&w1.drain());
    assert_eq!(job.len(), 1);
    let job = job[0].clone();
    bed.step(vec![w1.started(&job)]);
    // The worker finished and sent its result; the coordinator died before it was processed.
    bed.crash(0);
    let mut w1 = bed.join("w1", 1, &[], std::slice::from_ref(&job));
    let mut w2 = bed.join("w2", 1, &[], &[]);
    assert!(
        FakeWorker::assigned(&w2.drain()).is_empty(),
        "the job was handed to another worker while its answer was on the way"
    );
    bed.step(vec![w1.result(&job)]);
    assert_eq!(FakeWorker::acked(&w1.drain()), vec![job.clone()]);
    let results = bed.results(&run);
    assert_eq!(results.len(), 1);
    assert!(results[0].counted);
    let jobs = bed.jobs(&run);
    assert_eq!(jobs[0].state, JobState::Done { attempt: 1 });
    assert_eq!(jobs[0].attempts.len(), 1, "no attempt burned");
    assert_eq!(bed.run_state(&run), RunState::Finished);
}

/// Finding 2. An assignment used to be sent before it was durable: a crash inside sled's flush
/// window forgot it, and the same (job, attempt) went out again, possibly to another worker.
#[test]
fn finding_2_an_attempt_key_is_never_handed_out_twice_across_a_crash() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 1, 1);
    let first = FakeWorker::assigned(&w1.drain());
    assert_eq!(first.len(), 1);
    // Crash keeping nothing that was not flushed.
    bed.crash(0);
    let mut w2 = bed.join("w2", 1, &[], &[]);
    let mut w1 = bed.join("w1", 1, &[], &[]); // w1 restarted too: it runs nothing
    let mut seen = FakeWorker::assigned(&w2.drain());
    seen.extend(FakeWorker::assigned(&w1.drain()));
    for key in &seen {
        assert_ne!(
            key, &first[0],
            "attempt key {key:?} handed out a second time"
        );
    }
    // The durable attempt names w1: its answer is the only one that can count for attempt 1.
    let job = &bed.jobs("r1")[0];
    assert_eq!(job.attempts[0].worker_id, "w1");
    assert_eq!(job.attempts[0].attempt, 1);
}

/// Finding 2, the other half: a result counts only for an attempt recorded for the worker that
/// sent it (one never assigned, or assigned to another worker, counts nowhere).
#[test]
fn finding_2_a_result_for_an_attempt_the_sender_does_not_hold_is_not_counted() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    let mut w2 = bed.join("w2", 1, &[], &[]);
    bed.submit("r1", 1, 1);
    let mut keys = FakeWorker::assigned(&w1.drain());
    keys.extend(FakeWorker::assigned(&w2.drain()));
    assert_eq!(keys.len(), 1);
    let key = keys[0].clone();
    let holder = bed.jobs("r1")[0].attempts[0].worker_id.clone();
    let other = if holder == "w1" { &w2 } else { &w1 };
    // The other worker claims the held attempt, and an attempt never assigned.
    bed.step(vec![other.result(&key), other.result(&(key.0.clone(), 7))]);
    assert!(bed.results("r1").is_empty());
    assert!(!bed.jobs("r1")[0].state.is_terminal());
}

/// Finding 3. Liveness used to be stamped when the scheduler processed a heartbeat; a scheduler
/// stalled past the lease then ran its lease check before the heartbeats queued behind the stall
/// and declared every live worker lost.
#[test]
fn finding_3_a_stalled_scheduler_does_not_declare_live_workers_lost() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 1, 1);
    let job = FakeWorker::assigned(&w1.drain())[0].clone();
    bed.step(vec![w1.started(&job)]);
    // Heartbeats keep arriving at the connection while the scheduler is stalled: the connection
    // stamps them; the scheduler has not processed them yet.
    let mut queued = Vec::new();
    for _ in 0..4 {
        bed.clock.advance(LEASE_MS / 2);
        queued.push(w1.heartbeat(std::slice::from_ref(&job), &[]));
    }
    bed.clock.advance(1_000);
    // The stall ends with the lease check first, as `select!` could order it.
    bed.tick();
    bed.step(queued);
    let job_record = &bed.jobs("r1")[0];
    assert!(
        matches!(job_record.state, JobState::Running { .. }),
        "live worker declared lost: {:?}",
        job_record.attempts
    );
    // A worker that really is silent is still lost.
    bed.clock.advance(LEASE_MS + 1);
    bed.tick();
    assert_eq!(bed.jobs("r1")[0].state, JobState::Queued);
}

/// Finding 4. A result dropped on a live connection (a store error before the ack) used to
/// leave the job running forever: re-sends happened only on reconnect.
#[test]
fn finding_4_a_result_whose_write_failed_is_counted_when_re_sent() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 1, 1);
    let job = FakeWorker::assigned(&w1.drain())[0].clone();
    bed.step(vec![w1.started(&job)]);
    bed.kv.fail_writes(1);
    bed.step(vec![w1.result(&job)]);
    assert!(
        FakeWorker::acked(&w1.drain()).is_empty(),
        "acked what was not written"
    );
    assert!(bed.results("r1").is_empty());
    // The worker lists it as unacknowledged and re-sends it a few heartbeats later.
    bed.step(vec![w1.heartbeat(&[], std::slice::from_ref(&job))]);
    assert!(matches!(bed.jobs("r1")[0].state, JobState::Running { .. }));
    bed.step(vec![w1.result(&job)]);
    assert_eq!(FakeWorker::acked(&w1.drain()), vec![job.clone()]);
    assert_eq!(bed.jobs("r1")[0].state, JobState::Done { attempt: 1 });
    assert_eq!(bed.run_state("r1"), RunState::Finished);
}

/// Finding 4. A running job its worker no longer lists, as running or as an unacknowledged
/// answer, was lost on the way; it is taken back at that heartbeat, not left running.
#[test]
fn finding_4_a_running_job_missing_from_a_heartbeat_is_taken_back() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 1, 1);
    let job = FakeWorker::assigned(&w1.drain())[0].clone();
    bed.step(vec![w1.started(&job)]);
    bed.step(vec![w1.heartbeat(std::slice::from_ref(&job), &[])]);
    assert!(matches!(bed.jobs("r1")[0].state, JobState::Running { .. }));
    bed.step(vec![w1.heartbeat(&[], &[])]);
    let job_record = &bed.jobs("r1")[0];
    // Taken back and, w1 being the only worker, handed out again as attempt 2.
    assert_eq!(job_record.attempts.len(), 2);
    assert!(matches!(
        job_record.attempts[0].end,
        Some(AttemptEnd::Lost(_))
    ));
    assert_eq!(FakeWorker::assigned(&w1.drain()), vec![key(&job.0, 2)]);
}

/// Finding 4. An acknowledgement dropped on a full channel: the worker re-sends, the coordinator
/// recognises the stored result and acknowledges it again, counting it once.
#[test]
fn finding_4_a_lost_ack_is_answered_again_without_counting_twice() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 1, 2);
    let job = FakeWorker::assigned(&w1.drain())[0].clone();
    bed.step(vec![w1.started(&job), w1.result(&job)]);
    let first = w1.drain();
    assert_eq!(FakeWorker::acked(&first), vec![job.clone()]);
    // The ack never reached the worker: it re-sends.
    bed.step(vec![w1.result(&job)]);
    assert_eq!(FakeWorker::acked(&w1.drain()), vec![job.clone()]);
    assert_eq!(bed.results("r1").len(), 1);
    let done = bed
        .jobs("r1")
        .iter()
        .filter(|j| matches!(j.state, JobState::Done { .. }))
        .count();
    assert_eq!(done, 1);
}

/// Finding 4. A job whose worker heartbeats on but never answers is taken back once its time
/// limit and a lease have passed.
#[test]
fn finding_4_a_job_running_past_its_deadline_is_taken_back() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 1, 1);
    let job = FakeWorker::assigned(&w1.drain())[0].clone();
    bed.step(vec![w1.started(&job)]);
    let limit = i64::from(bed.jobs("r1")[0].attempts[0].timeout_ms);
    assert!(limit > 0);
    let mut waited = 0;
    while waited <= limit + LEASE_MS {
        bed.clock.advance(LEASE_MS / 2);
        waited += LEASE_MS / 2;
        bed.step(vec![w1.heartbeat(std::slice::from_ref(&job), &[])]);
        bed.tick();
    }
    let job_record = &bed.jobs("r1")[0];
    assert_eq!(
        job_record.attempts[0].end,
        Some(AttemptEnd::Lost(
            "no answer within the job's time limit".into()
        ))
    );
}

/// Finding 5. Network numbers are checked: a submitted model of size u64::MAX and a worker
/// claiming u32::MAX slots used to overflow (a panic in debug builds).
#[test]
fn finding_5_huge_wire_numbers_do_not_overflow() {
    let mut bed = Bed::new();
    let _w = bed.join("w1", u32::MAX, &[], &[]);
    let mut run = run_record("r1", 1, 1, bed.clock.now());
    run.models[0].size_bytes = u64::MAX;
    run.models[0].kind = ModelKind::Gguf {
        file_name: "huge.gguf".into(),
    };
    let (reply, mut rx) = tokio::sync::oneshot::channel();
    bed.step(vec![Command::Submit {
        run: Box::new(run),
        strict: false,
        reply,
    }]);
    assert!(rx.try_recv().expect("answered").is_ok());
    // A repetition count whose product overflows u32 is refused, not wrapped.
    let mut run = run_record("r2", 1000, u32::MAX, bed.clock.now());
    run.models.push(run.models[0].clone());
    let (reply, mut rx) = tokio::sync::oneshot::channel();
    bed.step(vec![Command::Submit {
        run: Box::new(run),
        strict: false,
        reply,
    }]);
    assert!(matches!(
        rx.try_recv().expect("answered"),
        Err(SchedulerError::Invalid(_))
    ));
}

/// Finding 5. One undecodable stored worker record made every join fail ("the scheduler has
/// stopped"); one undecodable stored run stopped the coordinator from starting.
#[test]
fn finding_5_undecodable_records_are_skipped_and_reported() {
    let mut bed = Bed::new();
    let _w = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 1, 1);
    bed.kv.corrupt(Tree::Workers, b"w1", b"{not json");
    bed.kv.corrupt(Tree::Runs, b"r0-broken", b"\xff\xfe");
    bed.crash(0);
    let skipped = bed.store().skipped();
    assert!(
        skipped
            .iter()
            .any(|s| s.tree == "runs" && s.key == "r0-broken"),
        "{skipped:?}"
    );
    let mut w1 = bed.join("w1", 1, &[], &[]);
    assert_eq!(
        FakeWorker::assigned(&w1.drain()).len(),
        1,
        "the worker was kept out"
    );
}

/// Finding 6. A result used to cost a scan of the run's jobs (O(J^2) per run), and listing runs
/// decoded every job of every stored run. Counted in store reads, not time.
#[test]
fn finding_6_store_reads_do_not_grow_with_the_history() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 4, &[], &[]);
    // History: five finished runs of 200 jobs each.
    for r in 0..5 {
        let run = bed.submit(&format!("old{r}"), 20, 10);
        loop {
            let keys = FakeWorker::assigned(&w1.drain());
            if keys.is_empty() {
                break;
            }
            let commands = keys.iter().map(|k| w1.result(k)).collect();
            bed.step(commands);
        }
        assert_eq!(bed.run_state(&run), RunState::Finished);
    }
    bed.kv.reset_stats();
    let runs = bed.ask(|reply| Command::ListRuns { reply }).expect("runs");
    assert_eq!(runs.len(), 5);
    assert!(runs.iter().all(|r| r.done == 200));
    let reads = bed.kv.stats().records_read;
    assert!(reads <= 10, "listing 5 runs read {reads} records");
    // One result of a new run: a handful of reads, whatever the size of the run or the history.
    bed.submit("new", 20, 10);
    let key = FakeWorker::assigned(&w1.drain())[0].clone();
    bed.kv.reset_stats();
    bed.step(vec![w1.result(&key)]);
    let reads = bed.kv.stats().records_read;
    assert!(reads <= 5, "one result read {reads} records");
    bed.assert_index_consistent();
}

/// Finding 6. Ids padded to five digits stopped sorting in order past 99,999 jobs; queue order
/// depends on that sort.
#[test]
fn finding_6_job_ids_and_result_keys_sort_numerically_past_99999() {
    let ids: Vec<String> = [9, 99_999, 100_000, 1_000_000, u32::MAX]
        .iter()
        .map(|i| crate::run::job_id("r", *i))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    let keys: Vec<String> = [1, 9_999, 10_000, u32::MAX]
        .iter()
        .map(|a| crate::store::result_key("r-1", *a))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

/// Finding 6. A submit had no size limit and was expanded in memory on the scheduler.
#[test]
fn finding_6_a_run_over_the_job_limit_is_refused_before_expansion() {
    let mut config = config();
    config.max_jobs_per_run = 100;
    let mut bed = Bed::with_config(config);
    let (reply, mut rx) = tokio::sync::oneshot::channel();
    bed.step(vec![Command::Submit {
        run: Box::new(run_record("big", 11, 10, bed.clock.now())),
        strict: false,
        reply,
    }]);
    let err = rx.try_recv().expect("answered").expect_err("refused");
    assert!(
        err.to_string().contains("limit of 100 jobs per run"),
        "{err}"
    );
    assert!(bed.store().jobs_of_run("big").expect("jobs").is_empty());
    assert!(bed.store().run("big").expect("run").is_none());
}

/// Finding 7. Regrade wrote results from a request handler, outside the single writer: two at
/// once lost grade history. As a scheduler command, both entries are kept.
#[test]
fn finding_7_two_regrades_at_once_keep_both_history_entries() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 1, 1);
    let job = FakeWorker::assigned(&w1.drain())[0].clone();
    bed.step(vec![w1.result(&job)]);
    let (a, mut ra) = tokio::sync::oneshot::channel();
    let (b, mut rb) = tokio::sync::oneshot::channel();
    bed.step(vec![
        Command::Regrade {
            run_id: "r1".into(),
            suite: None,
            reply: a,
        },
        Command::Regrade {
            run_id: "r1".into(),
            suite: None,
            reply: b,
        },
    ]);
    assert!(ra.try_recv().expect("answered").is_ok());
    assert!(rb.try_recv().expect("answered").is_ok());
    let results = bed.results("r1");
    assert_eq!(results[0].grade_history.len(), 2);
}

/// Finding 7. The scheduler's store work is off the async runtime (its own thread), and a worker's
/// liveness is stamped at the connection: while one slow store call holds the scheduler, a
/// heartbeat that arrives under the fake clock still counts.
#[test]
fn finding_7_a_heartbeat_during_a_slow_store_call_keeps_the_worker() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 1, 1);
    let job = FakeWorker::assigned(&w1.drain())[0].clone();
    bed.step(vec![w1.started(&job)]);
    // The scheduler is inside a store call lasting longer than the lease; the heartbeat reaches
    // the connection half-way through it.
    bed.clock.advance(LEASE_MS - 100);
    let heartbeat = w1.heartbeat(std::slice::from_ref(&job), &[]);
    bed.clock.advance(LEASE_MS - 100);
    bed.tick();
    bed.step(vec![heartbeat]);
    assert!(matches!(bed.jobs("r1")[0].state, JobState::Running { .. }));
}

/// A run finishes exactly when its last job is terminal, and its stored counts say so.
#[test]
fn a_finished_run_stores_its_counts() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 2, &[], &[]);
    bed.submit("r1", 2, 2);
    let mut answered = 0;
    loop {
        let keys = FakeWorker::assigned(&w1.drain());
        if keys.is_empty() {
            break;
        }
        for k in &keys {
            let command = if answered == 0 {
                w1.failed(k, "engine error")
            } else {
                w1.result(k)
            };
            answered += 1;
            bed.step(vec![command]);
        }
    }
    let run = bed.store().run("r1").expect("run").expect("stored");
    assert_eq!(run.state, RunState::Finished);
    let counts = run.counts.expect("counts stored");
    assert_eq!((counts.done, counts.failed, counts.live()), (4, 0, 0));
    assert!(matches!(w1.drain().last(), None | Some(ToWorker::Ack(_))));
}

/// Dead protocol parts (issue 9): the heartbeat's `ram_available_bytes` was never filled, so
/// placement checked memory against the hello's figure for as long as a worker stayed connected.
/// Now the latest heartbeat's figure is the one placement uses, both ways.
#[test]
fn placement_uses_the_ram_of_the_latest_heartbeat() {
    let mut bed = Bed::new();
    let sha = "ab".repeat(32);
    let mut record = worker_record("w1", 1);
    record.models.push(WorkerModel {
        sha256: sha.clone(),
        name: "g".into(),
        size_bytes: 1 << 30,
        file_name: "g.gguf".into(),
    });
    let mut w = bed.join_as(record, &[], &[]);
    // The machine filled up after the hello: 100 MB left for a 1 GiB model.
    let filled = WorkerEvent::Heartbeat {
        running: vec![],
        unacknowledged: vec![],
        draining: false,
        cache: None,
        ram_available_bytes: Some(100_000_000),
    };
    bed.step(vec![w.says(filled)]);
    let mut run = run_record("r1", 1, 1, bed.clock.now());
    run.models[0].sha256 = sha;
    run.models[0].size_bytes = 1 << 30;
    run.models[0].kind = ModelKind::Gguf {
        file_name: "g.gguf".into(),
    };
    bed.submit_record(run);
    bed.step(vec![]);
    assert!(
        !w.drain().iter().any(|k| matches!(k, ToWorker::Assign(_))),
        "a job was placed on a worker without the memory for it"
    );
    // Memory freed: the next heartbeat says so, and the job goes out.
    let freed = WorkerEvent::Heartbeat {
        running: vec![],
        unacknowledged: vec![],
        draining: false,
        cache: None,
        ram_available_bytes: Some(4 << 30),
    };
    bed.step(vec![w.says(freed)]);
    assert!(
        w.drain().iter().any(|k| matches!(k, ToWorker::Assign(_))),
        "the job waits although the worker has the memory now"
    );
}

/// Assignments stay small (issue 9): a run's suite text goes to a connection once; later
/// assignments name it by digest. A new connection gets it again, and a worker that says it does
/// not hold the suite gets its job back unstarted (no attempt used) and the text with the next.
#[test]
fn a_suite_goes_to_a_connection_once_then_by_digest() {
    let mut bed = Bed::new();
    let mut w = bed.join("w1", 1, &[], &[]);
    bed.submit("r1", 3, 1);
    let digest = benchfarm_modelfile::sha256_bytes(suite_of(3).as_bytes());
    let next = |bed: &mut Bed, w: &mut FakeWorker| {
        bed.step(vec![]);
        let a = w
            .drain()
            .into_iter()
            .find_map(|k| match k {
                ToWorker::Assign(a) => Some(a),
                _ => None,
            })
            .expect("an assignment");
        let key = a.key.clone();
        (a, (key.job_id, key.attempt))
    };
    let (first, k1) = next(&mut bed, &mut w);
    assert_eq!(
        (first.suite_toml.as_deref(), first.suite_sha256.as_str()),
        (Some(suite_of(3).as_str()), digest.as_str())
    );
    bed.step(vec![w.result(&k1)]);
    let (second, k2) = next(&mut bed, &mut w);
    assert!(second.suite_toml.is_none(), "sent the suite twice");
    assert_eq!(second.suite_sha256, digest);
    // What stays on the wire per job: the key, the model reference, the task and the digest.
    let small = prost::Message::encoded_len(&crate::grpc::outbound::to_worker(ToWorker::Assign(
        second.clone(),
    )));
    assert!(small < 400, "{small} bytes");
    // The worker lost its copy: the job comes back unstarted, without using an attempt.
    bed.step(vec![w.says(WorkerEvent::Failed {
        job_id: k2.0.clone(),
        attempt: k2.1,
        reason: "suite not held".into(),
        not_started: false,
        refused: false,
        suite_unknown: true,
    })]);
    let (again, k3) = next(&mut bed, &mut w);
    assert_eq!(k3.0, k2.0);
    assert_eq!(
        again.suite_toml.as_deref(),
        Some(suite_of(3).as_str()),
        "the text is sent again"
    );
    let job = bed.store().job(&k2.0).expect("job").expect("stored");
    assert!(
        matches!(job.attempts[0].end, Some(AttemptEnd::Returned(_))),
        "{:?}",
        job.attempts
    );
    bed.step(vec![w.result(&k3)]);
    // A new connection has nothing: the text again.
    let mut w = bed.join("w1", 1, &[], &[]);
    let (third, _) = next(&mut bed, &mut w);
    assert_eq!(third.suite_toml.as_deref(), Some(suite_of(3).as_str()));
}

/// A worker's done and failed counts are written once per step, at the commit (not once per
/// result): they are durable once the step flushed, and a rejoin carries them from memory, where
/// they are never behind the store.
#[test]
fn a_workers_counts_are_written_at_the_commit_and_survive_a_rejoin_and_a_crash() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 2, &[], &[]);
    bed.submit("r1", 2, 1);
    let jobs = FakeWorker::assigned(&w1.drain());
    assert_eq!(jobs.len(), 2, "one job per slot");
    bed.step(vec![
        w1.started(&jobs[0]),
        w1.result(&jobs[0]),
        w1.started(&jobs[1]),
        w1.failed(&jobs[1], "engine crashed"),
    ]);
    let stored = bed.store().worker("w1").unwrap().unwrap();
    assert_eq!((stored.jobs_done, stored.jobs_failed), (1, 1));
    bed.crash(0);
    let stored = bed.store().worker("w1").unwrap().unwrap();
    assert_eq!(
        (stored.jobs_done, stored.jobs_failed),
        (1, 1),
        "the counts were flushed with the result they count"
    );
    let mut w1 = bed.join("w1", 1, &[], &[]);
    let retry = FakeWorker::assigned(&w1.drain());
    assert_eq!(retry.len(), 1, "the failed job again");
    bed.step(vec![w1.started(&retry[0]), w1.result(&retry[0])]);
    // Rejoin in this process's life: the counts come from memory.
    bed.join("w1", 1, &[], &[]);
    let stored = bed.store().worker("w1").unwrap().unwrap();
    assert_eq!((stored.jobs_done, stored.jobs_failed), (2, 1));
}

/// A live run's status counts its queued groups from the index and finds each group's first job
/// near the head of the queue: it says what a walk over every queued job says, for pinned jobs of
/// two models, while some are held and after a failure sent one back to the queue.
#[test]
fn a_live_status_says_what_a_walk_over_every_queued_job_says() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    let mut w2 = bed.join("w2", 1, &[], &[]);
    let mut run = run_record("r1", 3, 2, bed.clock.now());
    let mut other = run.models[0].clone();
    other.name = "other".into();
    other.sha256 = "1".repeat(64);
    run.models.push(other);
    run.placement = crate::records::Placement::EveryWorker;
    let run_id = bed.submit_record(run);
    let walked = |bed: &Bed| {
        let s = &bed.scheduler;
        let run = &s.runs[&run_id];
        let queued = s
            .jobs
            .values()
            .filter(|j| j.run_id == run_id && j.state == JobState::Queued);
        crate::scheduler::status::waiting_reasons(
            run,
            queued,
            |j| s.pending_job(j),
            &s.worker_views(),
        )
    };
    let live = |bed: &Bed| {
        bed.scheduler
            .live_progress(&bed.scheduler.runs[&run_id])
            .waiting
    };
    let reasons = live(&bed);
    assert_eq!(reasons, walked(&bed));
    assert!(reasons.len() >= 2, "a line per model: {reasons:?}");
    let first = FakeWorker::assigned(&w1.drain());
    assert_eq!(first.len(), 1);
    bed.step(vec![
        w1.started(&first[0]),
        w1.failed(&first[0], "engine crashed"),
    ]);
    FakeWorker::assigned(&w2.drain());
    assert_eq!(live(&bed), walked(&bed));
    bed.assert_index_consistent();
}
