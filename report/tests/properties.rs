//! Property tests: invariants that must hold for every input, including hostile ones (names
//! with commas, quotes, pipes and line breaks; NaN, infinite, negative, zero and huge timings;
//! outcomes for models and tasks the plan never mentioned).

use benchfarm_report::{
    AdaptiveRule, CompareFormat, CompareOptions, FailedAttempt, FailedJob, Format, ModelInfo,
    Outcome, Report, RunInfo, Side, TaskInfo, Verdict, aggregate, assess, compare, render,
    render_comparison, render_run,
};
use proptest::prelude::*;

const NAMES: [&str; 7] = ["a", "b", "c,d", "q\"x", "p|ipe", "n\nl", ""];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES.to_vec()).prop_map(String::from)
}

fn ms() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..100_000.0f64,
        Just(0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
        Just(1e308),
        Just(5e-324),
    ]
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        Just(Verdict::Pass),
        Just(Verdict::Partial),
        Just(Verdict::Fail)
    ]
}

prop_compose! {
    fn outcome()(
        model in name(), task_id in name(), repetition in 0u32..4, verdict in verdict(),
        worker_name in name(), hardware_class in name(), threads in 1u32..4,
        wall_ms in ms(), load_ms in ms(), cold in any::<bool>(),
        prompt_tokens in any::<u32>(), prompt_ms in ms(), ttft_ms in ms(),
        gen_tokens in any::<u32>(), gen_ms in ms(),
    ) -> Outcome {
        Outcome {
            model, task_id, repetition, verdict,
            worker_id: worker_name.clone(), worker_name, hardware_class, threads,
            wall_ms, load_ms, cold, prompt_tokens, prompt_ms, ttft_ms, gen_tokens, gen_ms,
            ..Default::default()
        }
    }
}

prop_compose! {
    fn run_info()(
        run_id in "[a-z0-9-]{0,12}",
        models in prop::collection::vec((name(), any::<u64>(), prop::bool::ANY), 0..4),
        tasks in prop::collection::vec((name(), name()), 0..5),
        failed in prop::collection::vec((name(), name(), 0u32..4, name()), 0..4),
        state in prop::sample::select(vec!["running", "finished", "cancelled", ""]),
        jobs_total in 0u64..100,
    ) -> RunInfo {
        RunInfo {
            run_id,
            suite_name: "s|u,ite\n".into(),
            suite_version: "1".into(),
            repetitions: 3,
            state: state.into(),
            models: models.into_iter().map(|(name, size_bytes, scripted)| ModelInfo {
                name,
                size_bytes: if scripted { 0 } else { size_bytes },
                sha256: String::new(),
                kind: if scripted { "scripted" } else { "gguf" }.into(),
                price_per_mtok: None,
            }).collect(),
            tasks: tasks.into_iter().map(|(id, category)| TaskInfo { id, category }).collect(),
            jobs_total,
            failed_jobs: failed.into_iter().map(|(model, task_id, repetition, reason)| FailedJob {
                model, task_id, repetition, reason,
            }).collect(),
        }
    }
}

