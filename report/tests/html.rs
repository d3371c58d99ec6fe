//! The HTML report as text: every section present, hostile text escaped, failed jobs shown as
//! failed, no external reference, the same bytes for the same inputs.

mod common;

use benchfarm_report::{
    CheckOutcome, FailedAttempt, Format, Outcome, Verdict, aggregate, render, render_run,
};
use common::{info, outcome, outcomes};

fn page() -> (String, Vec<Outcome>) {
    let mut outs = outcomes();
    outs[0].answer = "<script>alert('x')</script> & \"quoted\"\n```\ncode\n```".into();
    outs[0].checks = vec![
        CheckOutcome {
            group: "must".into(),
            check: "mentions <b>".into(),
            held: true,
        },
        CheckOutcome {
            group: "must".into(),
            check: "compiles".into(),
            held: false,
        },
    ];
    outs[0].extracted = "code".into();
    let failures = [FailedAttempt {
        model: "beta".into(),
        task_id: "t1".into(),
        repetition: 1,
        attempt: 1,
        reason: "lease lost <worker w2>".into(),
        ..Default::default()
    }];
    let r = aggregate(&info(), &outs);
    (render_run(&r, &outs, &failures, Format::Html), outs)
}

#[test]
fn all_sections_and_hooks_present() {
    let (html, _) = page();
    assert!(html.starts_with("<!DOCTYPE html>\n"));
    assert!(html.ends_with("</html>\n"));
    for needle in [
        "<table id=\"leaderboard\">",
        "<svg id=\"scatter\"",
        "<table id=\"heatmap\">",
        "<svg id=\"speed\"",
        "<section id=\"drilldown\">",
        "<section id=\"failed\">",
        "name=\"viewport\"",
        "@media (max-width:600px)",
        "±95% tasks",
        "±95% reps",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    // leaderboard rows: beta 17/18, alpha ½, script without graded job (empty data-score)
    assert!(html.contains("<tr data-model=\"beta\" data-score=\"0.9444444444444444\""));
    assert!(html.contains("<tr data-model=\"alpha\" data-score=\"0.5\""));
    assert!(html.contains("<tr data-model=\"script\" data-score=\"\""));
    assert!(html.contains("<td data-score=\"0.5\">50.0%</td>"));
    // heat map: alpha t2 = (1 + ½) / 3 = ½; script's cells are empty and show its failures
    assert!(html.contains("data-model=\"alpha\" data-task=\"t2\" data-score=\"0.5\""));
    assert!(html.contains("data-model=\"script\" data-task=\"t1\" data-score=\"\""));
    // scatter point per graded model, the Pareto front marked; speed bar per (class, model)
    assert!(html.contains("<g class=\"point pareto\" data-model=\"beta\""));
    assert!(html.contains("data-model=\"beta\" data-class=\"gpu-h100\""));
    // drill-down: 9 answers for alpha on 3 tasks = one <details> per (task, model) with data
    assert_eq!(html.matches("<details class=\"drill\"").count(), 3 + 3 + 2);
    assert_eq!(html.matches("<pre class=\"answer\">").count(), 18);
    assert!(html.contains("<li class=\"held\" data-held=\"true\">✓ must: mentions &lt;b&gt;</li>"));
    assert!(html.contains("<li class=\"failed\" data-held=\"false\">✗ must: compiles</li>"));
}

#[test]
fn text_is_escaped() {
    let (html, _) = page();
    assert!(
        !html.contains("<script>"),
        "an answer's <script> must not survive"
    );
    assert!(html.contains(
        "<pre class=\"answer\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; \
         &quot;quoted&quot;\n```\ncode\n```</pre>"
    ));
    assert!(html.contains("lease lost &lt;worker w2&gt;"));
}

#[test]
fn failed_jobs_are_shown_as_failed() {
    let (html, _) = page();
    // the two failed jobs of the fixture (script t1, t2) in the list and in the drill-down
    assert_eq!(html.matches("<li class=\"failed-job\"").count(), 2);
    assert!(html.contains("data-model=\"script\" data-task=\"t1\" data-rep=\"0\""));
    assert!(html.contains("worker crashed\nsegfault"));
    assert_eq!(html.matches("data-verdict=\"error\"").count(), 3);
    // the retried attempt of beta t1 rep 1 is listed apart
    assert!(html.contains("<li class=\"failed-attempt\" data-model=\"beta\""));
}

#[test]
fn self_contained_and_deterministic() {
    let (html, outs) = page();
    for forbidden in [
        "http://", "https://", "src=", "href=", "<link", "@import", "url(",
    ] {
        let hits: Vec<_> = html.match_indices(forbidden).collect();
        // the SVG namespace URI is an identifier, not a fetch
        let real = hits
            .iter()
            .filter(|(i, _)| !html[..*i].ends_with("xmlns=\""))
            .count();
        assert_eq!(real, 0, "{forbidden} in the page");
    }
    assert!(html.contains("default-src 'none'"));
    let r = aggregate(&info(), &outs);
    let again = render_run(
        &r,
        &outs,
        &[FailedAttempt {
            model: "beta".into(),
            task_id: "t1".into(),
            repetition: 1,
            attempt: 1,
            reason: "lease lost <worker w2>".into(),
            ..Default::default()
        }],
        Format::Html,
    );
    assert_eq!(html, again);
}

#[test]
fn empty_and_hostile_runs_render() {
    let empty = render(&aggregate(&Default::default(), &[]), &[], Format::Html);
    assert!(empty.contains("No models."));
    let mut o = outcome("<m&\"'>", "<t>", 0, Verdict::Pass);
    o.wall_ms = f64::NAN;
    o.gen_ms = f64::INFINITY;
    let outs = [o];
    let html = render(&aggregate(&Default::default(), &outs), &outs, Format::Html);
    assert!(html.contains("data-model=\"&lt;m&amp;&quot;&#39;&gt;\""));
    assert!(!html.contains("<m&"));
    assert!(html.contains("Not plotted"));
}
