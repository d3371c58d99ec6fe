//! `aggregate` on hand-checkable inputs: every expected number is derived in a comment.

mod common;

use benchfarm_report::{Outcome, RunInfo, Verdict, aggregate};
use common::{info, outcome, outcomes};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn top_level_fields() {
    let r = aggregate(&info(), &outcomes());
    assert_eq!(r.run, "r1");
    assert_eq!(r.suite.name, "smoke");
    assert_eq!(r.suite.version, "1.0");
    assert_eq!(r.repetitions, 3);
    assert_eq!(r.state, "finished");
    assert_eq!(r.jobs_total, 27);
    // 18 graded + 2 failed = 20 ended
    assert_eq!(r.jobs_graded, 18);
    assert_eq!(r.jobs_failed, 2);
    assert_eq!(r.jobs_done, 20);
    assert_eq!(r.ci.resamples, 2000);
    let names: Vec<&str> = r.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "script"]);
}

#[test]
fn alpha_counts_score_and_spread() {
    let r = aggregate(&info(), &outcomes());
    let a = &r.models[0];
    // P: 3 (t1) + 1 (t2) = 4, partial 1, F: 1 + 3 = 4
    assert_eq!((a.n, a.pass, a.partial, a.fail), (9, 4, 1, 4));
    // (4 + ½) / 9 = 0.5
    assert_eq!(a.score, 0.5);
    // per repetition: rep0 P P F = 2/3, rep1 P ½ F = 1.5/3 = ½, rep2 P F F = 1/3;
    // mean ½, squared deviations 1/36 + 0 + 1/36 = 1/18, /(3−1) = 1/36, √ = 1/6
    assert!(close(a.score_stddev, 1.0 / 6.0), "{}", a.score_stddev);
    assert_eq!(a.errors, 0);
    assert_eq!(a.size_bytes, 98_000_000);
    assert_eq!(a.kind, "gguf");
    assert_eq!(a.workers, ["w1"]);
    assert_eq!(a.threads, [8]);
}

#[test]
fn alpha_ci_spans_everything() {
    // Clusters t1 = 1, t2 = ½, t3 = 0 (3 jobs each). Drawing t3 three times has probability
    // 1/27 ≈ 3.7 % > 2.5 %, so ≈ 74 of 2000 resamples score 0 and the 2.5th percentile is 0;
    // symmetrically t1 three times scores 1, so the 97.5th percentile is 1.
    let r = aggregate(&info(), &outcomes());
    assert_eq!(r.models[0].score_ci95, [0.0, 1.0]);
}

#[test]
fn beta_ci_is_bounded_by_its_worst_task() {
    // Clusters t1 = 1, t2 = 1, t3 = 5/6. Lowest possible resample is t3 ×3 = 5/6 (p 1/27 > 2.5 %),
    // and resamples without t3 (p 8/27 ≈ 30 %) score 1, so the interval is exactly [5/6, 1];
    // the point (8 + ½)/9 = 17/18 lies inside.
    let r = aggregate(&info(), &outcomes());
    let b = &r.models[1];
    assert!(close(b.score, 17.0 / 18.0));
    assert!(close(b.score_ci95[0], 5.0 / 6.0), "{:?}", b.score_ci95);
    assert_eq!(b.score_ci95[1], 1.0);
}

#[test]
fn tasks_and_categories() {
    let r = aggregate(&info(), &outcomes());
    let a = &r.models[0];
    let ids: Vec<&str> = a.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t1", "t2", "t3"]);
    let t2 = &a.tasks[1];
    assert_eq!(t2.category, "edit");
    assert_eq!((t2.n, t2.pass, t2.partial, t2.fail), (3, 1, 1, 1));
    // (1 + ½) / 3 = ½; job scores {1, ½, 0}: mean ½, ss = ¼ + 0 + ¼ = ½, /2 = ¼, √ = ½
    assert_eq!(t2.score, 0.5);
    assert!(close(t2.score_stddev, 0.5));
    assert_eq!(a.tasks[0].score_stddev, 0.0);

    // edit = t1 + t2: 6 jobs, P 4, ½ 1, F 1 → 4.5/6 = 0.75; fix = t3: 0/3
    assert_eq!(a.categories.len(), 2);
    let edit = &a.categories[0];
    assert_eq!(edit.category, "edit");
    assert_eq!(
        (edit.tasks, edit.n, edit.pass, edit.partial, edit.fail),
        (2, 6, 4, 1, 1)
    );
    assert_eq!(edit.score, 0.75);
    assert_eq!(a.categories[1].category, "fix");
    assert_eq!(a.categories[1].score, 0.0);
}

