//! `compare` on scripted models: a real difference is flagged, identical models are not, and
//! suites of different versions are refused unless allowed.

mod common;

use benchfarm_report::{
    CompareError, CompareFormat, CompareOptions, Outcome, Side, Verdict, compare, render_comparison,
};
use common::outcome;

/// `model` on tasks t1..t3 × 8 repetitions, verdicts from `v(task, rep)`, generation 100 tokens
/// in `gen_ms` ms (plus a small per-rep jitter so speed has spread).
fn scripted(model: &str, gen_ms: f64, v: impl Fn(usize, u32) -> Verdict) -> Vec<Outcome> {
    let mut out = Vec::new();
    for (ti, task) in ["t1", "t2", "t3"].iter().enumerate() {
        for rep in 0..8 {
            let mut o = outcome(model, task, rep, v(ti, rep));
            o.gen_ms = gen_ms + f64::from(rep % 3) * 10.0;
            out.push(o);
        }
    }
    out
}

fn side<'a>(run: &'a str, version: &'a str, outcomes: &'a [Outcome]) -> Side<'a> {
    Side {
        run,
        suite_name: "smoke",
        suite_version: version,
        outcomes,
    }
}

#[test]
fn real_difference_is_flagged() {
    // good passes everything; weak passes t1 only on even reps and fails t2, t3.
    let mut outs = scripted("good", 500.0, |_, _| Verdict::Pass);
    outs.extend(scripted("weak", 1000.0, |t, r| {
        if t == 0 && r % 2 == 0 {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }));
    let s = side("r1", "1.0", &outs);
    let c = compare(
        &s,
        &s,
        &[("good".into(), "weak".into())],
        &CompareOptions::default(),
    )
    .unwrap();
    let m = &c.models[0];
    // 24 pairs; good 24/24, weak 4/24 → diff 20/24 = 5/6
    assert_eq!(m.pairs, 24);
    assert_eq!((m.score_a, m.diff), (1.0, 20.0 / 24.0));
    assert!(m.flagged, "{m:?}");
    assert!(m.diff_ci95[0] > 0.0);
    // 20 discordant pairs all for A: p = 2 / 2^20
    assert_eq!((m.mcnemar.a_only, m.mcnemar.b_only), (20, 0));
    assert!((m.mcnemar.p_value - 2.0 / 1_048_576.0).abs() < 1e-15);
    // t2, t3: 8 discordant pairs each, p = 2/256 = 1/128; Holm over 3 tasks: the two smallest
    // are tied at 1/128 → ×3 = 3/128 ≈ 0.023 (the second ×2 = 2/128 is lifted to 3/128), both
    // flagged; t1 has 4/0 discordant (p = 2/16 = ⅛, ×1 → ⅛), not flagged.
    let t: Vec<(&str, bool)> = m
        .tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.flagged))
        .collect();
    assert_eq!(t, [("t1", false), ("t2", true), ("t3", true)]);
    assert!((m.tasks[1].p_holm - 3.0 / 128.0).abs() < 1e-12);
    assert!((m.tasks[0].p_holm - 0.125).abs() < 1e-12);
    // speed: the jitter of reps 0..7 is 0,10,20,0,10,20,0,10 = 70 ms per task, so per task good
    // spends 8·500 + 70 = 4070 ms and weak 8·1000 + 70 = 8070 ms on the same tokens: the ratio of
    // token-weighted rates is 8070 / 4070 ≈ 1.98, and its interval excludes 1
    let sp = &m.speed[0];
    assert_eq!(sp.hardware_class, "cpu-avx2");
    assert!((sp.ratio - 8070.0 / 4070.0).abs() < 1e-9, "{sp:?}");
    assert!(sp.flagged && sp.ratio_ci95[0] > 1.0, "{sp:?}");
    // all three formats render, deterministically
    for f in CompareFormat::ALL {
        assert_eq!(render_comparison(&c, f), render_comparison(&c, f));
    }
    let md = render_comparison(&c, CompareFormat::Markdown);
    assert!(md.contains("| good | weak |    24 |"), "{md}");
    assert!(md.contains("⚑"));
    let json: serde_json::Value =
        serde_json::from_str(&render_comparison(&c, CompareFormat::Json)).unwrap();
    assert_eq!(json["models"][0]["flagged"], true);
}

#[test]
fn identical_models_are_not_flagged() {
    // Same noisy answers (pass on even reps, partial on rep % 4 == 1, fail otherwise) and speed.
    let v = |_: usize, r: u32| match r % 4 {
        0 | 2 => Verdict::Pass,
        1 => Verdict::Partial,
        _ => Verdict::Fail,
    };
    let a = scripted("m", 500.0, v);
    let b = scripted("m", 500.0, v);
    let c = compare(
        &side("run-a", "1.0", &a),
        &side("run-b", "1.0", &b),
        &[],
        &CompareOptions::default(),
    )
    .unwrap();
    assert_eq!(c.models.len(), 1, "models matched by name across runs");
    let m = &c.models[0];
    assert_eq!((m.diff, m.diff_ci95), (0.0, [0.0, 0.0]));
    assert!(!m.flagged);
    assert_eq!(m.mcnemar.p_value, 1.0);
    assert!(m.tasks.iter().all(|t| !t.flagged));
    // same jobs on both sides: the ratio is 1 and its interval contains 1
    let sp = &m.speed[0];
    assert_eq!(sp.ratio, 1.0);
    assert!(
        !sp.flagged && sp.ratio_ci95[0] <= 1.0 && sp.ratio_ci95[1] >= 1.0,
        "{sp:?}"
    );
}

#[test]
fn suite_versions_must_match_unless_allowed() {
    let a = scripted("m", 500.0, |_, _| Verdict::Pass);
    let err = compare(
        &side("ra", "1.0", &a),
        &side("rb", "2.0", &a),
        &[],
        &CompareOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CompareError::SuiteChanged { .. }));
    assert!(err.to_string().contains("--allow-suite-change"), "{err}");
    let c = compare(
        &side("ra", "1.0", &a),
        &side("rb", "2.0", &a),
        &[],
        &CompareOptions {
            allow_suite_change: true,
        },
    )
    .unwrap();
    assert!(c.suite_changed);
    assert!(render_comparison(&c, CompareFormat::Table).contains("different suite versions"));
}

#[test]
fn unknown_or_unshared_models_are_errors_and_empty_inputs_do_not_panic() {
    let a = scripted("x", 500.0, |_, _| Verdict::Pass);
    let b = scripted("y", 500.0, |_, _| Verdict::Pass);
    let err = compare(
        &side("ra", "1", &a),
        &side("rb", "1", &b),
        &[],
        &CompareOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CompareError::NoSharedModel { .. }));
    let err = compare(
        &side("ra", "1", &a),
        &side("rb", "1", &b),
        &[("x".into(), "nope".into())],
        &CompareOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CompareError::UnknownModel { .. }));
    // different models without shared (task, rep) keys: no pairs, no panic
    let mut shifted = b.clone();
    for o in &mut shifted {
        o.repetition += 100;
    }
    let c = compare(
        &side("ra", "1", &a),
        &side("rb", "1", &shifted),
        &[("x".into(), "y".into())],
        &CompareOptions::default(),
    )
    .unwrap();
    assert_eq!(c.models[0].pairs, 0);
    assert!(!c.models[0].flagged);
    assert!(render_comparison(&c, CompareFormat::Table).contains("No shared"));
}
