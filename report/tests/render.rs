//! Renderers on the shared fixture: exact output where a human checked it, structure elsewhere.

mod common;

use benchfarm_report::{Format, Outcome, Report, RunInfo, Verdict, aggregate, render};
use common::{info, outcome, outcomes};

fn fixture() -> (Report, Vec<Outcome>) {
    let outs = outcomes();
    (aggregate(&info(), &outs), outs)
}

#[test]
fn table_exact() {
    // beta 17/18 = 94.4%, CI [5/6, 1] → ±(1 − 5/6)/2 = ±8.3 points, 1 s/job, 100 tok / 0.5 s;
    // alpha 50.0%, CI [0, 1] → ±50.0, mean wall 5 s; script has no graded job → "—" and goes last.
    // Over repetitions (tasks fixed; see csv_exact): beta [5/6, 1] → ±8.3, alpha [1/3, 2/3] → ±16.7.
    // Footer: 18 graded + 2 failed = 20 of 27 jobs.
    let (r, o) = fixture();
    let expected = "\
| Model  |     Size | Score | ±95% tasks | ±95% reps |   Time | tg tok/s |  Cost | Workers    |
| ------ | -------: | ----: | ---------: | --------: | -----: | -------: | ----: | ---------- |
| beta   |   1.8 GB | 94.4% |       ±8.3 |      ±8.3 | 1.00 s |    200.0 | $0.00 | 2 (w2, w3) |
| alpha  |    98 MB | 50.0% |      ±50.0 |     ±16.7 | 5.00 s |    200.0 | $0.00 | 1 (w1)     |
| script | scripted |     — |          — |         — |      — |        — | $0.00 | —          |
run r1 · suite smoke v1.0 · 3 reps · 20/27 jobs · 2 failed
";
    assert_eq!(render(&r, &o, Format::Table), expected);
}

#[test]
fn remote_models_show_remote_size_and_their_hand_computed_cost() {
    // A priced remote model with a scripted usage pattern: three jobs of 1,200 prompt and 300,
    // 500 and 0 generated tokens at $3 / $15 per million, and a superseded fourth result of 100
    // prompt and 50 generated tokens (it was paid for, so it is in the bill):
    // 3·1200·3 + (300+500)·15 = 10,800 + 12,000 = 22,800 µ$ → $0.0228, + 100·3 + 50·15 = 1,050
    // µ$ → $0.02385 in all; per job 0.02385 / 4.
    let mut i = info();
    i.models.push(benchfarm_report::ModelInfo {
        name: "cloud".into(),
        size_bytes: 0,
        sha256: "c".repeat(64),
        kind: "remote".into(),
        price_per_mtok: Some(benchfarm_report::Price {
            input: 3.0,
            output: 15.0,
        }),
    });
    let price = i.models.last().and_then(|m| m.price_per_mtok);
    let mut outs = Vec::new();
    for (k, (prompt, generated, counted)) in [
        (1200, 300, true),
        (1200, 500, true),
        (1200, 0, true),
        (100, 50, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut o = outcome("cloud", "t1", k as u32 % 3, Verdict::Pass);
        o.prompt_tokens = prompt;
        o.gen_tokens = generated;
        o.counted = counted;
        o.cost_usd = benchfarm_report::job_cost("remote", price, prompt, generated);
        outs.push(o);
    }
    let r = aggregate(&i, &outs);
    let cloud = r.models.iter().find(|m| m.name == "cloud").unwrap();
    let hand = (3.0 * 1200.0 * 3.0 + 800.0 * 15.0 + 100.0 * 3.0 + 50.0 * 15.0) / 1e6;
    assert!(
        (cloud.cost_usd.unwrap() - hand).abs() < 1e-12,
        "{:?}",
        cloud.cost_usd
    );
    assert!((cloud.cost_per_job_usd.unwrap() - hand / 4.0).abs() < 1e-12);
    assert!(
        (r.cost_usd.unwrap() - hand).abs() < 1e-12,
        "locals add $0.00"
    );
    let table = render(&r, &outs, Format::Table);
    let row = table.lines().find(|l| l.starts_with("| cloud")).unwrap();
    assert!(
        row.contains("| remote |") || row.contains(" remote |"),
        "{row}"
    );
    assert!(row.contains("$0.02 |"), "{row}");
    assert!(table.contains("· cost $0.02"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&render(&r, &outs, Format::Json)).unwrap();
    let model = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "cloud")
        .unwrap();
    assert!((model["cost_usd"].as_f64().unwrap() - hand).abs() < 1e-12);
    // Without a price the cost is unknown, never 0.
    i.models.last_mut().unwrap().price_per_mtok = None;
    for o in &mut outs {
        o.cost_usd = benchfarm_report::job_cost("remote", None, o.prompt_tokens, o.gen_tokens);
    }
    let r = aggregate(&i, &outs);
    assert_eq!(r.cost_usd, None);
    let table = render(&r, &outs, Format::Table);
    let row = table.lines().find(|l| l.starts_with("| cloud")).unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells[8], "—", "{table}");
}