#[test]
fn timing_summaries() {
    let r = aggregate(&info(), &outcomes());
    let t = &r.models[0].timing;
    // walls 1..9 s: mean 45/9 = 5, median 5, p90: h = 8·0.9 = 7.2 → 8 + 0.2·(9 − 8) = 8.2
    assert_eq!(t.mean_seconds, Some(5.0));
    assert_eq!(t.median_seconds, Some(5.0));
    assert!(close(t.p90_seconds.unwrap(), 8.2));
    // 9·100 tokens / 9·0.5 s = 200 tok/s; prompt 9·400 / 9·0.2 s = 2000 tok/s
    assert_eq!(t.gen_tokens_per_second, Some(200.0));
    assert!(close(t.prompt_tokens_per_second.unwrap(), 2000.0));
    assert_eq!(t.mean_ttft_ms, Some(250.0));
    assert_eq!(t.cold_loads, 0);
    assert_eq!(t.mean_load_ms, None);
}

#[test]
fn cold_loads_and_bad_timings() {
    let mut a = outcome("m", "t", 0, Verdict::Pass);
    a.cold = true;
    a.load_ms = 3000.0;
    a.wall_ms = f64::NAN;
    a.gen_ms = 0.0; // zero duration: its 100 tokens must not count
    let mut b = outcome("m", "t", 1, Verdict::Pass);
    b.cold = true;
    b.load_ms = f64::NAN; // unmeasured: skipped from the mean, still a cold load
    b.wall_ms = 2000.0;
    b.gen_tokens = 300;
    b.gen_ms = 1000.0;
    b.ttft_ms = f64::INFINITY;
    let mut info = RunInfo::default();
    info.models.push(benchfarm_report::ModelInfo {
        name: "m".into(),
        ..Default::default()
    });
    let r = aggregate(&info, &[a, b]);
    let t = &r.models[0].timing;
    assert_eq!(t.cold_loads, 2);
    assert_eq!(t.mean_load_ms, Some(3000.0));
    // only b's wall counts: 2 s
    assert_eq!(t.mean_seconds, Some(2.0));
    // only b's generation counts: 300 tokens / 1 s
    assert_eq!(t.gen_tokens_per_second, Some(300.0));
    // a's ttft 250 is valid, b's ∞ is not
    assert_eq!(t.mean_ttft_ms, Some(250.0));
}

#[test]
fn an_impossible_timing_is_flagged_and_keeps_all_its_timings_out() {
    let mut good = outcome("m", "t", 0, Verdict::Pass);
    good.wall_ms = 2000.0;
    good.gen_tokens = 300;
    good.gen_ms = 1000.0;
    let mut negative = outcome("m", "t", 1, Verdict::Pass);
    negative.load_ms = -5.0; // a clock that ran backwards: none of its figures is believed
    negative.wall_ms = 9000.0;
    negative.job = "j1".into();
    let mut instant = outcome("m", "t", 2, Verdict::Fail);
    instant.wall_ms = 0.0; // tokens in no time
    instant.job = "j2".into();
    let mut info = RunInfo::default();
    info.models.push(benchfarm_report::ModelInfo {
        name: "m".into(),
        ..Default::default()
    });
    let r = aggregate(&info, &[good, negative, instant]);
    let t = &r.models[0].timing;
    assert_eq!(t.mean_seconds, Some(2.0), "only the plausible wall time");
    assert_eq!(t.gen_tokens_per_second, Some(300.0));
    // Their grades still count.
    assert_eq!((r.models[0].n, r.models[0].pass), (3, 2));
    let flagged: Vec<(&str, &str)> = r
        .implausible_timings
        .iter()
        .map(|i| (i.job.as_str(), i.reason.as_str()))
        .collect();
    assert_eq!(
        flagged,
        [
            ("j1", "negative load_ms (-5)"),
            ("j2", "500 tokens in a wall time of 0 ms")
        ]
    );
    assert_eq!(r.models[0].tasks[0].implausible_timings, 2);
    let table = benchfarm_report::render(&r, &[], benchfarm_report::Format::Table);
    assert!(table.contains(" · implausible timings: 2"), "{table}");
}

