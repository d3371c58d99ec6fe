//! Hand-written inline SVG charts for the HTML report: the score-vs-time scatter with CI
//! whiskers and the Pareto front, and the generation-speed bars per model × hardware class.
//!
//! Hand-written rather than a vendored chart library: two chart types of a few dozen elements
//! each do not justify shipping (and auditing) a JavaScript library inside every report, the
//! page then needs no script at all, and the output is plain text that unit tests can read and
//! that is byte-for-byte deterministic. Charts scale with their container (`viewBox`, width
//! 100 %), so they read on a phone as well as at 1280 px. Every number is finite-checked before
//! it becomes a coordinate; a model without the figure is left out of that chart and listed as
//! such, never drawn at 0.

use std::fmt::Write as _;

use crate::render::html::esc;
use crate::report::{HardwareReport, ModelReport};

const W: f64 = 640.0;
const PAD_L: f64 = 68.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 16.0;
const PAD_B: f64 = 44.0;

/// A "nice" tick step (1, 2 or 5 × 10^k) giving about `ticks` intervals over 0..max.
pub(crate) fn nice_step(max: f64, ticks: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let raw = max / ticks.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    step * mag
}

/// Short number for an axis label with as many decimals as the tick step needs (so that steps
/// of 0.002 s read 0, 0.002, 0.004, not 0, 0, 0, 0.01), without trailing zeros.
fn tick_label(x: f64, step: f64) -> String {
    let decimals = if step.is_finite() && step > 0.0 {
        // 1e-3 → 3; a 1, 2 or 5 × 10^k step needs exactly -k decimals (rounded against 0.999…)
        (-(step.log10() + 1e-9).floor()).clamp(0.0, 9.0) as usize
    } else {
        2
    };
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A point of the scatter.
struct Point<'a> {
    name: &'a str,
    secs: f64,
    score: f64,
    ci: [f64; 2],
    ci_reps: [f64; 2],
}

/// Indices of the Pareto-optimal points: no other point is at least as fast *and* at least as
/// good with one of the two strictly better. Fastest first.
fn pareto(points: &[Point]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    idx.sort_by(|&a, &b| {
        let (pa, pb) = (&points[a], &points[b]);
        pa.secs
            .total_cmp(&pb.secs)
            .then_with(|| pb.score.total_cmp(&pa.score))
    });
    let mut front = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for i in idx {
        if let Some(p) = points.get(i)
            && p.score > best
        {
            best = p.score;
            front.push(i);
        }
    }
    front
}

