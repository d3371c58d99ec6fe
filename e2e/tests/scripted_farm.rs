//! A whole run through the farm with scripted models: coordinator + 2 workers, two models over the
//! built-in suite × 3 repetitions. Every job runs exactly once and the report's numbers equal the
//! ones computed here from the scripted answers' known grades (the suite's examples, whose expected
//! grades are written in the suite, not computed by the grader under test).

use benchfarm_e2e::browser;

use std::collections::BTreeMap;
use std::time::Duration;

use benchfarm_coordinator::job::JobState;
use benchfarm_coordinator::store::Store;
use benchfarm_e2e::in_process::*;
use benchfarm_suite::{Suite, Verdict};

/// (task, repetition) → what a scripted model answers and the grade the suite says it gets.
type Expected = BTreeMap<(String, u32), Verdict>;

/// A scripted model answering each task, repetition r, with the example of grade `pick[r]` (falling
/// back to the first grade the task has an example of). Returns the TOML, the expected grades and
/// the answers.
fn scripted(
    suite: &Suite,
    name: &str,
    pick: [Verdict; 3],
) -> (String, Expected, BTreeMap<(String, u32), String>) {
    let mut toml = format!("name = \"{name}\"\ntokens_per_second = 2000.0\n[answers]\n");
    let mut expected = BTreeMap::new();
    let mut texts = BTreeMap::new();
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
            texts.insert((task.id.clone(), rep as u32), example.answer.clone());
        }
        toml.push_str(&format!("\"{}\" = [{}]\n", task.id, answers.join(", ")));
    }
    (toml, expected, texts)
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
    let (oracle, oracle_expected, oracle_answers) = scripted(
        &suite,
        "oracle",
        [Verdict::Pass, Verdict::Pass, Verdict::Partial],
    );
    let (weak, weak_expected, weak_answers) = scripted(
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
        (status.state(), status.jobs_done, status.jobs_failed),
        (benchfarm_proto::v1::RunState::Finished, 60, 0)
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
    let table = report_body(&mut client, &submitted.run_id, "table").await;
    assert!(
        table.starts_with("| Model | Size | Score | ±95% | Time | tg tok/s | Workers |")
            || table.contains("| Model"),
        "{table}"
    );

    // jsonl: one line per attempt with every documented field; answers byte for byte.
    let jsonl = report_body(&mut client, &submitted.run_id, "jsonl").await;
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 60);
    for line in &lines {
        for key in JSONL_KEYS {
            assert!(line.get(*key).is_some(), "jsonl line lacks {key}: {line}");
        }
        let task = line["task_id"].as_str().unwrap().to_string();
        let rep = line["repetition"].as_u64().unwrap() as u32;
        let answers = match line["model"].as_str().unwrap() {
            "oracle" => &oracle_answers,
            _ => &weak_answers,
        };
        assert_eq!(line["answer"].as_str().unwrap(), answers[&(task, rep)]);
        assert_eq!(line["run"], submitted.run_id.as_str());
        assert_eq!(line["counted"], true);
    }

    // compare: a real difference is flagged, a model against itself is not.
    let attempts = benchfarm_coordinator::cli::answers::parse_jsonl(&jsonl).unwrap();
    let side = benchfarm_report::Side {
        run: &submitted.run_id,
        suite_name: "agent-coding",
        suite_version: &suite.version,
        outcomes: &attempts.outcomes,
    };
    let options = benchfarm_report::CompareOptions::default();
    let pair = |a: &str, b: &str| vec![(a.to_string(), b.to_string())];
    let differ =
        benchfarm_report::compare(&side, &side, &pair("oracle", "weak"), &options).unwrap();
    assert!(differ.models[0].flagged, "{:?}", differ.models[0]);
    assert!(differ.models[0].diff > 0.0);
    let same =
        benchfarm_report::compare(&side, &side, &pair("oracle", "oracle"), &options).unwrap();
    assert!(!same.models[0].flagged, "{:?}", same.models[0]);
    assert!(same.models[0].tasks.iter().all(|t| !t.flagged));

    // The HTML report in a real browser: the leaderboard's numbers and the heat map's cells are
    // the report's, a drill-down answer is there, and the page makes no request of its own.
    let html = report_body(&mut client, &submitted.run_id, "html").await;
    if let Some(chromium) = browser::chromium() {
        let page = browser::CountingProxy::start(html);
        let profile = dir.path().join("chromium");
        let dom = page.dump_dom(&chromium, &profile);
        for (index, name) in ["oracle", "weak"].into_iter().enumerate() {
            let score = report["models"][index]["score"].as_f64().unwrap();
            let row = format!("<tr data-model=\"{name}\" data-score=\"{score}\"");
            assert!(dom.contains(&row), "leaderboard row {row} not in the DOM");
        }
        let cells = dom.matches("<td data-model=").count();
        assert_eq!(cells, 2 * suite.tasks.len(), "heat map cells");
        let (task, answer) = oracle_answers
            .iter()
            .next()
            .map(|((t, _), a)| (t, a))
            .unwrap();
        assert!(dom.contains(&format!(
            "class=\"drill\" data-model=\"oracle\" data-task=\"{task}\""
        )));
        let escaped = answer
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            dom.contains(&escaped),
            "the answer {answer:?} is not in the drill-down"
        );
        for width in [1280, 360] {
            let png = dir.path().join(format!("report-{width}.png"));
            page.screenshot(&chromium, &profile, width, &png);
            if let Ok(keep) = std::env::var("BENCHFARM_SCREENSHOTS") {
                let _ = std::fs::copy(
                    &png,
                    std::path::Path::new(&keep).join(png.file_name().unwrap()),
                );
            }
        }
        assert!(page.served_the_page());
        assert_eq!(page.requests_beyond_the_page(), Vec::<String>::new());
    }

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