#[test]
fn table_ties_keep_plan_order_and_footer_shows_unfinished_state() {
    let mut i = info();
    i.state = "running".into();
    i.repetitions = 1;
    // alpha and beta both 1/1: tie, so plan order (alpha first) decides
    let outs = [
        outcome("alpha", "t1", 0, Verdict::Pass),
        outcome("beta", "t1", 0, Verdict::Pass),
    ];
    let text = render(&aggregate(&i, &outs), &outs, Format::Table);
    let rows: Vec<&str> = text.lines().skip(2).collect();
    assert!(rows[0].starts_with("| alpha "), "{text}");
    assert!(rows[1].starts_with("| beta "), "{text}");
    assert!(rows[2].starts_with("| script "), "{text}");
    assert!(
        text.ends_with("· 1 rep · 4/27 jobs · 2 failed · running\n"),
        "{text}"
    );
}

#[test]
fn table_many_workers_shows_count_only() {
    let outs: Vec<Outcome> = (0..4)
        .map(|k| {
            let mut o = outcome("alpha", "t1", k, Verdict::Pass);
            o.worker_name = format!("w{k}");
            o
        })
        .collect();
    let text = render(&aggregate(&info(), &outs), &outs, Format::Table);
    let alpha = text.lines().nth(2).unwrap();
    // the Workers column is 7 wide ("Workers"), so the cell is "4" padded to 7
    assert!(alpha.ends_with("| 4       |"), "{alpha}");
    assert!(!alpha.contains("w0"), "{alpha}");
}

#[test]
fn markdown_sections() {
    let (r, o) = fixture();
    let md = render(&r, &o, Format::Markdown);
    assert!(md.starts_with("# benchfarm run r1\n"));
    for section in [
        "## Summary",
        "## Per task",
        "## Per category",
        "## Per hardware",
        "## Failed jobs",
    ] {
        assert!(md.contains(section), "missing {section}\n{md}");
    }
    assert!(
        md.contains("| t2   | edit     | 1/3 · 1 partial | 3/3 ✓           | — · 1 err |"),
        "{md}"
    );
    // edit for beta: 6/6 = 100.0%; fix for beta 2.5/3 = 83.3%
    assert!(
        md.contains("| edit     |     2 | 75.0% | 100.0% |      — |"),
        "{md}"
    );
    assert!(md.contains("| gpu-h100 | beta  |    3 |  83.3% |"), "{md}");
    // the reason's line break is flattened so the list item stays one item
    assert!(
        md.contains("- `script` · `t1` · rep 0: worker crashed segfault\n"),
        "{md}"
    );
}

#[test]
fn markdown_empty_run() {
    let md = render(&aggregate(&RunInfo::default(), &[]), &[], Format::Markdown);
    assert!(md.contains("No models."));
    assert!(md.contains("No graded jobs yet."));
    assert!(md.contains("## Failed jobs\n\nNone.\n"));
}

