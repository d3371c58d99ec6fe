//! Reports read from the store a record at a time: the same inputs as the pure mapping over
//! the collected records, and a summary report (no answers held) that aggregates and renders
//! exactly as the full one. Driven on the test bed, so the store holds what a real run stores:
//! graded and failed answers, a failed attempt and its retry.

use benchfarm_report::Format;

use super::testbed::*;
use crate::reporting::{self, Detail, Inputs};
use crate::scheduler::WorkerEvent;

fn as_json(inputs: &Inputs) -> (String, String, String) {
    (
        serde_json::to_string(&inputs.outcomes).unwrap(),
        serde_json::to_string(&inputs.failures).unwrap(),
        serde_json::to_string(&inputs.info).unwrap(),
    )
}

#[test]
fn a_streamed_report_matches_the_collected_one_and_a_summary_holds_no_answers() {
    let mut bed = Bed::new();
    let mut w1 = bed.join("w1", 1, &[], &[]);
    let run_id = bed.submit("r1", 3, 4);
    let mut n = 0;
    loop {
        let assigned = FakeWorker::assigned(&w1.drain());
        let Some(key) = assigned.first() else { break };
        bed.step(vec![w1.started(key)]);
        n += 1;
        if n == 2 {
            // One attempt fails: a failure line, and the job is retried.
            bed.step(vec![w1.failed(key, "engine crashed")]);
            continue;
        }
        let mut answer = result(key);
        if n % 3 == 0 {
            // The bed's suite passes answers containing "answer": this one fails.
            answer.answer = "nothing useful".into();
        }
        bed.step(vec![w1.says(WorkerEvent::Result(Box::new(answer)))]);
    }
    let store = bed.store();
    let run = store.run(&run_id).unwrap().unwrap();
    let jobs = store.jobs_of_run(&run_id).unwrap();
    let results = store.results_of_run(&run_id).unwrap();
    assert_eq!(results.len(), 12, "every job answered once");
    let collected = reporting::inputs(&run, &jobs, &results, &store.workers().unwrap());

    let full = reporting::load(&store, &run, Detail::Full).unwrap();
    assert_eq!(as_json(&full), as_json(&collected));
    assert_eq!(full.failures.len(), 1);
    assert!(full.outcomes.iter().all(|o| !o.answer.is_empty()));

    let summary = reporting::load(&store, &run, Detail::Summary).unwrap();
    assert_eq!(summary.outcomes.len(), full.outcomes.len());
    assert!(summary.outcomes.iter().all(|o| o.answer.is_empty()));
    let full_report = benchfarm_report::aggregate(&full.info, &full.outcomes);
    let summary_report = benchfarm_report::aggregate(&summary.info, &summary.outcomes);
    assert_eq!(
        serde_json::to_string(&summary_report).unwrap(),
        serde_json::to_string(&full_report).unwrap()
    );
    let passed = full_report.models[0].pass;
    assert!(
        passed > 0 && passed < 12,
        "a mixed run: {passed} of 12 passed"
    );
    // What the server renders (summary inputs for these formats) is what the full inputs give.
    for format in [Format::Json, Format::Markdown, Format::Csv, Format::Table] {
        let served = reporting::render(&store, &run, format).unwrap();
        let from_full = benchfarm_report::render_run(
            &benchfarm_report::throughput::with_throughput(full_report.clone(), &full.throughput),
            &full.outcomes,
            &full.failures,
            format,
        );
        assert_eq!(served, from_full, "{format:?}");
    }
}
