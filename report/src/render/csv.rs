//! The `csv` format: one row per model × task, for spreadsheets and scripts.
//!
//! RFC 4180 quoting, written by hand because it is ten lines and a `csv` dependency would be
//! larger than this renderer: a field containing a comma, a double quote, CR or LF is wrapped in
//! double quotes with inner quotes doubled. Records end with "\n" (every CSV reader accepts it).
//! Values that do not exist — the score of a cell with no graded job, a timing never measured —
//! are empty fields rather than 0, so averaging a column does not count missing data as failure.
//! Numbers are written with Rust's shortest round-trip formatting (full precision).
//!
//! Formula injection: a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and some
//! also after a leading tab or CR) as a formula, and model and task names come from plan files
//! anyone can write. Text fields starting with one of those characters get a leading `'` (the
//! OWASP recommendation), which spreadsheets show as text; numeric fields are never negative
//! and are written by this crate, so they are left alone.

use crate::report::Report;

/// `failed_jobs` (after the first ten columns, so their readers are unaffected) counts the cell's
/// jobs that ended without an answer: a failed job is a number here, not a gap. Then
/// `grade_disagreements` (results whose worker's verdict differed from the coordinator's),
/// `implausible_timings` (results whose timings were left out of `mean_seconds` and the speed) and
/// `model_cost_usd` (last: the model's cost over the whole run, repeated on each of its rows: 0 for
/// local models, empty when unknown, a remote model without a price). Then the two 95 % intervals,
/// as fractions like `score`, empty where the cell has no graded job: the cell's own interval
/// over repetitions (`score_ci95_repetitions_lo/hi`: the tasks's repetitions resampled), and the
/// model's two, repeated on each of its rows like its cost: over tasks (`model_score_ci95_tasks`:
/// how the score would move on other tasks like these) and over repetitions with the task set
/// fixed (`model_score_ci95_repetitions`: the sampling noise more repetitions shrink).
const HEADER: &str = "model,task,category,n,pass,partial,fail,score,mean_seconds,gen_tokens_per_second,failed_jobs,grade_disagreements,implausible_timings,model_cost_usd,score_ci95_repetitions_lo,score_ci95_repetitions_hi,model_score_ci95_tasks_lo,model_score_ci95_tasks_hi,model_score_ci95_repetitions_lo,model_score_ci95_repetitions_hi\n";

pub(crate) fn render(report: &Report) -> String {
    let mut out = String::from(HEADER);
    for m in &report.models {
        for t in &m.tasks {
            let fields = [
                text(&m.name),
                text(&t.id),
                text(&t.category),
                t.n.to_string(),
                t.pass.to_string(),
                t.partial.to_string(),
                t.fail.to_string(),
                graded(t.score, t.n),
                number(t.timing.mean_seconds),
                number(t.timing.gen_tokens_per_second),
                t.errors.to_string(),
                t.grade_disagreements.to_string(),
                t.implausible_timings.to_string(),
                number(m.cost_usd),
                graded(t.score_ci95_repetitions[0], t.n),
                graded(t.score_ci95_repetitions[1], t.n),
                graded(m.score_ci95[0], m.n),
                graded(m.score_ci95[1], m.n),
                graded(m.score_ci95_repetitions[0], m.n),
                graded(m.score_ci95_repetitions[1], m.n),
            ];
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

/// A free-text field: neutralised against formula injection, then quoted as needed.
pub(crate) fn text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        quote(&format!("'{s}"))
    } else {
        quote(s)
    }
}

/// Quotes a field when (and only when) it needs it.
pub(crate) fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A score or one end of its interval, empty where nothing was graded (the score is then no
/// score and the interval [0, 0] no interval at all).
fn graded(x: f64, graded: u64) -> String {
    if graded == 0 {
        String::new()
    } else {
        number(Some(x))
    }
}

/// A finite number, or an empty field.
fn number(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => x.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
        assert_eq!(quote("cr\r"), "\"cr\r\"");
        assert_eq!(quote(""), "");
    }

    #[test]
    fn formula_injection_is_neutralised() {
        assert_eq!(text("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(text("+1"), "'+1");
        assert_eq!(text("-2+3"), "'-2+3");
        assert_eq!(text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text("\tx"), "'\tx");
        // a leading CR also forces quoting
        assert_eq!(text("\rx"), "\"'\rx\"");
        // only a *leading* special character matters
        assert_eq!(text("a=b"), "a=b");
        assert_eq!(text("llama-3"), "llama-3");
        assert_eq!(text(""), "");
    }

    #[test]
    fn numbers() {
        assert_eq!(number(Some(0.5)), "0.5");
        assert_eq!(number(Some(2.0)), "2");
        assert_eq!(number(None), "");
        assert_eq!(number(Some(f64::NAN)), "");
    }
}