#[test]
fn all_timings_bad_give_none() {
    let mut a = outcome("m", "t", 0, Verdict::Fail);
    a.wall_ms = f64::NAN;
    a.gen_ms = f64::NAN;
    a.prompt_ms = 0.0;
    a.ttft_ms = -1.0;
    let r = aggregate(&RunInfo::default(), &[a]);
    let t = &r.models[0].timing;
    assert_eq!(t.mean_seconds, None);
    assert_eq!(t.p90_seconds, None);
    assert_eq!(t.gen_tokens_per_second, None);
    assert_eq!(t.prompt_tokens_per_second, None);
    assert_eq!(t.mean_ttft_ms, None);
}

#[test]
fn model_without_outcomes_still_appears() {
    let r = aggregate(&info(), &outcomes());
    let s = &r.models[2];
    assert_eq!(s.name, "script");
    assert_eq!((s.n, s.score, s.score_ci95), (0, 0.0, [0.0, 0.0]));
    assert_eq!(s.errors, 2);
    assert_eq!(s.kind, "scripted");
    assert_eq!(s.timing.mean_seconds, None);
    assert!(s.workers.is_empty());
    // every suite task is listed, with its failed jobs
    let errs: Vec<u64> = s.tasks.iter().map(|t| t.errors).collect();
    assert_eq!(errs, [1, 1, 0]);
}

#[test]
fn empty_run() {
    let r = aggregate(&RunInfo::default(), &[]);
    assert!(r.models.is_empty());
    assert!(r.hardware.is_empty());
    assert_eq!((r.jobs_done, r.jobs_graded, r.jobs_failed), (0, 0, 0));
}

#[test]
fn unknown_models_and_tasks_are_kept_after_the_plan() {
    let mut outs = outcomes();
    outs.push(outcome("zeta", "t9", 0, Verdict::Pass));
    outs.push(outcome("alpha", "t9", 0, Verdict::Fail));
    let r = aggregate(&info(), &outs);
    let names: Vec<&str> = r.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "script", "zeta"]);
    let z = &r.models[3];
    assert_eq!((z.n, z.size_bytes, z.kind.as_str()), (1, 0, ""));
    let ids: Vec<&str> = z.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t1", "t2", "t3", "t9"]);
    assert_eq!(z.tasks[3].category, "");
    // alpha now has 10 jobs: (4 + ½) / 10 = 0.45
    assert_eq!(r.models[0].n, 10);
    assert_eq!(r.models[0].score, 0.45);
}

#[test]
fn duplicate_plan_entries_keep_the_first() {
    let mut i = info();
    let mut dup = i.models[0].clone();
    dup.size_bytes = 1;
    i.models.push(dup);
    let mut t = i.tasks[0].clone();
    t.category = "other".into();
    i.tasks.push(t);
    let r = aggregate(&i, &outcomes());
    assert_eq!(r.models.len(), 3);
    assert_eq!(r.models[0].size_bytes, 98_000_000);
    assert_eq!(r.models[0].tasks.len(), 3);
    assert_eq!(r.models[0].tasks[0].category, "edit");
}

#[test]
fn hardware_breakdown() {
    let r = aggregate(&info(), &outcomes());
    let rows: Vec<(&str, &str, u64)> = r
        .hardware
        .iter()
        .map(|h| (h.class.as_str(), h.model.as_str(), h.n))
        .collect();
    // classes sorted by name, models in plan order; beta's t3 ran on the GPU box
    assert_eq!(
        rows,
        [
            ("cpu-avx2", "alpha", 9),
            ("cpu-avx2", "beta", 6),
            ("gpu-h100", "beta", 3)
        ]
    );
    let gpu = &r.hardware[2];
    // t3: P P ½ → 2.5/3
    assert!(close(gpu.score, 2.5 / 3.0));
    assert_eq!(gpu.workers, ["w3"]);
    assert_eq!(gpu.threads, [4]);
    assert_eq!(gpu.timing.gen_tokens_per_second, Some(200.0));
    // beta overall ran on two workers with two thread counts
    assert_eq!(r.models[1].workers, ["w2", "w3"]);
    assert_eq!(r.models[1].threads, [4, 8]);
}