#[test]
fn csv_exact() {
    // alpha's walls are 1..9 s in task order, so t1 = mean(1,2,3) = 2, t2 = 5, t3 = 8;
    // beta t3 = 2.5/3 = 0.8333…; script has no graded job, so its score and timings are empty, and
    // its failed jobs (t1 rep 0, t2 rep 0 in the fixture) are counted, not missing.
    // The intervals, by hand (every resample of three has a 1/27 = 3.7 % chance of being all one
    // value, more than the 2.5 % tail, so the 95 % ends are the extreme means): over repetitions
    // alpha t2 {1, ½, 0} → [0, 1] and t1/t3 constant; beta t3 {1, 1, ½} → [½, 1]. The model's
    // over tasks: alpha's task scores {1, ½, 0} → [0, 1]; beta's {1, 1, 5/6} → [5/6, 1]. Over
    // repetitions, tasks fixed: alpha (1 + {0..1} + 0)/3 → [1/3, 2/3]; beta (2 + {½..1})/3 → [5/6, 1].
    let (r, o) = fixture();
    let expected = "\
model,task,category,n,pass,partial,fail,score,mean_seconds,gen_tokens_per_second,failed_jobs,grade_disagreements,implausible_timings,model_cost_usd,score_ci95_repetitions_lo,score_ci95_repetitions_hi,model_score_ci95_tasks_lo,model_score_ci95_tasks_hi,model_score_ci95_repetitions_lo,model_score_ci95_repetitions_hi
alpha,t1,edit,3,3,0,0,1,2,200,0,0,0,0,1,1,0,1,0.3333333333333333,0.6666666666666666
alpha,t2,edit,3,1,1,1,0.5,5,200,0,0,0,0,0,1,0,1,0.3333333333333333,0.6666666666666666
alpha,t3,fix,3,0,0,3,0,8,200,0,0,0,0,0,0,0,1,0.3333333333333333,0.6666666666666666
beta,t1,edit,3,3,0,0,1,1,200,0,0,0,0,1,1,0.8333333333333334,1,0.8333333333333334,1
beta,t2,edit,3,3,0,0,1,1,200,0,0,0,0,1,1,0.8333333333333334,1,0.8333333333333334,1
beta,t3,fix,3,2,1,0,0.8333333333333334,1,200,0,0,0,0,0.5,1,0.8333333333333334,1,0.8333333333333334,1
script,t1,edit,0,0,0,0,,,,1,0,0,0,,,,,,
script,t2,edit,0,0,0,0,,,,1,0,0,0,,,,,,
script,t3,fix,0,0,0,0,,,,0,0,0,0,,,,,,
";
    assert_eq!(render(&r, &o, Format::Csv), expected);
}

#[test]
fn csv_quotes_awkward_names() {
    let mut i = info();
    i.models[0].name = "a,\"b\"\nc".into();
    i.tasks[0].category = "x,y".into();
    let outs = [outcome("a,\"b\"\nc", "t1", 0, Verdict::Pass)];
    let csv = render(&aggregate(&i, &outs), &outs, Format::Csv);
    assert!(
        csv.contains("\n\"a,\"\"b\"\"\nc\",t1,\"x,y\",1,1,0,0,1,1,200,0,0,0,0,1,1,1,1,1,1\n"),
        "{csv}"
    );
}

