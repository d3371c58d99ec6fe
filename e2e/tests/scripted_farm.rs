//! A whole run through the farm with scripted models: coordinator + 2 workers, two models over the
//! built-in suite × 3 repetitions. Every job runs exactly once and the report's numbers equal the
//! ones computed here from the scripted answers' known grades (the suite's examples, whose expected
//! grades are written in the suite, not computed by the grader under test).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use benchfarm_coordinator::job::JobState;
use benchfarm_coordinator::store::Store;
use benchfarm_proto::v1 as pb;
use benchfarm_suite::{Suite, Verdict};
use common::*;

/// A scripted model answering each task, repetition r, with the example of grade `pick[r]` (falling
/// back to the first grade the task has an example of). Returns the TOML and the expected grades.
fn scripted(
    suite: &Suite,
    name: &str,
    pick: [Verdict; 3],
) -> (String, BTreeMap<(String, u32), Verdict>) {
    let mut toml = format!("name = \"{name}\"\ntokens_per_second = 2000.0\n[answers]\n");
    let mut expected = BTreeMap::new();
    for task in &suite.tasks {
        let mut answers = Vec::new();
        for (rep, want) in pick.iter().enumerate() {
            let example = task
                .examples
                .iter()
                .find(|e| e.grade == *want)
                .or_else(|| task.examples.iter().find(|e| e.grade == Verdict::Fail))
                .expect("every built-in task has a fail example");
            answers.push(toml_string(&example.answer));
            expected.insert((task.id.clone(), rep as u32), example.grade);
        }
        toml.push_str(&format!("\"{}\" = [{}]\n", task.id, answers.join(", ")));
    }
    (toml, expected)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn counts(grades: impl Iterator<Item = Verdict>) -> (u64, u64, u64) {
    grades.fold((0, 0, 0), |(p, h, f), v| match v {
        Verdict::Pass => (p + 1, h, f),
        Verdict::Partial => (p, h + 1, f),
        Verdict::Fail => (p, h, f + 1),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scripted_models_over_the_builtin_suite() {
    let dir = tempfile::tempdir().unwrap();
    let suite = Suite::builtin("agent-coding").unwrap();
    let (oracle, oracle_expected) = scripted(
        &suite,
        "oracle",
        [Verdict::Pass, Verdict::Pass, Verdict::Partial],
    );
    let (weak, weak_expected) = scripted(
        &suite,
        "weak",
        [Verdict::Fail, Verdict::Partial, Verdict::Fail],
    );
    std::fs::write(dir.path().join("oracle.toml"), oracle).unwrap();
    std::fs::write(dir.path().join("weak.toml"), weak).unwrap();
    let request = plan(
        dir.path(),
        "suite = \"agent-coding\"\nrepetitions = 3\nseed = 1\n\
         [[models]]\nscripted = \"oracle.toml\"\n[[models]]\nscripted = \"weak.toml\"\n",
    );

    let server = start_server(&dir.path().join("data"), Duration::from_secs(30)).await;
    let url = url(&server);
    let w1 = start_scripted_worker(&url, "w1", dir.path());
    let w2 = start_scripted_worker(&url, "w2", dir.path());
    let mut client = client(&url).await;
    wait_workers(&mut client, 2).await;

    let submitted = client.submit_run(request).await.unwrap().into_inner();
    assert_eq!(submitted.jobs, 60);
    let status = wait_run(&mut client, &submitted.run_id, Duration::from_secs(120)).await;
    assert_eq!(
        (status.state.as_str(), status.jobs_done, status.jobs_failed),
        ("finished", 60, 0)
    );

    let report = report_json(&mut client, &submitted.run_id).await;
    for (index, (name, expected)) in [("oracle", &oracle_expected), ("weak", &weak_expected)]
        .into_iter()
        .enumerate()
    {
        let model = &report["models"][index];
        assert_eq!(model["name"], name);
        let (pass, partial, fail) = counts(expected.values().copied());
        assert_eq!(
            (
                model["n"].as_u64(),
                model["pass"].as_u64(),
                model["partial"].as_u64(),
                model["fail"].as_u64()
            ),
            (Some(30), Some(pass), Some(partial), Some(fail)),
            "{name}"
        );
        let score = (pass as f64 + 0.5 * partial as f64) / 30.0;
        assert!(
            (model["score"].as_f64().unwrap() - score).abs() < 1e-12,
            "{name}: {} != {score}",
            model["score"]
        );
        let ci = model["score_ci95"].as_array().unwrap();
        assert!(ci[0].as_f64().unwrap() <= score && score <= ci[1].as_f64().unwrap());
        for task in model["tasks"].as_array().unwrap() {
            let id = task["id"].as_str().unwrap();
            let (p, h, f) = counts(
                expected
                    .iter()
                    .filter(|((t, _), _)| t == id)
                    .map(|(_, v)| *v),
            );
            assert_eq!(
                (
                    task["pass"].as_u64(),
                    task["partial"].as_u64(),
                    task["fail"].as_u64()
                ),
                (Some(p), Some(h), Some(f)),
                "{name} {id}"
            );
        }
    }
    let table = client
        .get_report(pb::GetReportRequest {
            run_id: submitted.run_id.clone(),
            format: "table".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .body;
    assert!(
        table.starts_with("| Model | Size | Score | ±95% | Time | tg tok/s | Workers |")
            || table.contains("| Model"),
        "{table}"
    );

    w1.leave().await;
    w2.leave().await;
    server.shutdown().await.unwrap();

    // Every job ran exactly once: one counted result each, done at that attempt, both workers used.
    let store = Store::open_waiting(&dir.path().join("data"), Duration::from_secs(10)).unwrap();
    let jobs = store.jobs_of_run(&submitted.run_id).unwrap();
    let results = store.results_of_run(&submitted.run_id).unwrap();
    assert_eq!(jobs.len(), 60);
    let mut workers = std::collections::BTreeSet::new();
    for job in &jobs {
        let counted: Vec<_> = results
            .iter()
            .filter(|r| r.job_id == job.id && r.counted)
            .collect();
        assert_eq!(
            counted.len(),
            1,
            "job {} has {} counted results",
            job.id,
            counted.len()
        );
        assert_eq!(
            job.state,
            JobState::Done {
                attempt: counted[0].attempt
            }
        );
        assert_eq!(
            job.attempts.len(),
            1,
            "job {} ran {} times",
            job.id,
            job.attempts.len()
        );
        assert_eq!(counted[0].threads, 1);
        workers.insert(counted[0].worker_name.clone());
    }
    assert_eq!(workers.len(), 2, "both workers ran jobs: {workers:?}");
}