#[test]
fn report_is_reproducible_and_seeded_by_run_id() {
    let a = aggregate(&info(), &outcomes());
    assert_eq!(a, aggregate(&info(), &outcomes()));

    // A model with 12 tasks of varied sizes and scores: its interval is a genuine bootstrap
    // sample, so other run ids (other seeds) move it, but never the point. Resampled scores are
    // discrete, so two seeds may agree by chance; five distinct seeds all agreeing would mean
    // the seed is ignored.
    let verdicts = [Verdict::Pass, Verdict::Partial, Verdict::Fail];
    let outs: Vec<Outcome> = (0..12u32)
        .flat_map(|t| {
            (0..=t).map(move |rep| {
                outcome(
                    "m",
                    &format!("t{t}"),
                    rep,
                    verdicts[(t * 7 + rep) as usize % 3],
                )
            })
        })
        .collect();
    let reports: Vec<_> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|id| {
            let i = RunInfo {
                run_id: (*id).into(),
                ..Default::default()
            };
            aggregate(&i, &outs)
        })
        .collect();
    assert!(
        reports
            .iter()
            .all(|r| r.models[0].score == reports[0].models[0].score)
    );
    assert!(
        reports
            .iter()
            .any(|r| r.models[0].score_ci95 != reports[0].models[0].score_ci95),
        "{:?}",
        reports
            .iter()
            .map(|r| r.models[0].score_ci95)
            .collect::<Vec<_>>()
    );
}

#[test]
fn repetitions_interval_beside_the_task_interval() {
    let r = aggregate(&info(), &outcomes());
    assert_eq!(r.ci_repetitions.method, "stratified-bootstrap-repetitions");
    assert_eq!(r.ci.method, "cluster-bootstrap-tasks");
    // alpha: t1 (2,2,2) and t3 (0,0,0) never vary; only t2 (2,1,0) does. A resample redraws t2's
    // three jobs: Σ ranges 0..6, the extremes each with p 1/27 ≈ 3.7 % > 2.5 %, so the bounds are
    // (6 + 0 + 0) / 18 = 1/3 and (6 + 6 + 0) / 18 = 2/3 around the point 9/18 = ½ — much
    // narrower than the task interval [0, 1] of the same data.
    let a = &r.models[0];
    assert_eq!(a.score_ci95, [0.0, 1.0]);
    assert_eq!(a.score_ci95_repetitions, [6.0 / 18.0, 12.0 / 18.0]);
    // beta: only t3 (2,2,1) varies; k partials drawn ~ Bin(3, ⅓): k = 3 has p 1/27 > 2.5 % →
    // (12 + 3) / 18 = 5/6; k = 0 has p 8/27 → 1.
    let b = &r.models[1];
    assert_eq!(b.score_ci95_repetitions, [15.0 / 18.0, 1.0]);
    // per task: alpha t1 constant → [1, 1]; t2 (2,1,0): extremes 0/6 and 6/6 with p 1/27 each
    assert_eq!(a.tasks[0].score_ci95_repetitions, [1.0, 1.0]);
    assert_eq!(a.tasks[1].score_ci95_repetitions, [0.0, 1.0]);
    assert_eq!(a.tasks[2].score_ci95_repetitions, [0.0, 0.0]);
    // a model without graded jobs
    assert_eq!(r.models[2].score_ci95_repetitions, [0.0, 0.0]);
}

#[test]
fn hardware_cells_have_spread_intervals_and_tasks() {
    let r = aggregate(&info(), &outcomes());
    let cells: Vec<(&str, &str, usize)> = r
        .hardware
        .iter()
        .map(|h| (h.class.as_str(), h.model.as_str(), h.tasks.len()))
        .collect();
    // classes sorted; beta's t3 ran on gpu-h100 only, so each class lists only the tasks it ran
    assert_eq!(
        cells,
        [
            ("cpu-avx2", "alpha", 3),
            ("cpu-avx2", "beta", 2),
            ("gpu-h100", "beta", 1)
        ]
    );
    // beta on cpu-avx2: all pass → zero variance, both intervals the point 1
    let h = &r.hardware[1];
    assert_eq!((h.score, h.score_stddev), (1.0, 0.0));
    assert_eq!(h.score_ci95, [1.0, 1.0]);
    assert_eq!(h.score_ci95_repetitions, [1.0, 1.0]);
    // beta on gpu-h100: one task (t3, P P ½) → the task interval collapses to 5/6; per rep the
    // scores are 1, 1, ½ → mean 5/6, deviations 1/36 + 1/36 + 4/36 = 6/36, /2 = 1/12, √ = 0.2887
    let g = &r.hardware[2];
    assert_eq!(g.score_ci95, [5.0 / 6.0, 5.0 / 6.0]);
    assert!(close(g.score_stddev, (1.0f64 / 12.0).sqrt()));
    assert_eq!(g.tasks[0].id, "t3");
    assert_eq!((g.tasks[0].n, g.tasks[0].partial), (3, 1));
    // alpha on cpu-avx2 equals alpha overall (it only ran there)
    assert_eq!(
        r.hardware[0].score_ci95_repetitions,
        r.models[0].score_ci95_repetitions
    );
}

