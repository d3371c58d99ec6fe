//! The throughput section: the llama-bench-shaped table of a run's throughput tests (one row per
//! hardware class, model and test; `t/s` as llama-bench prints it, mean ± sample stddev over
//! the repetitions), in the pipe-table form the terminal and Markdown share and as HTML.
//!
//! Columns are llama-bench's (`model`, `size`, `params`, `backend`, `threads`, `test`, `t/s`),
//! with the hardware class first — the farm's point is the same test on every machine — and,
//! after them, how many repetitions were measured, on which workers, and the CPU features the
//! workers' builds use.

use std::fmt::Write;

use crate::render::DASH;
use crate::render::html::esc;
use crate::render::table::{Align, pipe_table};
use crate::throughput::ThroughputRow;

const HEADERS: [(&str, Align); 11] = [
    ("hardware", Align::Left),
    ("model", Align::Left),
    ("size", Align::Right),
    ("params", Align::Right),
    ("backend", Align::Left),
    ("threads", Align::Right),
    ("test", Align::Right),
    ("t/s", Align::Right),
    ("reps", Align::Right),
    ("workers", Align::Left),
    ("build", Align::Left),
];

/// llama-bench's size cell: MiB below a GiB, GiB above, two decimals; "—" when unknown.
fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    match bytes {
        0 => DASH.to_string(),
        b if (b as f64) < 1024.0 * MIB => format!("{:.2} MiB", b as f64 / MIB),
        b => format!("{:.2} GiB", b as f64 / (1024.0 * MIB)),
    }
}

/// llama-bench's params cell ("134.52 M", "1.24 B"); "—" when unknown.
fn params(n: u64) -> String {
    match n {
        0 => DASH.to_string(),
        n if n < 1_000_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n => format!("{:.2} B", n as f64 / 1e9),
    }
}

/// llama-bench's `t/s` cell: "avg ± stddev", two decimals.
fn rate(row: &ThroughputRow) -> String {
    if row.repetitions == 0 || !row.avg_ts.is_finite() {
        return DASH.to_string();
    }
    format!("{:.2} ± {:.2}", row.avg_ts, row.stddev_ts)
}

/// The distinct workers of a row, in first-seen order.
fn workers(row: &ThroughputRow) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for w in &row.workers {
        if !seen.contains(&w.as_str()) {
            seen.push(w);
        }
    }
    if seen.is_empty() {
        DASH.to_string()
    } else {
        seen.join(", ")
    }
}

fn features(row: &ThroughputRow) -> String {
    if row.build_features.is_empty() {
        DASH.to_string()
    } else {
        row.build_features.join(" ")
    }
}

fn cells(row: &ThroughputRow) -> Vec<String> {
    vec![
        row.hardware_class.clone(),
        row.model.clone(),
        size(row.model_size),
        params(row.model_n_params),
        row.backend.clone(),
        row.threads.to_string(),
        row.test.clone(),
        rate(row),
        row.repetitions.to_string(),
        workers(row),
        features(row),
    ]
}

/// The pipe table of `rows` (terminal and Markdown).
pub(crate) fn table(rows: &[ThroughputRow]) -> String {
    let body: Vec<Vec<String>> = rows.iter().map(cells).collect();
    pipe_table(&HEADERS, &body)
}

/// The HTML section, when the run has throughput results.
pub(crate) fn html(s: &mut String, rows: &[ThroughputRow]) {
    if rows.is_empty() {
        return;
    }
    s.push_str(
        "<section id=\"throughput-section\">\n<h2>Throughput (llama-bench tests)</h2>\n\
         <table id=\"throughput\">\n<caption>llama-bench's procedure on each worker's build: \
         t/s is the mean ± sample standard deviation over the repetitions of each test.\
         </caption>\n<thead><tr>",
    );
    for (h, _) in HEADERS {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        let _ = write!(
            s,
            "<tr data-class=\"{}\" data-model=\"{}\" data-test=\"{}\" data-avg-ts=\"{}\" data-reps=\"{}\">",
            esc(&row.hardware_class),
            esc(&row.model),
            esc(&row.test),
            row.avg_ts,
            row.repetitions
        );
        for cell in cells(row) {
            let _ = write!(s, "<td>{}</td>", esc(&cell));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ThroughputRow {
        ThroughputRow {
            hardware_class: "x86_64 epyc".into(),
            model: "SmolLM2".into(),
            model_size: 100_000_000,
            model_n_params: 134_515_008,
            backend: "CPU".into(),
            threads: 2,
            test: "tg8".into(),
            n_prompt: 0,
            n_gen: 8,
            repetitions: 2,
            samples_ts: vec![50.0, 60.0],
            workers: vec!["a".into(), "b".into()],
            avg_ts: 55.0,
            stddev_ts: 7.0710678,
            build_features: vec!["AVX2".into(), "FMA".into()],
        }
    }

    #[test]
    fn cells_are_llama_bench_shaped() {
        assert_eq!(
            cells(&row()),
            [
                "x86_64 epyc",
                "SmolLM2",
                "95.37 MiB",
                "134.52 M",
                "CPU",
                "2",
                "tg8",
                "55.00 ± 7.07",
                "2",
                "a, b",
                "AVX2 FMA"
            ]
        );
        let unknown = ThroughputRow {
            model_size: 0,
            model_n_params: 0,
            repetitions: 0,
            workers: vec![],
            build_features: vec![],
            ..row()
        };
        let c = cells(&unknown);
        assert_eq!(
            (c[2].as_str(), c[3].as_str(), c[7].as_str()),
            (DASH, DASH, DASH)
        );
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.00 GiB");
        assert_eq!(params(1_240_000_000), "1.24 B");
    }

    #[test]
    fn html_escapes_and_is_absent_without_rows() {
        let mut s = String::new();
        html(&mut s, &[]);
        assert!(s.is_empty());
        let mut r = row();
        r.model = "<b>".into();
        html(&mut s, &[r]);
        assert!(s.contains("&lt;b&gt;") && !s.contains("<b>"), "{s}");
        assert!(s.contains("data-test=\"tg8\""));
    }
}
