//! What one worker may claim: slots over `--max-worker-slots` are cut to it, and however many
//! slots (and prefetch) it has, it holds at most `--max-worker-in-flight` jobs at once.

use super::testbed::*;
use crate::limits::Limits;

#[test]
fn a_worker_claiming_a_thousand_slots_gets_the_slot_limit() {
    let mut bed = Bed::with_config(crate::scheduler::Config {
        limits: Limits {
            worker_slots: 8,
            worker_in_flight: 100,
            ..Limits::DEFAULT
        },
        ..config()
    });
    let mut w1 = bed.join("w1", 1000, &[], &[]);
    bed.submit("r1", 50, 1);
    assert_eq!(FakeWorker::assigned(&w1.drain()).len(), 8);
    let stored = bed.scheduler.store.worker("w1").unwrap().unwrap();
    assert_eq!(stored.slots, 8, "the claim is cut, not stored");
}

#[test]
fn in_flight_jobs_are_capped_whatever_the_slots_and_prefetch() {
    let mut bed = Bed::with_config(crate::scheduler::Config {
        prefetch: 4,
        limits: Limits {
            worker_slots: 8,
            worker_in_flight: 5,
            ..Limits::DEFAULT
        },
        ..config()
    });
    let mut w1 = bed.join("w1", 8, &[], &[]);
    bed.submit("r1", 50, 1);
    assert_eq!(FakeWorker::assigned(&w1.drain()).len(), 5);
}
