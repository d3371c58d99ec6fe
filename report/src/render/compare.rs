//! Rendering of a [`Comparison`]: a terminal table, Markdown, or JSON (the struct itself).
//!
//! The human formats print one summary row per model pair, then per task and per hardware class,
//! with "⚑" beside what is flagged, and say in a footnote what each interval and test is, so
//! nobody has to guess whether "±" means tasks or repetitions. Differences are in percentage
//! points (A − B); ratios are A / B.

use std::fmt;
use std::str::FromStr;

use crate::compare::{Comparison, McNemar};
use crate::render::table::{Align, pipe_table};

/// The formats `compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareFormat {
    Table,
    Markdown,
    Json,
}

impl CompareFormat {
    pub const ALL: [CompareFormat; 3] = [
        CompareFormat::Table,
        CompareFormat::Markdown,
        CompareFormat::Json,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CompareFormat::Table => "table",
            CompareFormat::Markdown => "md",
            CompareFormat::Json => "json",
        }
    }
}

impl fmt::Display for CompareFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compare format {0:?} (expected one of: table, md, json)")]
pub struct UnknownCompareFormat(pub String);

impl FromStr for CompareFormat {
    type Err = UnknownCompareFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(CompareFormat::Table),
            "md" | "markdown" => Ok(CompareFormat::Markdown),
            "json" => Ok(CompareFormat::Json),
            _ => Err(UnknownCompareFormat(s.to_string())),
        }
    }
}

/// Renders `c`; every line ends with a newline.
pub fn render_comparison(c: &Comparison, format: CompareFormat) -> String {
    match format {
        CompareFormat::Json => {
            let mut out = match serde_json::to_string_pretty(c) {
                Ok(s) => s,
                Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
            };
            out.push('\n');
            out
        }
        CompareFormat::Table => human(c, false),
        CompareFormat::Markdown => human(c, true),
    }
}

fn points(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}", x * 100.0)
    } else {
        crate::render::DASH.to_string()
    }
}

fn interval_points(ci: [f64; 2]) -> String {
    format!("[{}, {}]", points(ci[0]), points(ci[1]))
}

fn pct(x: f64) -> String {
    crate::render::percent(x, 1)
}

fn p_value(p: f64) -> String {
    if !p.is_finite() {
        crate::render::DASH.to_string()
    } else if p < 0.001 {
        "<0.001".to_string()
    } else {
        format!("{p:.3}")
    }
}

fn discordant(m: &McNemar) -> String {
    format!("{}/{}", m.a_only, m.b_only)
}

fn flag(f: bool) -> String {
    if f { "⚑" } else { "" }.to_string()
}

fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        crate::render::DASH.to_string()
    }
}

fn human(c: &Comparison, md: bool) -> String {
    let heading = |level: &str, text: &str| -> String {
        if md {
            format!("{level} {text}\n\n")
        } else {
            format!("{text}\n")
        }
    };
    let mut out = String::new();
    let title = format!(
        "compare A = run {} ({} v{}) vs B = run {} ({} v{})",
        c.a.run, c.a.suite_name, c.a.suite_version, c.b.run, c.b.suite_name, c.b.suite_version
    );
    let title: String = title
        .chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .collect();
    out.push_str(&heading("#", &title));
    if c.suite_changed {
        out.push_str(
            "warning: the two sides ran different suite versions (--allow-suite-change)\n\n",
        );
    }
    if c.models.is_empty() {
        out.push_str("No model pairs.\n");
        return out;
    }
    let rows: Vec<Vec<String>> = c
        .models
        .iter()
        .map(|m| {
            vec![
                m.model_a.clone(),
                m.model_b.clone(),
                m.pairs.to_string(),
                pct(m.score_a),
                pct(m.score_b),
                points(m.diff),
                interval_points(m.diff_ci95),
                discordant(&m.mcnemar),
                p_value(m.mcnemar.p_value),
                flag(m.flagged),
            ]
        })
        .collect();
    let headers = [
        ("A", Align::Left),
        ("B", Align::Left),
        ("Pairs", Align::Right),
        ("Score A", Align::Right),
        ("Score B", Align::Right),
        ("A−B pts", Align::Right),
        ("95% CI (paired bootstrap)", Align::Right),
        ("A-only/B-only", Align::Right),
        ("McNemar p", Align::Right),
        ("", Align::Left),
    ];
    out.push_str(&heading("##", "Models"));
    out.push_str(&pipe_table(&headers, &rows));
    for m in &c.models {
        out.push('\n');
        out.push_str(&heading(
            "##",
            &format!("{} vs {}: per task", m.model_a, m.model_b).replace(['\n', '\r'], " "),
        ));
        let rows: Vec<Vec<String>> = m
            .tasks
            .iter()
            .map(|t| {
                vec![
                    t.task_id.clone(),
                    t.pairs.to_string(),
                    pct(t.score_a),
                    pct(t.score_b),
                    points(t.diff),
                    interval_points(t.diff_ci95),
                    discordant(&t.mcnemar),
                    p_value(t.mcnemar.p_value),
                    p_value(t.p_holm),
                    flag(t.flagged),
                ]
            })
            .collect();
        if rows.is_empty() {
            out.push_str("No shared (task, repetition) pairs.\n");
        } else {
            let headers = [
                ("Task", Align::Left),
                ("Pairs", Align::Right),
                ("Score A", Align::Right),
                ("Score B", Align::Right),
                ("A−B pts", Align::Right),
                ("95% CI (over repetitions)", Align::Right),
                ("A-only/B-only", Align::Right),
                ("McNemar p", Align::Right),
                ("Holm p", Align::Right),
                ("", Align::Left),
            ];
            out.push_str(&pipe_table(&headers, &rows));
        }
        if !m.speed.is_empty() {
            out.push('\n');
            out.push_str(&heading(
                "##",
                &format!("{} vs {}: generation speed", m.model_a, m.model_b)
                    .replace(['\n', '\r'], " "),
            ));
            let rows: Vec<Vec<String>> = m
                .speed
                .iter()
                .map(|s| {
                    vec![
                        s.hardware_class.clone(),
                        format!("{:.1}", s.gen_tokens_per_second_a),
                        format!("{:.1}", s.gen_tokens_per_second_b),
                        ratio(s.ratio),
                        format!("[{}, {}]", ratio(s.ratio_ci95[0]), ratio(s.ratio_ci95[1])),
                        format!("{}/{}", s.jobs_a, s.jobs_b),
                        flag(s.flagged),
                    ]
                })
                .collect();
            let headers = [
                ("Hardware", Align::Left),
                ("tg tok/s A", Align::Right),
                ("tg tok/s B", Align::Right),
                ("A/B", Align::Right),
                ("95% CI", Align::Right),
                ("Jobs A/B", Align::Right),
                ("", Align::Left),
            ];
            out.push_str(&pipe_table(&headers, &rows));
        }
    }
    out.push_str(&format!(
        "\nA−B in percentage points over shared (task, repetition) pairs. Model CI: {}-resample \
         paired bootstrap drawing tasks, then repetitions within them; task CI: over the task's \
         repetitions. McNemar: exact, pass vs not-pass (partial credit only in the CI). Holm p: \
         corrected across the tasks compared. ⚑: model CI excludes 0; task CI excludes 0 and \
         Holm p < 0.05; speed CI excludes 1.\n",
        c.resamples
    ));
    out
}
