//! What grading one answer costs the coordinator, the work `SchedulerHandle::grade` moves off the
//! scheduler thread: every task of the built-in suite grading its own example answers, and the
//! same answers grown to the stored-answer limit (64 KiB, the worst a worker can send), plus an
//! answer-as-regex task given a catastrophic pattern. `cargo bench -p benchfarm-coordinator
//! --bench grading` (docs/benchmarks.md).

use std::time::{Duration, Instant};

use benchfarm_coordinator::limits::Limits;

fn time(rounds: u32, f: impl Fn()) -> Duration {
    let start = Instant::now();
    for _ in 0..rounds {
        f();
    }
    start.elapsed() / rounds
}

fn main() {
    let suite = benchfarm_suite::Suite::builtin("agent-coding").expect("built-in suite");
    let limit = Limits::DEFAULT.answer_bytes;
    let mut typical = Vec::new();
    let mut longest = Vec::new();
    for task in &suite.tasks {
        for example in &task.examples {
            typical.push((
                time(20, || {
                    std::hint::black_box(task.grade(&example.answer));
                }),
                task.id.clone(),
            ));
            let mut big = example
                .answer
                .repeat(limit / example.answer.len().max(1) + 1);
            benchfarm_coordinator::grading::truncate_answer(&mut big, limit);
            longest.push((
                task.id.clone(),
                time(5, || {
                    std::hint::black_box(task.grade(&big));
                }),
            ));
        }
    }
    typical.sort();
    longest.sort_by_key(|(_, d)| *d);
    let p50 = typical[typical.len() / 2].0;
    let (max, max_task) = typical[typical.len() - 1].clone();
    let (worst_task, worst) = longest.last().cloned().expect("examples");
    let big_p50 = longest[longest.len() / 2].1;
    // A write-a-regex task answered with a catastrophic pattern, at the answer-regex bound.
    let regex_task = suite
        .tasks
        .iter()
        .find(|t| format!("{:?}", t.grading).contains("RegexAccepts"));
    let catastrophic = regex_task.map(|t| {
        time(3, || {
            std::hint::black_box(t.grade("(a+)+$"));
        })
    });
    println!(
        "grading cost per answer, built-in suite ({} example answers)",
        typical.len()
    );
    println!(
        "  example answers:        p50 {:>9.1} us   max {:>9.1} us ({max_task})",
        us(p50),
        us(max)
    );
    println!(
        "  grown to {limit} bytes:  p50 {:>9.1} us   max {:>9.1} us ({worst_task})",
        us(big_p50),
        us(worst)
    );
    if let Some(c) = catastrophic {
        println!("  regex answer (a+)+$:    {:>9.1} us", us(c));
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
