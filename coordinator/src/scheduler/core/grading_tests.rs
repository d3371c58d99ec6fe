//! The coordinator grades: the stored and counted grade is the coordinator's, a worker's other
//! verdict is kept beside it, and an answer over the stored-answer limit is stored cut and flagged.
//! Driven on the test bed with results that arrive ungraded (the scheduler grades inline then; the
//! server's connections grade before, with the same `Graders`).

use benchfarm_suite::Verdict;

use super::testbed::*;
use crate::job::JobState;
use crate::scheduler::WorkerEvent;

#[test]
fn a_wrong_grade_from_a_worker_is_replaced_and_kept_as_a_disagreement() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    let run = bed.submit("r1", 2, 1);
    let first = FakeWorker::assigned(&w1.drain());
    bed.step(vec![w1.started(&first[0])]);
    // The bed's suite passes any answer containing "answer"; this one does not, yet the worker
    // says pass.
    let mut lie = result(&first[0]);
    lie.answer = "nothing useful".into();
    bed.step(vec![w1.says(WorkerEvent::Result(Box::new(lie)))]);
    let second = FakeWorker::assigned(&w1.drain());
    bed.step(vec![w1.started(&second[0])]);
    // An honest worker: its pass is the coordinator's too.
    bed.step(vec![w1.result(&second[0])]);
    let results = bed.results(&run);
    assert_eq!(results.len(), 2);
    let lied = results.iter().find(|r| r.job_id == first[0].0).unwrap();
    assert_eq!(
        lied.grade.verdict,
        Verdict::Fail,
        "the coordinator's grade is stored"
    );
    assert_eq!(
        lied.worker_grade.as_ref().map(|g| g.verdict),
        Some(Verdict::Pass),
        "the worker's grade is kept as a disagreement"
    );
    assert!(lied.counted);
    let honest = results.iter().find(|r| r.job_id == second[0].0).unwrap();
    assert_eq!(honest.grade.verdict, Verdict::Pass);
    assert_eq!(honest.worker_grade, None);
    assert!(
        bed.jobs(&run)
            .iter()
            .all(|j| matches!(j.state, JobState::Done { .. }))
    );
}

#[test]
fn an_answer_over_the_limit_is_stored_cut_and_flagged_and_graded_as_stored() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    let run = bed.submit("r1", 1, 1);
    let job = FakeWorker::assigned(&w1.drain());
    bed.step(vec![w1.started(&job[0])]);
    let limit = crate::limits::Limits::DEFAULT.answer_bytes;
    let mut long = result(&job[0]);
    // "answer" only past the limit: the stored (cut) answer does not contain it.
    long.answer = format!("{}answer", "x".repeat(limit));
    bed.step(vec![w1.says(WorkerEvent::Result(Box::new(long)))]);
    let stored = &bed.results(&run)[0];
    assert_eq!(stored.answer.len(), limit);
    assert_eq!(stored.answer_truncated_from, Some(limit as u64 + 6));
    assert_eq!(stored.grade.verdict, Verdict::Fail);
    assert_eq!(
        stored.worker_grade.as_ref().map(|g| g.verdict),
        Some(Verdict::Pass)
    );
}