#[test]
fn timing_distributions_per_cell() {
    let r = aggregate(&info(), &outcomes());
    let t = &r.models[0].timing.timings;
    // alpha's walls are 1..9 s: mean = median = 5; stddev √(Σ(k−5)² / 8) = √(60 / 8) = √7.5;
    // p90: h = 8 · 0.9 = 7.2 → 8 + 0.2 · (9 − 8) = 8.2
    let w = &t.all.wall_seconds;
    assert_eq!((w.n, w.mean, w.median), (9, Some(5.0), Some(5.0)));
    assert!(close(w.stddev.unwrap(), 7.5f64.sqrt()));
    assert!(close(w.p90.unwrap(), 8.2));
    // every job: 100 tokens in 500 ms = 200 tok/s, 400 in 200 ms = 2000 tok/s, ttft 250 ms;
    // all warm, so cold is empty and the load summary has no sample
    assert_eq!(t.all.gen_tokens_per_second.mean, Some(200.0));
    assert_eq!(t.all.gen_tokens_per_second.stddev, Some(0.0));
    assert_eq!(t.all.prompt_tokens_per_second.median, Some(2000.0));
    assert_eq!(t.all.ttft_ms.p90, Some(250.0));
    assert_eq!((t.warm.jobs, t.cold.jobs, t.load_ms.n), (9, 0, 0));
    assert_eq!(t.cold.wall_seconds.mean, None);
    // per task: t2 walls 4, 5, 6 s
    let t2 = &r.models[0].tasks[1].timing.timings.all.wall_seconds;
    assert_eq!((t2.mean, t2.stddev), (Some(5.0), Some(1.0)));
}

#[test]
fn single_job_and_uncounted_results() {
    let mut i = info();
    i.failed_jobs.clear();
    let mut superseded = outcome("alpha", "t1", 0, Verdict::Fail);
    superseded.counted = false;
    let outs = [superseded, outcome("alpha", "t1", 0, Verdict::Pass)];
    let r = aggregate(&i, &outs);
    let a = &r.models[0];
    // the superseded result is not scored: n = 1, all pass
    assert_eq!((a.n, a.pass, a.fail), (1, 1, 0));
    assert_eq!(a.score_ci95, [1.0, 1.0]);
    assert_eq!(a.score_ci95_repetitions, [1.0, 1.0]);
    assert_eq!(a.score_stddev, 0.0);
    assert_eq!(a.tasks[0].score_stddev, 0.0);
    assert_eq!(r.jobs_graded, 1);
    let w = &a.timing.timings.all.wall_seconds;
    assert_eq!((w.n, w.stddev, w.p90), (1, Some(0.0), Some(1.0)));
}

#[test]
fn same_inputs_same_report_bytes() {
    let a = aggregate(&info(), &outcomes());
    let b = aggregate(&info(), &outcomes());
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

#[test]
fn decode_and_end_to_end_generation_speeds_are_reported_apart() {
    // Two jobs: 10 and 30 tokens decoded in 100 and 200 ms of llama_decode (40 / 0.3 s = 133.3
    // t/s, llama-bench's tg), generated in 125 and 275 ms of the generation loop (sampling and
    // detokenizing included: 44 / 0.4 s = 110 t/s; one more token each, the first, sampled from
    // the prompt's logits).
    let mut a = outcome("alpha", "t1", 0, Verdict::Pass);
    (a.decode_tokens, a.decode_ms, a.gen_tokens, a.gen_ms) = (10, 100.0, 11, 125.0);
    let mut b = outcome("alpha", "t2", 0, Verdict::Pass);
    (b.decode_tokens, b.decode_ms, b.gen_tokens, b.gen_ms) = (30, 200.0, 33, 275.0);
    let report = aggregate(&info(), &[a, b]);
    let t = &report.models[0].timing;
    assert!(close(t.gen_tokens_per_second.unwrap(), 40.0 / 0.3), "{t:?}");
    assert!(
        close(t.e2e_gen_tokens_per_second.unwrap(), 44.0 / 0.4),
        "{t:?}"
    );
    let md = benchfarm_report::render(&report, &[], benchfarm_report::Format::Markdown);
    assert!(md.contains("| e2e tok/s |"), "{md}");
    assert!(md.contains("133.3") && md.contains("110.0"), "{md}");
}
