//! The core's side of telemetry, on the test bed: the observer it is given hears of each attempt's
//! assignment and end, the `traceparent` it returns travels in the assignment and is stored with
//! the attempt, and the result records that trace's id. No exporter is involved: the observer here
//! only writes down what it is told.

use std::sync::{Arc, Mutex};

use crate::scheduler::ToWorker;

use super::testbed::*;
use crate::records::JobRecord;
use crate::scheduler::observe::{Assigned, Ended, Observer};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Observer for Recorder {
    fn assigned(&mut self, a: Assigned<'_>) -> String {
        self.0.lock().expect("log").push(format!(
            "assigned {} {} on {}",
            a.job.task_id, a.attempt, a.worker_name
        ));
        format!("00-{TRACE}-00f067aa0ba902b7-01")
    }

    fn ended(&mut self, job: &JobRecord, attempt: u32, how: Ended<'_>) {
        let how = match how {
            Ended::Succeeded(r) => format!("succeeded {}", r.grade.verdict),
            Ended::Without { retried, .. } => format!("ended retried={retried}"),
        };
        self.0
            .lock()
            .expect("log")
            .push(format!("{} {attempt} {how}", job.task_id));
    }
}

#[test]
fn the_observer_hears_each_attempt_and_its_trace_is_stored_with_the_result() {
    let mut bed = Bed::new();
    let recorder = Recorder::default();
    bed.scheduler.observe(Box::new(recorder.clone()));
    let mut w1 = bed.join("w1", 1, &[], &[]);
    let run = bed.submit("r1", 1, 1);
    let messages = w1.drain();
    let sent: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            ToWorker::Assign(a) => Some(a.trace_parent.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![format!("00-{TRACE}-00f067aa0ba902b7-01")]);
    let job = FakeWorker::assigned(&messages)[0].clone();
    assert_eq!(
        bed.jobs(&run)[0].attempts[0].trace_parent,
        sent[0],
        "stored with the attempt"
    );
    bed.step(vec![w1.failed(&job, "engine error")]);
    let retry = FakeWorker::assigned(&w1.drain())[0].clone();
    bed.step(vec![w1.result(&retry)]);
    let results = bed.results(&run);
    assert_eq!(results[0].trace_id, TRACE);
    assert_eq!(
        *recorder.0.lock().expect("log"),
        vec![
            "assigned t0 1 on w1".to_string(),
            "t0 1 ended retried=true".into(),
            "assigned t0 2 on w1".into(),
            "t0 2 succeeded pass".into(),
        ]
    );
}