/// Score (y, 0..100 %) against mean seconds per job (x), whiskers for both intervals (thin:
/// over tasks; thick: over repetitions), the Pareto front as a dashed step line with ringed
/// points. Models without graded jobs or without a measured time are listed under the chart.
pub(crate) fn scatter(models: &[&ModelReport]) -> String {
    let points: Vec<Point> = models
        .iter()
        .filter(|m| m.n > 0 && m.score.is_finite())
        .filter_map(|m| {
            let secs = m
                .timing
                .mean_seconds
                .filter(|s| s.is_finite() && *s >= 0.0)?;
            Some(Point {
                name: &m.name,
                secs,
                score: m.score.clamp(0.0, 1.0),
                ci: m.score_ci95.map(|x| {
                    if x.is_finite() {
                        x.clamp(0.0, 1.0)
                    } else {
                        0.0
                    }
                }),
                ci_reps: m.score_ci95_repetitions.map(|x| {
                    if x.is_finite() {
                        x.clamp(0.0, 1.0)
                    } else {
                        0.0
                    }
                }),
            })
        })
        .collect();
    let h = 360.0;
    let max_secs = points.iter().map(|p| p.secs).fold(0.0f64, f64::max);
    let step = nice_step(max_secs, 5.0);
    // 10 % headroom so the slowest point's label is not cut off at the right edge
    let x_max = if max_secs > 0.0 {
        (max_secs * 1.1 / step).ceil().max(1.0) * step
    } else {
        1.0
    };
    let plot_w = W - PAD_L - PAD_R;
    let plot_h = h - PAD_T - PAD_B;
    let x = |s: f64| PAD_L + s / x_max * plot_w;
    let y = |v: f64| PAD_T + (1.0 - v) * plot_h;

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"scatter\" viewBox=\"0 0 {W} {h}\" role=\"img\" \
         aria-label=\"Score against mean seconds per job\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    // grid and axes
    for k in 0..=4 {
        let v = f64::from(k) * 0.25;
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{PAD_L}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}%</text>",
            W - PAD_R,
            y(v),
            y(v),
            PAD_L - 6.0,
            y(v) + 4.0,
            k * 25
        );
    }
    let mut t = 0.0;
    while t <= x_max + step / 2.0 {
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{PAD_T}\" y2=\"{:.1}\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x(t),
            x(t),
            PAD_T + plot_h,
            x(t),
            PAD_T + plot_h + 16.0,
            tick_label(t, step)
        );
        t += step;
    }
    let _ = write!(
        s,
        "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">mean seconds per job</text>\
         <text class=\"axis\" x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">score</text>",
        PAD_L + plot_w / 2.0,
        h - 6.0,
        PAD_T + plot_h / 2.0,
        PAD_T + plot_h / 2.0
    );
    // Pareto front: a step line (a faster model's score holds until a slower one beats it)
    let front = pareto(&points);
    if front.len() > 1 {
        let mut d = String::new();
        for (k, &i) in front.iter().enumerate() {
            let Some(p) = points.get(i) else { continue };
            if k == 0 {
                let _ = write!(d, "M{:.1},{:.1}", x(p.secs), y(p.score));
            } else {
                let _ = write!(d, " H{:.1} V{:.1}", x(p.secs), y(p.score));
            }
        }
        let _ = write!(s, "<path class=\"pareto-line\" d=\"{d}\"/>");
    }
    for (i, p) in points.iter().enumerate() {
        let on_front = front.contains(&i);
        let (cx, cy) = (x(p.secs), y(p.score));
        let _ = write!(
            s,
            "<g class=\"point{}\" data-model=\"{}\" data-score=\"{}\" data-seconds=\"{}\" \
             data-pareto=\"{}\"><title>{}: {:.1}% (95% over tasks {:.1}–{:.1}%, over repetitions \
             {:.1}–{:.1}%), {:.2} s/job</title>\
             <line class=\"whisker\" x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
             <line class=\"whisker-reps\" x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
             <circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{}\"/>\
             <text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\">{}</text></g>",
            if on_front { " pareto" } else { "" },
            esc(p.name),
            p.score,
            p.secs,
            on_front,
            esc(p.name),
            p.score * 100.0,
            p.ci[0] * 100.0,
            p.ci[1] * 100.0,
            p.ci_reps[0] * 100.0,
            p.ci_reps[1] * 100.0,
            p.secs,
            y(p.ci[0]),
            y(p.ci[1]),
            y(p.ci_reps[0]),
            y(p.ci_reps[1]),
            if on_front { 6 } else { 4 },
            // labels of points near the right edge go to their left
            if cx > W - 140.0 { cx - 8.0 } else { cx + 8.0 },
            cy - 6.0,
            if cx > W - 140.0 { "end" } else { "start" },
            esc(p.name)
        );
    }
    s.push_str("</svg>\n");
    let missing: Vec<String> = models
        .iter()
        .filter(|m| !points.iter().any(|p| p.name == m.name))
        .map(|m| esc(&m.name))
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            s,
            "<p class=\"muted\">Not plotted (no graded job or no measured time): {}</p>",
            missing.join(", ")
        );
    }
    s
}