/// Minimal RFC 4180 reader, written independently of the renderer, to check its quoting.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quote");
    assert!(
        field.is_empty() && record.is_empty(),
        "last record lacks its newline"
    );
    records
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn scores_and_intervals_are_sane(
        info in run_info(),
        outs in prop::collection::vec(outcome(), 0..40),
    ) {
        let r = aggregate(&info, &outs);
        for m in &r.models {
            let [lo, hi] = m.score_ci95;
            prop_assert!(0.0 <= lo && lo <= m.score && m.score <= hi && hi <= 1.0,
                "{}: {lo} {} {hi}", m.name, m.score);
            prop_assert!(m.score_stddev.is_finite() && m.score_stddev >= 0.0);
            if m.n == 0 {
                prop_assert_eq!((m.score, m.score_ci95), (0.0, [0.0, 0.0]));
            }
            for t in &m.tasks {
                prop_assert!((0.0..=1.0).contains(&t.score));
            }
            for x in [m.timing.mean_seconds, m.timing.median_seconds, m.timing.p90_seconds,
                      m.timing.gen_tokens_per_second, m.timing.prompt_tokens_per_second,
                      m.timing.mean_ttft_ms, m.timing.mean_load_ms].into_iter().flatten() {
                prop_assert!(x.is_finite() && x >= 0.0, "{x}");
            }
        }
    }

    #[test]
    fn counts_add_up(info in run_info(), outs in prop::collection::vec(outcome(), 0..40)) {
        let r = aggregate(&info, &outs);
        let total: u64 = r.models.iter().map(|m| m.n).sum();
        prop_assert_eq!(total, outs.len() as u64);
        prop_assert_eq!(r.hardware.iter().map(|h| h.n).sum::<u64>(), outs.len() as u64);
        prop_assert_eq!(r.models.iter().map(|m| m.errors).sum::<u64>(), info.failed_jobs.len() as u64);
        prop_assert_eq!(r.jobs_done, r.jobs_graded + r.jobs_failed);
        for m in &r.models {
            prop_assert_eq!(m.n, m.pass + m.partial + m.fail);
            prop_assert_eq!(m.tasks.iter().map(|t| t.n).sum::<u64>(), m.n);
            prop_assert_eq!(m.tasks.iter().map(|t| t.pass).sum::<u64>(), m.pass);
            prop_assert_eq!(m.categories.iter().map(|c| c.n).sum::<u64>(), m.n);
            prop_assert_eq!(m.categories.iter().map(|c| c.tasks).sum::<u64>(), m.tasks.len() as u64);
            for t in &m.tasks {
                prop_assert_eq!(t.n, t.pass + t.partial + t.fail);
            }
        }
        // plan models come first, in plan order, each once
        let mut seen = std::collections::HashSet::new();
        let plan: Vec<&str> = info.models.iter().map(|m| m.name.as_str())
            .filter(|n| seen.insert(*n)).collect();
        let head: Vec<&str> = r.models.iter().take(plan.len()).map(|m| m.name.as_str()).collect();
        prop_assert_eq!(head, plan);
    }

    #[test]
    fn aggregation_is_deterministic(info in run_info(), outs in prop::collection::vec(outcome(), 0..30)) {
        let a = serde_json::to_string(&aggregate(&info, &outs)).unwrap();
        let b = serde_json::to_string(&aggregate(&info, &outs)).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn renderers_never_panic_and_keep_their_shape(
        info in run_info(),
        outs in prop::collection::vec(outcome(), 0..30),
    ) {
        let r = aggregate(&info, &outs);
        for f in Format::ALL {
            let text = render(&r, &outs, f);
            prop_assert!(text.is_empty() || text.ends_with('\n'));
        }

        // table: header, separator, one line per model, footer — names cannot add lines
        let table = render(&r, &outs, Format::Table);
        prop_assert_eq!(table.lines().count(), r.models.len() + 3);
        let widths: Vec<usize> = table.lines().take(r.models.len() + 2)
            .map(|l| l.chars().count()).collect();
        prop_assert!(widths.windows(2).all(|w| w[0] == w[1]), "{}", table);

        // csv: a header and one record of 20 fields per model × task, names intact
        let records = parse_csv(&render(&r, &outs, Format::Csv));
        let rows: usize = r.models.iter().map(|m| m.tasks.len()).sum();
        prop_assert_eq!(records.len(), rows + 1);
        prop_assert!(records.iter().all(|rec| rec.len() == 20));
        let expected: Vec<(&str, &str)> = r.models.iter()
            .flat_map(|m| m.tasks.iter().map(move |t| (m.name.as_str(), t.id.as_str())))
            .collect();
        let got: Vec<(&str, &str)> = records.iter().skip(1)
            .map(|rec| (rec[0].as_str(), rec[1].as_str())).collect();
        prop_assert_eq!(got, expected);

        // json reads back with the same structure
        let back: Report = serde_json::from_str(&render(&r, &outs, Format::Json)).unwrap();
        prop_assert_eq!(back.models.len(), r.models.len());
        prop_assert_eq!(back.hardware.len(), r.hardware.len());
        for (a, b) in back.models.iter().zip(&r.models) {
            prop_assert_eq!((&a.name, a.n, a.pass, a.partial), (&b.name, b.n, b.pass, b.partial));
        }

        // jsonl: one parseable line per outcome
        let jsonl = render(&r, &outs, Format::Jsonl);
        prop_assert_eq!(jsonl.lines().count(), outs.len());
        for line in jsonl.lines() {
            prop_assert!(serde_json::from_str::<serde_json::Value>(line).is_ok());
        }
    }

    #[test]
    fn hand_made_reports_render(score in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -2.0..2.0f64],
                                size in any::<u64>()) {
        // A report can come from someone else's JSON; nonsense numbers must still render.
        let mut info = RunInfo::default();
        info.models.push(ModelInfo { name: "m".into(), size_bytes: size, ..Default::default() });
        let outs = [Outcome {
            model: "m".into(), task_id: "t".into(), repetition: 0, verdict: Verdict::Pass,
            worker_id: String::new(), worker_name: String::new(), hardware_class: String::new(),
            threads: 1, wall_ms: 1.0, load_ms: 1.0, cold: false, prompt_tokens: 1, prompt_ms: 1.0,
            ttft_ms: 1.0, gen_tokens: 1, gen_ms: 1.0, ..Default::default()
        }];
        let mut r = aggregate(&info, &outs);
        r.models[0].score = score;
        r.models[0].score_ci95 = [score, -score];
        r.models[0].timing.mean_seconds = Some(score);
        r.models.push(r.models[0].clone());
        for f in Format::ALL {
            let _ = render(&r, &outs, f);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn repetitions_intervals_are_sane(info in run_info(), outs in prop::collection::vec(outcome(), 0..40)) {
        let r = aggregate(&info, &outs);
        let ok = |ci: [f64; 2], score: f64| 0.0 <= ci[0] && ci[0] <= score && score <= ci[1] && ci[1] <= 1.0;
        for m in &r.models {
            prop_assert!(ok(m.score_ci95_repetitions, m.score), "{:?} {}", m.score_ci95_repetitions, m.score);
            for t in &m.tasks {
                prop_assert!(ok(t.score_ci95_repetitions, t.score));
            }
        }
        for h in &r.hardware {
            prop_assert!(ok(h.score_ci95, h.score) && ok(h.score_ci95_repetitions, h.score));
            prop_assert_eq!(h.tasks.iter().map(|t| t.n).sum::<u64>(), h.n);
        }
    }

    #[test]
    fn compare_is_total_and_sane(
        a in prop::collection::vec(outcome(), 0..30),
        b in prop::collection::vec(outcome(), 0..30),
    ) {
        let sa = Side { run: "a", suite_name: "s", suite_version: "1", outcomes: &a };
        let sb = Side { run: "b", suite_name: "s", suite_version: "1", outcomes: &b };
        if let Ok(c) = compare(&sa, &sb, &[], &CompareOptions::default()) {
            for m in &c.models {
                prop_assert!((-1.0..=1.0).contains(&m.diff));
                prop_assert!(m.diff_ci95[0] <= m.diff && m.diff <= m.diff_ci95[1], "{:?}", m);
                prop_assert!((0.0..=1.0).contains(&m.mcnemar.p_value));
                for t in &m.tasks {
                    prop_assert!(t.p_holm >= t.mcnemar.p_value && t.p_holm <= 1.0);
                    prop_assert!(t.diff_ci95[0] <= t.diff && t.diff <= t.diff_ci95[1]);
                }
                for s in &m.speed {
                    prop_assert!(s.ratio.is_finite() && s.ratio_ci95[0] <= s.ratio && s.ratio <= s.ratio_ci95[1]);
                }
            }
            for f in CompareFormat::ALL {
                prop_assert!(render_comparison(&c, f).ends_with('\n'));
            }
        }
        // a side compared with itself never differs
        if let Ok(c) = compare(&sa, &sa, &[], &CompareOptions::default()) {
            prop_assert!(c.models.iter().all(|m| m.diff == 0.0 && !m.flagged));
        }
    }

    #[test]
    fn adaptive_rule_is_total(
        outs in prop::collection::vec(outcome(), 0..30),
        min in 0u32..5, max in 0u32..8, reps in 0u32..10,
        target_ci in prop::option::of(0.0..0.5f64), target_rsd in prop::option::of(0.0..0.5f64),
    ) {
        let rule = AdaptiveRule { min, max, target_ci, target_rsd };
        let a = assess(&rule, &outs, reps, 1);
        prop_assert_eq!(&a, &assess(&rule, &outs, reps, 1));
        if reps >= max.max(min) {
            prop_assert!(a.decision != benchfarm_report::Decision::More, "{:?}", a);
        }
    }

    #[test]
    fn html_escapes_hostile_answers(
        info in run_info(),
        outs in prop::collection::vec(outcome(), 0..20),
        answer in prop::sample::select(vec!["<script>x</script>", "a & b", "\"'", "```\n<b>\n```", "\u{0}"]),
        reason in name(),
    ) {
        let outs: Vec<Outcome> = outs.into_iter().map(|mut o| { o.answer = answer.to_string(); o }).collect();
        let fails = [FailedAttempt { model: "<m>".into(), reason, ..Default::default() }];
        let html = render_run(&aggregate(&info, &outs), &outs, &fails, Format::Html);
        prop_assert!(!html.contains("<script") && !html.contains("<b>") && !html.contains("<m>"));
        prop_assert!(html.ends_with("</html>\n"));
        // the jsonl has one line per attempt, the failure included
        let jsonl = render_run(&aggregate(&info, &outs), &outs, &fails, Format::Jsonl);
        prop_assert_eq!(jsonl.lines().count(), outs.len() + 1);
    }
}
