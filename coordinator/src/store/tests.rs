//! Store round trips on a temporary sled database.

use super::*;
use crate::job::JobState;
use crate::records::*;
use benchfarm_suite::{Grade, Verdict};

fn run(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        created_unix_ms: 1,
        label: "plan.toml".into(),
        suite_name: "s".into(),
        suite_version: "1".into(),
        suite_toml: "name = 's'".into(),
        models: vec![RunModel {
            name: "m".into(),
            sha256: "0".repeat(64),
            size_bytes: 0,
            kind: ModelKind::Scripted {
                toml: String::new(),
            },
        }],
        tasks: vec![RunTask {
            id: "t".into(),
            category: "c".into(),
            max_tokens: 64,
        }],
        throughput: Vec::new(),
        repetitions: 2,
        adaptive: None,
        model_repetitions: Vec::new(),
        stop_reasons: Vec::new(),
        seed: 1,
        placement: Default::default(),
        require: Default::default(),
        jobs_total: 2,
        state: RunState::Running,
        finished_unix_ms: None,
        suite_history: vec![],
        counts: None,
        trace_parent: String::new(),
    }
}

fn result(job_id: &str, attempt: u32) -> ResultRecord {
    ResultRecord {
        job_id: job_id.into(),
        attempt,
        run_id: crate::run::run_of_job(job_id).unwrap_or_default().into(),
        worker_id: "w".into(),
        worker_name: "w".into(),
        hardware_class: "x".into(),
        threads: 1,
        answer: "ok".into(),
        worker_grade: None,
        answer_truncated_from: None,
        grade: Grade {
            verdict: Verdict::Pass,
            score: 1.0,
            extracted: "ok".into(),
            checks: vec![],
        },
        timings: Timings::default(),
        chat_template: "scripted".into(),
        stop: "eos".into(),
        received_unix_ms: 2,
        counted: true,
        grade_history: vec![],
        build_features: vec![],
        cpu_features: vec![],
        truncated: false,
        trace_id: String::new(),
        remote: None,
        throughput: None,
    }
}

#[test]
fn runs_jobs_and_results_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let r = run("r1");
        let jobs = crate::run::expand(&r);
        store.put_jobs(&jobs).unwrap();
        store.put_run(&r).unwrap();
        store.put_run(&run("r10")).unwrap();
        store.put_jobs(&crate::run::expand(&run("r10"))).unwrap();
        assert!(store.insert_result(&result(&jobs[0].id, 1)).unwrap());
        // The same (job, attempt) again is recognised and not stored twice.
        assert!(!store.insert_result(&result(&jobs[0].id, 1)).unwrap());
        assert!(store.insert_result(&result(&jobs[0].id, 2)).unwrap());
        store.flush().unwrap();
    }
    let store = Store::open_waiting(dir.path(), std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(store.runs().unwrap().len(), 2);
    // Prefix scans do not mix run r1 with run r10.
    assert_eq!(store.jobs_of_run("r1").unwrap().len(), 2);
    assert_eq!(store.results_of_run("r1").unwrap().len(), 2);
    assert_eq!(store.results_of_run("r10").unwrap().len(), 0);
    let job = store.job("r1-0000000000").unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(store.results_of_job("r1-0000000000").unwrap().len(), 2);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .kv
            .insert(kv::Tree::Meta, b"schema_version", b"99".to_vec())
            .unwrap();
        store.flush().unwrap();
    }
    let err = Store::open_waiting(dir.path(), std::time::Duration::from_secs(10)).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

/// The one-at-a-time scans see what the collecting scans see, in the same order, skip (and
/// report) what they cannot decode, and a run's jobs written in more than one batch are all
/// stored: on sled and on the in-memory backend.
#[test]
fn streaming_scans_match_collecting_scans_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let stores = [
        Store::open(dir.path()).unwrap(),
        Store::in_memory(MemoryKv::new()).unwrap(),
    ];
    for store in stores {
        let mut r = run("r1");
        // More jobs than one write batch holds (1,024).
        r.repetitions = 2_500;
        let jobs = crate::run::expand(&r);
        assert_eq!(jobs.len(), 2_500);
        store.put_jobs(&jobs).unwrap();
        store.put_run(&r).unwrap();
        for job in jobs.iter().step_by(7) {
            store.insert_result(&result(&job.id, 1)).unwrap();
        }
        // One undecodable result among them.
        let bad = result_key(&jobs[3].id, 1);
        store
            .kv
            .insert(kv::Tree::Results, bad.as_bytes(), b"{not json".to_vec())
            .unwrap();
        store.flush().unwrap();

        let mut streamed_jobs = Vec::new();
        store
            .for_each_job_of_run("r1", |j| streamed_jobs.push(j.id))
            .unwrap();
        let collected: Vec<String> = store
            .jobs_of_run("r1")
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(streamed_jobs.len(), 2_500);
        assert_eq!(streamed_jobs, collected);

        let mut streamed = Vec::new();
        store
            .for_each_result_of_run("r1", |res| streamed.push((res.job_id, res.attempt)))
            .unwrap();
        let collected: Vec<(String, u32)> = store
            .results_of_run("r1")
            .unwrap()
            .into_iter()
            .map(|res| (res.job_id, res.attempt))
            .collect();
        assert_eq!(streamed.len(), 2_500_usize.div_ceil(7));
        assert_eq!(streamed, collected);
        let skipped = store.skipped();
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(skipped[0].key, bad);
    }
}