#[test]
fn json_contract_fields() {
    let (r, o) = fixture();
    let text = render(&r, &o, Format::Json);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["run"], "r1");
    assert_eq!(v["suite"]["name"], "smoke");
    assert_eq!(v["suite"]["version"], "1.0");
    assert_eq!(v["repetitions"], 3);
    let m = &v["models"][1];
    for key in [
        "name",
        "size_bytes",
        "n",
        "pass",
        "partial",
        "fail",
        "score",
        "score_ci95",
        "mean_seconds",
        "tasks",
        "errors",
        "score_stddev",
        "gen_tokens_per_second",
        "workers",
        "threads",
        "categories",
    ] {
        assert!(m.get(key).is_some(), "model lacks {key}");
    }
    assert_eq!(m["name"], "beta");
    assert_eq!(m["size_bytes"], 1_800_000_000u64);
    assert_eq!(m["score_ci95"].as_array().unwrap().len(), 2);
    let t = &m["tasks"][2];
    for key in [
        "id",
        "category",
        "n",
        "pass",
        "partial",
        "fail",
        "score",
        "score_stddev",
    ] {
        assert!(t.get(key).is_some(), "task lacks {key}");
    }
    let h = &v["hardware"][0];
    for key in [
        "class",
        "model",
        "n",
        "score",
        "gen_tokens_per_second",
        "mean_seconds",
        "workers",
    ] {
        assert!(h.get(key).is_some(), "hardware lacks {key}");
    }
    for key in ["state", "jobs_total", "jobs_done", "jobs_failed"] {
        assert!(v.get(key).is_some(), "report lacks {key}");
    }
    // missing values are null, not 0
    assert!(v["models"][2]["mean_seconds"].is_null());
    // and it reads back into the same report (all numbers here are short decimals)
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back.models.len(), 3);
    assert_eq!(back.models[1].score_ci95, r.models[1].score_ci95);
    assert_eq!(back.hardware, r.hardware);
}

#[test]
fn jsonl_one_line_per_outcome() {
    let (r, mut o) = fixture();
    o[0].worker_name = "multi\nline".into();
    let text = render(&r, &o, Format::Jsonl);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 18);
    let first: Outcome = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first, o[0]);
    let v: serde_json::Value = serde_json::from_str(lines[17]).unwrap();
    assert_eq!(v["verdict"], "partial");
    // every Outcome field (16 original + 22 added by the results issue + decode_tokens and
    // decode_ms + truncated, worker_verdict, answer_truncated_from and implausible_timing from
    // the trust issue + trace_id + cost_usd and remote), plus schema, reason and job_failed
    let own = serde_json::to_value(&o[17]).unwrap();
    let own = own.as_object().unwrap();
    assert_eq!(own.len(), 47);
    for key in own.keys() {
        assert!(v.get(key).is_some(), "line lacks Outcome field {key}");
    }
    assert_eq!(v.as_object().unwrap().len(), 47 + 3, "every Outcome field");
    assert_eq!(v["schema"], 4);
    assert_eq!(render(&r, &[], Format::Jsonl), "");
}

