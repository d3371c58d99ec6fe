//! Adaptive repetitions in the core, on the deterministic test bed: a model whose answers are
//! identical across repetitions stops at its minimum ("deterministic"), a noisy one grows to its
//! maximum ("max reached"), a rule without targets stops at the minimum ("no target"), a model
//! whose interval meets the target stops there ("target met"); the added repetitions are
//! ordinary jobs, counted exactly once, and a coordinator crash at the repetition boundary
//! takes the same decision on resume.

use crate::scheduler::ToWorker;

use super::testbed::*;
use crate::job::JobState;
use crate::records::*;
use crate::scheduler::WorkerEvent;

/// Runs `run` on one worker to its end, answering each job with `answer(task, repetition)`.
/// Returns the stored run and its jobs.
fn run_to_end(
    bed: &mut Bed,
    run: RunRecord,
    answer: impl Fn(&str, u32) -> String,
) -> (RunRecord, Vec<JobRecord>) {
    let id = bed.submit_record(run);
    drive(bed, &id, answer)
}

/// Runs the live run `id` to its end on a worker that joins now (see [`run_to_end`]).
fn drive(
    bed: &mut Bed,
    id: &str,
    answer: impl Fn(&str, u32) -> String,
) -> (RunRecord, Vec<JobRecord>) {
    let mut w = bed.join("w1", 2, &[], &[]);
    for _ in 0..200 {
        bed.step(vec![]);
        for a in assignments(&mut w) {
            let key = a.key.clone();
            let k = (key.job_id.clone(), key.attempt);
            let mut r = result(&k);
            r.answer = answer(&a.task_id, a.repetition);
            bed.step(vec![w.says(WorkerEvent::Result(Box::new(r)))]);
        }
        if bed.run_state(id) != RunState::Running {
            break;
        }
    }
    let stored = bed.store().run(id).expect("run").expect("stored");
    let jobs = bed.store().jobs_of_run(id).expect("jobs");
    (stored, jobs)
}

/// The assignments waiting in `w`'s inbox.
fn assignments(w: &mut FakeWorker) -> Vec<crate::scheduler::Assignment> {
    w.drain()
        .into_iter()
        .filter_map(|k| match k {
            ToWorker::Assign(a) => Some(*a),
            _ => None,
        })
        .collect()
}

fn adaptive_run(id: &str, tasks: usize, rule: AdaptiveRule, now: UnixMs) -> RunRecord {
    let mut run = run_record(id, tasks, rule.min, now);
    run.adaptive = Some(rule);
    run
}

fn assert_counted_once(bed: &Bed, jobs: &[JobRecord]) {
    for job in jobs {
        let JobState::Done { attempt } = job.state else {
            panic!("job {} is {:?}", job.id, job.state);
        };
        let counted: Vec<_> = bed
            .results(&job.run_id)
            .into_iter()
            .filter(|r| r.job_id == job.id && r.counted)
            .collect();
        assert_eq!(counted.len(), 1, "{}", job.id);
        assert_eq!(counted[0].attempt, attempt);
    }
}

#[test]
fn identical_answers_stop_at_the_minimum_as_deterministic() {
    let mut bed = Bed::new();
    let rule = AdaptiveRule {
        min: 2,
        max: 6,
        target_ci: Some(0.01),
        target_rsd: None,
    };
    let run = adaptive_run("r1", 2, rule, bed.clock.now());
    // The same (passing) text for a task whatever the repetition: greedy decoding.
    let (run, jobs) = run_to_end(&mut bed, run, |task, _| format!("answer to {task}"));
    assert_eq!(run.state, RunState::Finished);
    assert_eq!(jobs.len(), 4, "2 tasks x the minimum of 2");
    assert_eq!(run.stop_reasons, [Some(StopReason::Deterministic)]);
    assert_counted_once(&bed, &jobs);
}

