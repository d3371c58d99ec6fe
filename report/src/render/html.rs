//! The `html` format: one self-contained page — leaderboard, score-vs-time scatter, task × model
//! heat map, speed bars, a drill-down to every answer, and the failed jobs.
//!
//! Self-contained means no network fetch of any kind: styles are inline, charts are hand-written
//! inline SVG (see `svg.rs`; no vendored chart library, no script at all), and a
//! Content-Security-Policy of `default-src 'none'` makes the browser refuse any fetch a future
//! edit might add by mistake. All text from the run — model names, answers (which may contain
//! `<script>`), reasons — goes through [`esc`], in element content and attribute values alike.
//!
//! Layout: a single column up to 1200 px wide. The leaderboard keeps the seed table's shape
//! (Model | Size | Score | ±95% | Time | tg tok/s | Cost | Workers, plus the interval over repetitions
//! beside the task interval) and fits a 360 px phone without horizontal scroll: under 600 px the
//! secondary columns (Size, tg tok/s, Workers) are hidden and names wrap; wide tables (heat map)
//! scroll inside their own box instead of the page. Stable hooks for browser tests:
//! `table#leaderboard` rows `tr[data-model][data-score]` with `td[data-score]`,
//! `table#heatmap td[data-model][data-task][data-score]`, `svg#scatter g.point[data-model]`,
//! `svg#speed g.bar[data-model][data-class]`, `details.drill[data-model][data-task]` containing
//! `pre.answer`, and `section#failed li.failed-job`. Deterministic: no timestamps, no randomness.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::outcome::FailedJob;
use crate::outcome::{FailedAttempt, Outcome, Verdict};
use crate::render::svg;
use crate::render::table::footer;
use crate::render::{
    DASH, dollars, one_decimal, percent, plus_minus, ranked, seconds, size_cell, workers_cell,
};
use crate::report::{Report, TaskReport};

