//! `render`: dispatch to one renderer per [`Format`], plus the cell formatting they share; and
//! the two renderers that are not report formats: a [`crate::Comparison`] (`compare.rs`) and the
//! terminal listing of answers (`answers.rs`).
//!
//! Renderers are total: every report (even one deserialized from someone else's JSON, with NaN
//! or inconsistent numbers) renders without panicking. A value that does not exist — the score of
//! a model with no graded job, a throughput with no measured time — is shown as "—" in the
//! human formats and as an empty field in CSV, never as a misleading 0.

mod answers;
mod compare;
mod csv;
mod html;
mod json;
mod jsonl;
mod markdown;
mod svg;
mod table;
mod throughput;

pub use answers::{AnswerFilter, render_answers};
pub use compare::{CompareFormat, UnknownCompareFormat, render_comparison};
pub use jsonl::JSONL_SCHEMA;

use crate::format::Format;
use crate::outcome::{FailedAttempt, Outcome};
use crate::report::{ModelReport, Report};

/// Shown wherever a value does not exist.
pub(crate) const DASH: &str = "—";

/// Renders `report` in `format`, without per-attempt failures: [`render_run`] with no
/// [`FailedAttempt`]s (kept so that existing callers keep their output). Every line of the
/// result, the last included, ends with a newline (JSONL of nothing is the empty string).
pub fn render(report: &Report, outcomes: &[Outcome], format: Format) -> String {
    render_run(report, outcomes, &[], format)
}

/// Renders `report` in `format`. `outcomes` (every result, counted or not) is read by the
/// formats that show answers — [`Format::Jsonl`] (one line each) and [`Format::Html`] (the
/// drill-down) — and `failures` (every attempt that ended without an answer) by the same two,
/// so that a failed attempt is a line, not a gap. The aggregated formats read only `report`.
pub fn render_run(
    report: &Report,
    outcomes: &[Outcome],
    failures: &[FailedAttempt],
    format: Format,
) -> String {
    match format {
        Format::Table => table::render(report),
        Format::Markdown => markdown::render(report),
        Format::Csv => csv::render(report),
        Format::Json => json::render(report),
        Format::Jsonl => jsonl::render(outcomes, failures),
        Format::Html => html::render(report, outcomes, failures),
    }
}

/// Models by score, best first; ties (and NaN scores) keep plan order, and models without a
/// graded job go last because their 0 is "unknown", not "bad".
pub(crate) fn ranked(report: &Report) -> Vec<&ModelReport> {
    let mut models: Vec<&ModelReport> = report.models.iter().collect();
    models.sort_by(|a, b| {
        (b.n > 0).cmp(&(a.n > 0)).then_with(|| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    models
}

/// Decimal (SI) size: "98 MB", "1.8 GB"; one decimal below 10 of a unit, none above.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && value >= 1000.0 {
        value /= 1000.0;
        unit += 1;
    }
    // Rounding may carry into the next unit (999.96 MB → "1000 MB"); step up instead.
    if value.round() >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if value < 9.95 {
        format!("{value:.1} {name}")
    } else {
        format!("{value:.0} {name}")
    }
}

/// The Size column: "scripted" for the weightless test double, "—" for an unknown size.
pub(crate) fn size_cell(m: &ModelReport) -> String {
    match (m.size_bytes, m.kind.as_str()) {
        (_, "remote") => "remote".to_string(),
        (0, "scripted") => "scripted".to_string(),
        (0, _) => DASH.to_string(),
        (b, _) => human_size(b),
    }
}

/// Dollars: "$0.00" for nothing spent, four decimals below a cent ("$0.0042"), two above
/// ("$1.25"); "—" when unknown (a remote model without a price).
pub(crate) fn dollars(cost: Option<f64>) -> String {
    match cost {
        Some(c) if c.is_finite() && c > 0.0 && c < 0.01 => format!("${c:.4}"),
        Some(c) if c.is_finite() => format!("${c:.2}"),
        _ => DASH.to_string(),
    }
}

/// Score as a percentage with one decimal ("23.3%"), "—" without graded jobs.
pub(crate) fn percent(score: f64, n: u64) -> String {
    if n == 0 {
        return DASH.to_string();
    }
    format!("{:.1}%", score * 100.0)
}

/// Half-width of the 95 % interval in percentage points ("±8.3").
pub(crate) fn plus_minus(ci: [f64; 2], n: u64) -> String {
    if n == 0 {
        return DASH.to_string();
    }
    format!("±{:.1}", (ci[1] - ci[0]) / 2.0 * 100.0)
}

pub(crate) fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| DASH.to_string(), |s| format!("{s:.2} s"))
}

pub(crate) fn one_decimal(x: Option<f64>) -> String {
    x.map_or_else(|| DASH.to_string(), |x| format!("{x:.1}"))
}

/// Worker count, with the names when there are few enough to read at a glance.
pub(crate) fn workers_cell(workers: &[String]) -> String {
    match workers.len() {
        0 => DASH.to_string(),
        1..=3 => format!("{} ({})", workers.len(), workers.join(", ")),
        n => n.to_string(),
    }
}

/// Makes arbitrary text safe inside one pipe-table cell: a `|` would start a new column and a
/// line break would end the row, so pipes are escaped and control characters become spaces.
pub(crate) fn cell_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '|' => out.push_str("\\|"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// "1 rep" / "3 reps".
pub(crate) fn reps(n: u32) -> String {
    if n == 1 {
        "1 rep".to_string()
    } else {
        format!("{n} reps")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        // 98_000_000 B = 98.0 MB → "98 MB" (≥ 10, no decimal)
        assert_eq!(human_size(98_000_000), "98 MB");
        // 1_800_000_000 B = 1.8 GB
        assert_eq!(human_size(1_800_000_000), "1.8 GB");
        // 5_549_000 B = 5.549 MB → one decimal → "5.5 MB"
        assert_eq!(human_size(5_549_000), "5.5 MB");
        // 999_960_000 B = 999.96 MB would round to "1000 MB"; shown as 1.0 GB instead
        assert_eq!(human_size(999_960_000), "1.0 GB");
        // 9_960_000 B = 9.96 MB would print "10.0 MB" with one decimal; shown as "10 MB"
        assert_eq!(human_size(9_960_000), "10 MB");
        assert_eq!(human_size(u64::MAX), "18 EB");
    }

    #[test]
    fn cells() {
        assert_eq!(percent(0.2333, 30), "23.3%");
        assert_eq!(percent(0.0, 0), DASH);
        // [0.15, 0.316]: (0.316 − 0.15) / 2 = 0.083 → 8.3 points
        assert_eq!(plus_minus([0.15, 0.316], 30), "±8.3");
        assert_eq!(plus_minus([0.0, 0.0], 0), DASH);
        assert_eq!(seconds(Some(1.4249)), "1.42 s");
        assert_eq!(seconds(None), DASH);
        assert_eq!(one_decimal(Some(41.26)), "41.3");
        assert_eq!(workers_cell(&[]), DASH);
        assert_eq!(workers_cell(&["a".into(), "b".into()]), "2 (a, b)");
        let four: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(workers_cell(&four), "4");
        assert_eq!(cell_text("a|b\nc"), "a\\|b c");
        assert_eq!(reps(1), "1 rep");
        assert_eq!(reps(3), "3 reps");
        assert_eq!(dollars(Some(0.0)), "$0.00");
        assert_eq!(dollars(Some(0.0042)), "$0.0042");
        assert_eq!(dollars(Some(1.254)), "$1.25");
        assert_eq!(dollars(None), DASH);
        assert_eq!(dollars(Some(f64::NAN)), DASH);
    }
}