/// Horizontal bars of generation tok/s (token-weighted), grouped by hardware class (sorted),
/// one bar per model that ran there, on one shared scale so classes compare at a glance.
pub(crate) fn speed_bars(rows: &[&HardwareReport]) -> String {
    let bars: Vec<(&HardwareReport, f64)> = rows
        .iter()
        .filter_map(|h| {
            let r = h
                .timing
                .gen_tokens_per_second
                .filter(|r| r.is_finite() && *r >= 0.0)?;
            Some((*h, r))
        })
        .collect();
    if bars.is_empty() {
        return "<p class=\"muted\">No generation speed measured yet.</p>\n".to_string();
    }
    let max = bars.iter().map(|(_, r)| *r).fold(0.0f64, f64::max);
    let scale = if max > 0.0 { max } else { 1.0 };
    // The model's name sits above its bar, left-aligned: long GGUF names need the whole width,
    // which a label column beside the bars would not give them on a phone.
    let (row_h, bar_h, head) = (50.0, 14.0, 30.0);
    let mut classes: Vec<&str> = bars.iter().map(|(h, _)| h.class.as_str()).collect();
    classes.dedup();
    let height = bars.len() as f64 * row_h + classes.len() as f64 * head + 4.0;
    let bar_w = W - 80.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"speed\" viewBox=\"0 0 {W} {height:.0}\" role=\"img\" \
         aria-label=\"Generation tokens per second per model and hardware class\" \
         xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let mut yy = 0.0;
    let mut current: Option<&str> = None;
    for (h, r) in &bars {
        if current != Some(h.class.as_str()) {
            current = Some(h.class.as_str());
            yy += head;
            let _ = write!(
                s,
                "<text class=\"class\" x=\"0\" y=\"{:.1}\">{}</text>",
                yy - 8.0,
                esc(if h.class.is_empty() { "—" } else { &h.class })
            );
        }
        let w = (r / scale * bar_w).max(1.0);
        let _ = write!(
            s,
            "<g class=\"bar\" data-model=\"{}\" data-class=\"{}\" data-tps=\"{}\">\
             <title>{} on {}: {:.1} tok/s</title>\
             <text class=\"label\" x=\"0\" y=\"{:.1}\">{}</text>\
             <rect x=\"0\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{bar_h}\"/>\
             <text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{:.1}</text></g>",
            esc(&h.model),
            esc(&h.class),
            r,
            esc(&h.model),
            esc(&h.class),
            r,
            yy + 18.0,
            esc(&h.model),
            yy + 26.0,
            w + 6.0,
            yy + 38.0,
            r
        );
        yy += row_h;
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, secs: f64, score: f64) -> Point<'_> {
        Point {
            name,
            secs,
            score,
            ci: [score, score],
            ci_reps: [score, score],
        }
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(7.0, 5.0), 2.0);
        assert_eq!(nice_step(0.3, 5.0), 0.1);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        assert_eq!(nice_step(f64::NAN, 5.0), 1.0);
        assert_eq!(tick_label(0.5, 0.5), "0.5");
        assert_eq!(tick_label(2.0, 2.0), "2");
        assert_eq!(tick_label(20.0, 10.0), "20");
        assert_eq!(tick_label(0.006, 0.002), "0.006");
        assert_eq!(tick_label(0.0, 0.002), "0");
    }

    #[test]
    fn axis_ticks_are_distinct_at_every_scale() {
        // The scatter's x axis once read "0, 0, 0, 0.01, 0.01" for sub-10 ms jobs (scripted
        // models): labels were rounded to two decimals whatever the step.
        for max in [
            0.0007, 0.003, 0.009, 0.04, 0.3, 1.0, 7.5, 42.0, 950.0, 12_345.0,
        ] {
            let step = nice_step(max, 5.0);
            let labels: Vec<String> = (0..8)
                .map(|k| tick_label(f64::from(k) * step, step))
                .collect();
            let mut unique = labels.clone();
            unique.dedup();
            assert_eq!(unique, labels, "max {max}, step {step}: {labels:?}");
            assert_eq!(labels[0], "0");
        }
    }

    #[test]
    fn pareto_front() {
        // a: fastest (1 s, 50 %); b: slow but best (3 s, 90 %); c (2 s, 40 %) is dominated by a,
        // which is faster and better; d ties b's time with a worse score: front = a, b
        let pts = [
            p("a", 1.0, 0.5),
            p("b", 3.0, 0.9),
            p("c", 2.0, 0.4),
            p("d", 3.0, 0.8),
        ];
        assert_eq!(pareto(&pts), [0, 1]);
        assert!(pareto(&[]).is_empty());
    }
}