/// Escapes text for HTML element content and (double- or single-quoted) attribute values.
/// NUL, which HTML parsers replace anyway, becomes U+FFFD here so the output is stable.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A score for a `data-score` attribute: shortest round-trip decimal, empty when unknown.
fn data_score(score: f64, n: u64) -> String {
    if n == 0 || !score.is_finite() {
        String::new()
    } else {
        score.to_string()
    }
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;\
max-width:1200px;padding:16px;color:#1b1f24;background:#fff}\
h1{font-size:1.5rem;margin:.2em 0}h1,h2,h3,p,summary,li{overflow-wrap:anywhere}h2{font-size:1.2rem;margin:1.6em 0 .5em;\
border-bottom:1px solid #d0d7de}h3{font-size:1.05rem;margin:1.2em 0 .3em}\
table{border-collapse:collapse}th,td{padding:4px 8px;border-bottom:1px solid #d0d7de;\
text-align:right;vertical-align:top}th:first-child,td:first-child{text-align:left}\
#leaderboard{width:100%}#leaderboard td:first-child{overflow-wrap:anywhere}\
#leaderboard td+td{white-space:nowrap}\
.muted,caption{color:#57606a;font-size:.9em;text-align:left}\
.scroll{overflow-x:auto;max-width:100%}\
svg{width:100%;height:auto;max-width:900px;display:block}\
svg .grid{stroke:#eaeef2}svg .tick,svg .axis,svg .label,svg .value,svg .class{font-size:12px;\
fill:#1b1f24}svg .class{font-weight:600}svg .whisker{stroke:#8c959f;stroke-width:1.5}\
svg .whisker-reps{stroke:#0969da;stroke-width:4;stroke-linecap:round}\
svg .point circle{fill:#0969da}svg .point.pareto circle{fill:#fff;stroke:#bf3989;stroke-width:3}\
svg .pareto-line{fill:none;stroke:#bf3989;stroke-dasharray:5 4;stroke-width:1.5}\
svg .bar rect{fill:#0969da}\
#heatmap td{text-align:center;min-width:4.5em}#heatmap td.empty{background:#f6f8fa}\
details{border:1px solid #d0d7de;border-radius:4px;margin:4px 0;padding:4px 8px}\
summary{cursor:pointer}.attempt{border-top:1px solid #eaeef2;padding:6px 0}\
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:8px;\
border-radius:4px;max-height:30em;overflow:auto;margin:4px 0}\
ul.checks{list-style:none;padding-left:0;margin:4px 0}.held{color:#1a7f37}\
.failed{color:#cf222e}.v-pass{color:#1a7f37}.v-partial{color:#9a6700}.v-fail,.v-error{color:#cf222e}\
@media (max-width:600px){body{padding:8px;font-size:14px}\
#leaderboard .c-size,#leaderboard .c-tg,#leaderboard .c-workers{display:none}\
#leaderboard th,#leaderboard td{padding:4px 3px}svg .tick,svg .axis,svg .label,svg .value,svg .class{font-size:18px}}";

/// The `html` format.
pub(crate) fn render(report: &Report, outcomes: &[Outcome], failures: &[FailedAttempt]) -> String {
    let title = format!("benchfarm run {}", report.run);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">\n<title>{}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<header>\n<h1>{}</h1>\n<p class=\"muted\" id=\"run-meta\">{}</p>\n\
         </header>\n",
        esc(&title),
        esc(&title),
        esc(&footer(report))
    );
    leaderboard(&mut s, report);
    s.push_str("<section id=\"scatter-section\">\n<h2>Score against time</h2>\n");
    s.push_str(&svg::scatter(&ranked(report)));
    s.push_str(
        "<p class=\"muted\">Thin whisker: 95% interval over tasks; thick: over repetitions. \
         Ringed points and the dashed line: the Pareto front (no other model is both faster \
         and better).</p>\n</section>\n",
    );
    heatmap(&mut s, report);
    s.push_str("<section id=\"speed-section\">\n<h2>Generation speed per hardware class</h2>\n");
    let hw: Vec<_> = report.hardware.iter().collect();
    s.push_str(&svg::speed_bars(&hw));
    s.push_str("<p class=\"muted\">Generated tokens per second, Σ tokens / Σ generation seconds.</p>\n</section>\n");
    crate::render::throughput::html(&mut s, &report.throughput);
    drilldown(&mut s, report, outcomes, failures);
    implausible(&mut s, report);
    failed(&mut s, report, failures);
    s.push_str("</body>\n</html>\n");
    s
}

/// The results whose timings were left out of every timing figure, and why (only when any).
fn implausible(s: &mut String, report: &Report) {
    if report.implausible_timings.is_empty() {
        return;
    }
    s.push_str("<section id=\"implausible\">\n<h2>Implausible timings</h2>\n<ul>\n");
    for t in &report.implausible_timings {
        let _ = writeln!(
            s,
            "<li class=\"implausible\">{} · {} · job {} attempt {} on {}: {}</li>",
            esc(&t.model),
            esc(&t.task_id),
            esc(&t.job),
            t.attempt,
            esc(&t.worker_name),
            esc(&t.reason)
        );
    }
    s.push_str("</ul>\n</section>\n");
}

fn leaderboard(s: &mut String, report: &Report) {
    s.push_str(
        "<section id=\"leaderboard-section\">\n<h2>Leaderboard</h2>\n<table id=\"leaderboard\">\n\
         <caption>Score = (pass + ½·partial) / graded jobs. ±95% tasks: how the score would move \
         on other tasks like these (cluster bootstrap over tasks). ±95% reps: the sampling noise \
         on this suite, tasks fixed (bootstrap over repetitions). Time: mean seconds per job.\
         </caption>\n<thead><tr><th>Model</th><th class=\"c-size\">Size</th><th>Score</th>\
         <th>±95% tasks</th><th>±95% reps</th><th>Time</th><th class=\"c-tg\">tg tok/s</th>\
         <th class=\"c-cost\">Cost</th><th class=\"c-workers\">Workers</th></tr></thead>\n<tbody>\n",
    );
    for m in ranked(report) {
        let stop = m
            .stop_reason
            .map(|r| {
                format!(
                    "<br><span class=\"muted\">stopped: {}</span>",
                    esc(r.describe())
                )
            })
            .unwrap_or_default();
        let errors = if m.errors > 0 {
            format!("<br><span class=\"failed\">{} failed</span>", m.errors)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "<tr data-model=\"{name}\" data-score=\"{score}\" data-n=\"{n}\"><td>{name}{stop}\
             {errors}</td><td class=\"c-size\">{size}</td><td data-score=\"{score}\">{pct}</td>\
             <td data-ci=\"{lo},{hi}\">{pm}</td><td data-ci-reps=\"{rlo},{rhi}\">{pmr}</td>\
             <td>{time}</td><td class=\"c-tg\">{tg}</td><td class=\"c-cost\">{cost}</td>\
             <td class=\"c-workers\">{workers}</td></tr>",
            name = esc(&m.name),
            score = data_score(m.score, m.n),
            n = m.n,
            size = esc(&size_cell(m)),
            pct = esc(&percent(m.score, m.n)),
            lo = m.score_ci95[0],
            hi = m.score_ci95[1],
            pm = esc(&plus_minus(m.score_ci95, m.n)),
            rlo = m.score_ci95_repetitions[0],
            rhi = m.score_ci95_repetitions[1],
            pmr = esc(&plus_minus(m.score_ci95_repetitions, m.n)),
            time = esc(&seconds(m.timing.mean_seconds)),
            tg = esc(&one_decimal(m.timing.gen_tokens_per_second)),
            cost = esc(&dollars(m.cost_usd)),
            workers = esc(&workers_cell(&m.workers)),
        );
    }
    s.push_str("</tbody>\n</table>\n</section>\n");
}

/// Background for a score: red (0) through yellow to green (1), light enough for dark text;
/// neutral grey for a score that is not a number.
fn heat(score: f64) -> String {
    if !score.is_finite() {
        return "#eaeef2".to_string();
    }
    let hue = (score.clamp(0.0, 1.0) * 120.0).round();
    format!("hsl({hue},70%,78%)")
}

fn heatmap(s: &mut String, report: &Report) {
    s.push_str("<section id=\"heatmap-section\">\n<h2>Scores per task</h2>\n");
    let Some(first) = report.models.first() else {
        s.push_str("<p class=\"muted\">No models.</p>\n</section>\n");
        return;
    };
    s.push_str("<div class=\"scroll\"><table id=\"heatmap\">\n<thead><tr><th>Task</th>");
    for m in &report.models {
        let _ = write!(s, "<th data-model=\"{0}\">{0}</th>", esc(&m.name));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for task in &first.tasks {
        let _ = write!(
            s,
            "<tr data-task=\"{}\"><td>{}<br><span class=\"muted\">{}</span></td>",
            esc(&task.id),
            esc(&task.id),
            esc(&task.category)
        );
        for m in &report.models {
            let t = m.tasks.iter().find(|t| t.id == task.id);
            match t {
                Some(t) if t.n > 0 => {
                    let err = if t.errors > 0 {
                        format!(" · {} err", t.errors)
                    } else {
                        String::new()
                    };
                    let _ = write!(
                        s,
                        "<td data-model=\"{}\" data-task=\"{}\" data-score=\"{}\" \
                         style=\"background:{}\" title=\"{}/{} pass, {} partial\">{}<br>\
                         <span class=\"muted\">{}/{}{}</span></td>",
                        esc(&m.name),
                        esc(&t.id),
                        data_score(t.score, t.n),
                        heat(t.score),
                        t.pass,
                        t.n,
                        t.partial,
                        esc(&percent(t.score, t.n)),
                        t.pass,
                        t.n,
                        err
                    );
                }
                _ => {
                    let errors = t.map_or(0, |t| t.errors);
                    let _ = write!(
                        s,
                        "<td class=\"empty\" data-model=\"{}\" data-task=\"{}\" data-score=\"\">{}{}</td>",
                        esc(&m.name),
                        esc(&task.id),
                        DASH,
                        if errors > 0 {
                            format!("<br><span class=\"failed\">{errors} failed</span>")
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Partial => "partial",
        Verdict::Fail => "fail",
    }
}

fn ms(x: f64) -> String {
    if x.is_finite() && x >= 0.0 {
        format!("{x:.0} ms")
    } else {
        DASH.to_string()
    }
}

fn attempt_html(s: &mut String, o: &Outcome) {
    let v = verdict_name(o.verdict);
    let gen_rate =
        crate::timings::gen_rate(o).map_or_else(|| DASH.to_string(), |r| format!("{r:.1} tok/s"));
    let _ = write!(
        s,
        "<div class=\"attempt\" data-verdict=\"{v}\" data-rep=\"{}\" data-attempt=\"{}\" \
         data-counted=\"{}\">\n<p>rep {} · attempt {} · <strong class=\"v-{v}\">{v}</strong>{}\
         {} · wall {} · ttft {} · gen {} ({} tokens){} · {} ({}, {} threads)</p>\n",
        o.repetition,
        o.attempt,
        o.counted,
        o.repetition,
        if o.attempt == 0 {
            DASH.to_string()
        } else {
            o.attempt.to_string()
        },
        o.score.map(|x| format!(" · score {x}")).unwrap_or_default(),
        if o.counted {
            ""
        } else {
            " · superseded, not counted"
        },
        esc(&seconds(
            o.wall_ms
                .is_finite()
                .then_some(o.wall_ms / 1000.0)
                .filter(|x| *x >= 0.0)
        )),
        ms(o.ttft_ms),
        esc(&gen_rate),
        o.gen_tokens,
        if o.cold {
            format!(" · cold, load {}", ms(o.load_ms))
        } else {
            String::new()
        },
        esc(if o.worker_name.is_empty() {
            DASH
        } else {
            &o.worker_name
        }),
        esc(if o.hardware_class.is_empty() {
            DASH
        } else {
            &o.hardware_class
        }),
        o.threads,
    );
    let _ = writeln!(s, "<pre class=\"answer\">{}</pre>", esc(&o.answer));
    if !o.extracted.is_empty() {
        let _ = writeln!(
            s,
            "<p class=\"muted\">extracted:</p><pre class=\"extracted\">{}</pre>",
            esc(&o.extracted)
        );
    }
    if !o.checks.is_empty() {
        s.push_str("<ul class=\"checks\">");
        for c in &o.checks {
            let (class, mark) = if c.held {
                ("held", "✓")
            } else {
                ("failed", "✗")
            };
            let group = if c.group.is_empty() {
                String::new()
            } else {
                format!("{}: ", esc(&c.group))
            };
            let _ = write!(
                s,
                "<li class=\"{class}\" data-held=\"{}\">{mark} {group}{}</li>",
                c.held,
                esc(&c.check)
            );
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</div>\n");
}

fn failure_html(s: &mut String, f: &FailedAttempt) {
    let _ = writeln!(
        s,
        "<div class=\"attempt failed\" data-verdict=\"error\" data-rep=\"{}\" data-attempt=\"{}\">\
         <p>rep {} · attempt {} · <strong class=\"v-error\">failed</strong>{}: {}</p></div>",
        f.repetition,
        f.attempt,
        f.repetition,
        if f.attempt == 0 {
            DASH.to_string()
        } else {
            f.attempt.to_string()
        },
        if f.worker_name.is_empty() {
            String::new()
        } else {
            format!(" on {}", esc(&f.worker_name))
        },
        esc(if f.reason.trim().is_empty() {
            DASH
        } else {
            &f.reason
        })
    );
}

fn drilldown(s: &mut String, report: &Report, outcomes: &[Outcome], failures: &[FailedAttempt]) {
    s.push_str("<section id=\"drilldown\">\n<h2>Every answer</h2>\n");
    let mut by: HashMap<(&str, &str), Vec<&Outcome>> = HashMap::new();
    for o in outcomes {
        by.entry((o.model.as_str(), o.task_id.as_str()))
            .or_default()
            .push(o);
    }
    let mut fails: HashMap<(&str, &str), Vec<&FailedAttempt>> = HashMap::new();
    for f in failures {
        fails
            .entry((f.model.as_str(), f.task_id.as_str()))
            .or_default()
            .push(f);
    }
    let Some(first) = report.models.first() else {
        s.push_str("<p class=\"muted\">No models.</p>\n</section>\n");
        return;
    };
    for task in &first.tasks {
        let _ = writeln!(
            s,
            "<h3 id=\"task-{}\">{}</h3>",
            esc(&anchor(&task.id)),
            esc(&task.id)
        );
        for m in &report.models {
            let key = (m.name.as_str(), task.id.as_str());
            let mut outs: Vec<&Outcome> = by.get(&key).cloned().unwrap_or_default();
            // by repetition, then attempt; stable, so equal keys keep the given order
            outs.sort_by_key(|o| (o.repetition, o.attempt));
            let mut fs: Vec<&FailedAttempt> = fails.get(&key).cloned().unwrap_or_default();
            fs.sort_by_key(|f| (f.repetition, f.attempt));
            let t = m.tasks.iter().find(|t| t.id == task.id);
            if outs.is_empty() && fs.is_empty() && t.is_none_or(|t| t.errors == 0) {
                continue;
            }
            let _ = writeln!(
                s,
                "<details class=\"drill\" data-model=\"{}\" data-task=\"{}\">\
                 <summary>{} · {}</summary>",
                esc(&m.name),
                esc(&task.id),
                esc(&m.name),
                summary_line(t, outs.len(), fs.len())
            );
            for o in outs {
                attempt_html(s, o);
            }
            // failed jobs the caller gave no attempt for are still shown, as failed
            let uncovered: Vec<&FailedJob> = report
                .failed_jobs
                .iter()
                .filter(|j| j.model == m.name && j.task_id == task.id)
                .filter(|j| !fs.iter().any(|f| f.repetition == j.repetition))
                .collect();
            for f in fs {
                failure_html(s, f);
            }
            for j in uncovered {
                failure_html(
                    s,
                    &FailedAttempt {
                        model: j.model.clone(),
                        task_id: j.task_id.clone(),
                        repetition: j.repetition,
                        reason: j.reason.clone(),
                        job_failed: true,
                        ..Default::default()
                    },
                );
            }
            s.push_str("</details>\n");
        }
    }
    s.push_str("</section>\n");
}

fn summary_line(t: Option<&TaskReport>, answers: usize, failed: usize) -> String {
    let mut line = match t {
        Some(t) if t.n > 0 => format!(
            "{} · {}/{} pass, {} partial, {} fail",
            esc(&percent(t.score, t.n)),
            t.pass,
            t.n,
            t.partial,
            t.fail
        ),
        _ => "no graded job".to_string(),
    };
    let _ = write!(line, " · {answers} answers");
    let errors = t.map_or(0, |t| t.errors).max(failed as u64);
    if errors > 0 {
        let _ = write!(line, " · <span class=\"failed\">{errors} failed</span>");
    }
    line
}

/// An id-safe form of a task id: ASCII alphanumerics, `-` and `_` kept, anything else `_`.
fn anchor(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn failed(s: &mut String, report: &Report, failures: &[FailedAttempt]) {
    s.push_str("<section id=\"failed\">\n<h2>Failed jobs</h2>\n");
    if report.failed_jobs.is_empty() && failures.is_empty() {
        s.push_str("<p class=\"muted\">None.</p>\n</section>\n");
        return;
    }
    s.push_str("<ul>\n");
    for f in &report.failed_jobs {
        let _ = writeln!(
            s,
            "<li class=\"failed-job\" data-model=\"{}\" data-task=\"{}\" data-rep=\"{}\">\
             <strong class=\"v-error\">failed</strong> {} · {} · rep {}: {}</li>",
            esc(&f.model),
            esc(&f.task_id),
            f.repetition,
            esc(&f.model),
            esc(&f.task_id),
            f.repetition,
            esc(if f.reason.trim().is_empty() {
                DASH
            } else {
                &f.reason
            })
        );
    }
    // attempts that failed but whose job went on to an answer (or is not in the report's list)
    for f in failures.iter().filter(|f| {
        !report
            .failed_jobs
            .iter()
            .any(|j| j.model == f.model && j.task_id == f.task_id && j.repetition == f.repetition)
    }) {
        let _ = writeln!(
            s,
            "<li class=\"failed-attempt\" data-model=\"{}\" data-task=\"{}\" data-rep=\"{}\">\
             attempt {} of {} · {} · rep {} failed{}: {}</li>",
            esc(&f.model),
            esc(&f.task_id),
            f.repetition,
            f.attempt,
            esc(&f.model),
            esc(&f.task_id),
            f.repetition,
            if f.job_failed { "" } else { " (retried)" },
            esc(if f.reason.trim().is_empty() {
                DASH
            } else {
                &f.reason
            })
        );
    }
    s.push_str("</ul>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(
            esc("<script>alert(\"x\" & 'y')</script>\0"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;\u{FFFD}"
        );
        assert_eq!(esc("plain — ü"), "plain — ü");
    }

    #[test]
    fn heat_colors_and_anchors() {
        assert_eq!(heat(0.0), "hsl(0,70%,78%)");
        assert_eq!(heat(1.0), "hsl(120,70%,78%)");
        assert_eq!(heat(f64::NAN), "#eaeef2");
        assert_eq!(heat(0.5), "hsl(60,70%,78%)");
        assert_eq!(anchor("a b/é"), "a_b__");
        assert_eq!(data_score(0.5, 2), "0.5");
        assert_eq!(data_score(0.0, 0), "");
    }
}
