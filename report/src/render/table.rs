//! The terminal table: the summary pipe table with aligned columns and a one-line footer.
//!
//! The pipe-table layout ([`pipe_table`]) is shared with the Markdown renderer: the separator row
//! carries Markdown alignment colons, so the same text reads well in a terminal and renders as a
//! table on a Markdown page. Widths count `char`s, which is right for the ASCII, "—" and "±"
//! this crate emits; double-width glyphs in model names may shift a column but never break one.

use crate::render::{
    DASH, cell_text, dollars, one_decimal, percent, plus_minus, ranked, reps, seconds, size_cell,
    workers_cell,
};
use crate::report::Report;

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// Lays out a pipe table; cells are escaped with [`cell_text`], short rows are padded with
/// empty cells and extra cells are dropped, so any input gives a rectangular table.
pub(crate) fn pipe_table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let escaped: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            (0..headers.len())
                .map(|i| row.get(i).map(|c| cell_text(c)).unwrap_or_default())
                .collect()
        })
        .collect();
    let titles: Vec<String> = headers.iter().map(|(h, _)| cell_text(h)).collect();
    let widths: Vec<usize> = titles
        .iter()
        .enumerate()
        .map(|(i, h)| {
            escaped
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([h.chars().count(), 3]) // 3: room for "--:" in the separator
                .max()
                .unwrap_or(3)
        })
        .collect();

    let line = |cells: Vec<String>| -> String {
        let mut s = String::from("|");
        for ((cell, (_, align)), width) in cells.iter().zip(headers).zip(&widths) {
            let pad = width.saturating_sub(cell.chars().count());
            let (left, right) = match align {
                Align::Left => (0, pad),
                Align::Right => (pad, 0),
            };
            s.push(' ');
            s.push_str(&" ".repeat(left));
            s.push_str(cell);
            s.push_str(&" ".repeat(right));
            s.push_str(" |");
        }
        s.push('\n');
        s
    };

    let mut out = line(titles);
    let mut sep = String::from("|");
    for ((_, align), width) in headers.iter().zip(&widths) {
        match align {
            Align::Left => sep.push_str(&format!(" {} |", "-".repeat(*width))),
            Align::Right => sep.push_str(&format!(" {}: |", "-".repeat(width.saturating_sub(1)))),
        }
    }
    sep.push('\n');
    out.push_str(&sep);
    for row in escaped {
        out.push_str(&line(row));
    }
    out
}

/// The summary table: one row per model, best score first.
pub(crate) fn summary(report: &Report) -> String {
    let headers = [
        ("Model", Align::Left),
        ("Size", Align::Right),
        ("Score", Align::Right),
        ("±95% tasks", Align::Right),
        ("±95% reps", Align::Right),
        ("Time", Align::Right),
        ("tg tok/s", Align::Right),
        ("Cost", Align::Right),
        ("Workers", Align::Left),
    ];
    let rows: Vec<Vec<String>> = ranked(report)
        .into_iter()
        .map(|m| {
            vec![
                m.name.clone(),
                size_cell(m),
                percent(m.score, m.n),
                plus_minus(m.score_ci95, m.n),
                plus_minus(m.score_ci95_repetitions, m.n),
                seconds(m.timing.mean_seconds),
                one_decimal(m.timing.gen_tokens_per_second),
                dollars(m.cost_usd),
                workers_cell(&m.workers),
            ]
        })
        .collect();
    pipe_table(&headers, &rows)
}

/// "run ID · suite NAME vVERSION · N reps · X/Y jobs · F failed", plus the run's cost when it
/// paid for anything and the state while the run is not finished, so a partial table is never
/// mistaken for a final one.
pub(crate) fn footer(report: &Report) -> String {
    let mut s = format!(
        "run {} · suite {} v{} · {} · {}/{} jobs · {} failed",
        report.run,
        report.suite.name,
        report.suite.version,
        reps(report.repetitions),
        report.jobs_done,
        report.jobs_total,
        report.jobs_failed,
    );
    // A sign of stale or tampered workers, and results whose timings were not believed: shown
    // whenever there are any.
    if report.grade_disagreements > 0 {
        s.push_str(&format!(
            " · grade disagreements: {}",
            report.grade_disagreements
        ));
    }
    if !report.implausible_timings.is_empty() {
        s.push_str(&format!(
            " · implausible timings: {}",
            report.implausible_timings.len()
        ));
    }
    match report.cost_usd {
        Some(c) if c > 0.0 => s.push_str(&format!(" · cost {}", dollars(Some(c)))),
        None => s.push_str(&format!(" · cost {DASH} (a remote model has no price)")),
        _ => {}
    }
    if report.state != "finished" {
        let state = if report.state.is_empty() {
            DASH
        } else {
            &report.state
        };
        s.push_str(&format!(" · {state}"));
    }
    // The footer is one line whatever the ids contain.
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The `table` format.
pub(crate) fn render(report: &Report) -> String {
    let mut out = summary(report);
    out.push_str(&footer(report));
    out.push('\n');
    if !report.throughput.is_empty() {
        out.push_str("\nthroughput (llama-bench tests: mean ± stddev t/s over repetitions)\n");
        out.push_str(&crate::render::throughput::table(&report.throughput));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_table_aligns_and_pads() {
        let t = pipe_table(
            &[("A", Align::Left), ("Num", Align::Right)],
            &[
                vec!["x".into(), "1".into()],
                vec!["long|name".into()],
                vec!["y".into(), "22".into(), "dropped".into()],
            ],
        );
        let expected = "\
| A          | Num |
| ---------- | --: |
| x          |   1 |
| long\\|name |     |
| y          |  22 |
";
        assert_eq!(t, expected);
    }

    #[test]
    fn pipe_table_escapes_headers_before_measuring() {
        let t = pipe_table(&[("a|b", Align::Left)], &[vec!["x".into()]]);
        assert_eq!(t, "| a\\|b |\n| ---- |\n| x    |\n");
    }

    #[test]
    fn pipe_table_counts_chars_not_bytes() {
        let t = pipe_table(
            &[("±", Align::Left)],
            &[vec!["—".into()], vec!["abcd".into()]],
        );
        let widths: Vec<usize> = t.lines().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{t}");
    }
}