#[test]
fn jsonl_answers_round_trip_byte_for_byte_and_failures_are_lines() {
    use benchfarm_report::{CheckOutcome, FailedAttempt, GradeEntry, render_run};
    let answer = "Voilà — 日本語 🚀\n```rust\nfn main() { println!(\"hi\\n\"); }\n```\r\n\ttab \\ \"q\" 'a' <script>&amp;\u{0}\u{7f}";
    let mut o = outcome("alpha", "t1", 2, Verdict::Partial);
    o.run = "r1".into();
    o.job = "j-7".into();
    o.attempt = 2;
    o.counted = false;
    o.model_sha256 = "ab".repeat(32);
    o.model_size_bytes = 98_000_000;
    o.category = "edit".into();
    o.answer = answer.into();
    o.extracted = "fn main() {}\n".into();
    o.score = Some(0.5);
    o.checks = vec![
        CheckOutcome {
            group: "must".into(),
            check: "contains \"fn\"".into(),
            held: true,
        },
        CheckOutcome {
            group: "must".into(),
            check: "compiles".into(),
            held: false,
        },
    ];
    o.llama_cpp_build = "b4589".into();
    o.chat_template = "chatml".into();
    o.stop = "eos".into();
    o.suite_name = "smoke".into();
    o.suite_version = "1.0".into();
    o.seed = Some(42);
    o.temperature = Some(0.0);
    o.hardware_tags = vec!["avx2".into(), "avx512".into()];
    o.grade_history = vec![GradeEntry {
        verdict: Verdict::Fail,
        score: 0.0,
        at_unix_ms: 1,
        suite_version: "0.9".into(),
    }];
    let f = FailedAttempt {
        run: "r1".into(),
        job: "j-8".into(),
        attempt: 1,
        model: "script".into(),
        task_id: "t1".into(),
        reason: "worker crashed\nsegfault".into(),
        job_failed: true,
        ..Default::default()
    };
    let (r, _) = fixture();
    let text = render_run(
        &r,
        std::slice::from_ref(&o),
        std::slice::from_ref(&f),
        Format::Jsonl,
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    // the answer, read back, is the very same bytes; the whole outcome reads back equal
    let back: Outcome = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(back.answer.as_bytes(), answer.as_bytes());
    assert_eq!(back, o);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["checks"][1]["held"], false);
    assert_eq!(v["counted"], false);
    assert!(v["reason"].is_null());
    let e: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(e["verdict"], "error");
    assert_eq!(e["reason"], "worker crashed\nsegfault");
    assert_eq!(e["job_failed"], true);
    let mut ka: Vec<&String> = v.as_object().unwrap().keys().collect();
    let mut kb: Vec<&String> = e.as_object().unwrap().keys().collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb, "a failure line has every key a result line has");
    // same inputs, same bytes
    assert_eq!(text, render_run(&r, &[o], &[f], Format::Jsonl));
}

#[test]
fn csv_neutralises_formulas_and_keeps_one_header() {
    let mut i = info();
    i.models[0].name = "=cmd|' /C calc'!A0".into();
    i.tasks[0].id = "@t1".into();
    let outs = [outcome("=cmd|' /C calc'!A0", "@t1", 0, Verdict::Pass)];
    let csv = render(&aggregate(&i, &outs), &outs, Format::Csv);
    assert_eq!(csv.matches("model,task,").count(), 1, "one header row");
    assert!(
        csv.contains("\n'=cmd|' /C calc'!A0,'@t1,edit,1,1,0,0,1,1,200,0,0,0,0,1,1,1,1,1,1\n"),
        "{csv}"
    );
    // no record starts with a formula character
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| !l.starts_with(['=', '+', '-', '@']))
    );
}

#[test]
fn markdown_intervals_cells_and_timings() {
    let (r, o) = fixture();
    let md = render(&r, &o, Format::Markdown);
    for section in [
        "## Intervals",
        "## Per model and task",
        "## Per model, task and hardware",
        "## Timings",
    ] {
        assert!(md.contains(section), "missing {section}\n{md}");
    }
    // alpha: over tasks [0, 100]%, over repetitions [1/3, 2/3] = [33.3, 66.7]%, SD 1/6 = 16.7 pts
    assert!(
        md.contains(
            "| alpha  | 50.0% |  [0.0, 100.0]% |        [33.3, 66.7]% |                 16.7 | —       |"
        ),
        "{md}"
    );
    // alpha t2: walls 4, 5, 6 s → median 5, p90 = 5 + 0.8 = 5.8
    assert!(md.contains("| alpha | t2   |    3 |  50.0% |"), "{md}");
    assert!(md.contains("5.00 s | 5.80 s |"), "{md}");
    // beta's t3 ran on gpu-h100: one (hardware, model, task) row
    assert!(
        md.contains("| gpu-h100 | beta  | t3   |    3 |  83.3% |"),
        "{md}"
    );
    // alpha timings: 9 warm jobs, walls 1..9 → median 5, p90 8.2, no cold job
    assert!(
        md.contains("| alpha |    9 |      5.00 s | 5.00 s |"),
        "{md}"
    );
    assert!(md.contains("8.20 s |         0 |"), "{md}");
}