#[test]
fn noisy_answers_grow_to_the_maximum() {
    let mut bed = Bed::new();
    let rule = AdaptiveRule {
        min: 2,
        max: 5,
        target_ci: Some(0.01),
        target_rsd: None,
    };
    let run = adaptive_run("r1", 2, rule, bed.clock.now());
    // Right on even repetitions, wrong on odd ones: the interval never narrows to 0.01.
    let (run, jobs) = run_to_end(&mut bed, run, |task, rep| {
        if rep % 2 == 0 {
            format!("answer to {task}")
        } else {
            format!("no idea about {task} ({rep})")
        }
    });
    assert_eq!(run.state, RunState::Finished);
    assert_eq!(jobs.len(), 10, "2 tasks x the maximum of 5");
    assert_eq!(run.stop_reasons, [Some(StopReason::MaxReached)]);
    assert_eq!(run.model_repetitions, [5]);
    assert_eq!(run.jobs_total, 10);
    let mut reps: Vec<u32> = jobs.iter().map(|j| j.repetition).collect();
    reps.sort();
    assert_eq!(reps, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    // Ids continue the run's and sort in order.
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_counted_once(&bed, &jobs);
}

#[test]
fn no_target_stops_at_the_minimum_and_a_met_target_stops_there() {
    let mut bed = Bed::new();
    let vary = |task: &str, rep: u32| format!("answer to {task}, take {rep}");
    let rule = AdaptiveRule {
        min: 2,
        max: 5,
        target_ci: None,
        target_rsd: None,
    };
    let (run, jobs) = run_to_end(&mut bed, adaptive_run("r1", 2, rule, 0), vary);
    assert_eq!(
        (jobs.len(), run.stop_reasons.as_slice()),
        (4, &[Some(StopReason::NoTarget)][..])
    );
    // Different texts, all passing: the interval over repetitions is [1, 1], within any target.
    let rule = AdaptiveRule {
        target_ci: Some(0.05),
        ..rule
    };
    let (run, jobs) = run_to_end(&mut bed, adaptive_run("r2", 2, rule, 0), vary);
    assert_eq!(
        (jobs.len(), run.stop_reasons.as_slice()),
        (4, &[Some(StopReason::TargetMet)][..])
    );
}

#[test]
fn a_crash_at_the_repetition_boundary_takes_the_same_decision_on_resume() {
    let mut bed = Bed::new();
    let rule = AdaptiveRule {
        min: 2,
        max: 3,
        target_ci: Some(0.01),
        target_rsd: None,
    };
    bed.submit_record(adaptive_run("r1", 2, rule, bed.clock.now()));
    let mut w = bed.join("w1", 4, &[], &[]);
    // Right on repetition 0, wrong on 1: the interval stays wide, so a third is added.
    for _ in 0..10 {
        bed.step(vec![]);
        for a in assignments(&mut w).into_iter().filter(|a| a.repetition < 2) {
            let key = a.key.clone();
            let mut r = result(&(key.job_id, key.attempt));
            r.answer = if a.repetition == 0 { "answer" } else { "nope" }.into();
            bed.step(vec![w.says(WorkerEvent::Result(Box::new(r)))]);
        }
    }
    let jobs = bed.store().jobs_of_run("r1").expect("jobs");
    assert_eq!(jobs.len(), 6, "the third repetition was added");
    // Crash and resume: the added jobs are durable and the decision is not taken again.
    bed.crash(0);
    let jobs = bed.store().jobs_of_run("r1").expect("jobs");
    assert_eq!(jobs.len(), 6);
    let third: Vec<&JobRecord> = jobs.iter().filter(|j| j.repetition == 2).collect();
    assert_eq!(third.len(), 2);
    assert!(third.iter().all(|j| !j.state.is_terminal()));
    // The farm carries on: the third repetition runs, and the model stops at its maximum.
    let (run, jobs) = drive(&mut bed, "r1", |_, _| "answer".into());
    assert_eq!(run.state, RunState::Finished);
    assert_eq!(jobs.len(), 6);
    assert_eq!(run.stop_reasons, [Some(StopReason::MaxReached)]);
    assert_counted_once(&bed, &jobs);
}
