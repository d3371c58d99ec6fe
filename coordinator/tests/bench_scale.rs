//! The scale bench in its reduced CI form: 100 simulated workers and 10,000 jobs against a real
//! `coordinator serve` process. It asserts only what must always hold — the run completes with
//! every job counted exactly once (`bench` fails otherwise) — and prints the figures; the targets
//! are measured by `coordinator bench` on a release build (docs/benchmarks.md), not asserted in a
//! timed test.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_workers_and_ten_thousand_jobs_each_counted_once() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_coordinator"));
    let figures = benchfarm_coordinator::cli::bench::bench(exe, 100, 10_000, None, &[])
        .await
        .expect("the bench run completes with every job counted once");
    assert_eq!(figures.jobs, 10_000);
    assert_eq!(figures.workers, 100);
}
