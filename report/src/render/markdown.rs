//! The Markdown write-up: title, summary table, per-task matrix, per-category scores,
//! per-hardware table and the list of failed jobs with their reasons.
//!
//! Matrix cells read at a glance: "3/3 ✓" when every repetition passed, "0/3 ✗" when none earned
//! anything, otherwise "passes/n" with the partial count, and the failed-job count when a job
//! ended without an answer ("2/3 · 1 partial · 1 err"). Free text (names, reasons) is escaped
//! so it cannot break a table or the list.

use crate::render::table::{Align, footer, pipe_table, summary};
use crate::render::{DASH, one_decimal, percent, seconds, workers_cell};
use crate::report::{Report, TaskReport};

/// The `md` format.
pub(crate) fn render(report: &Report) -> String {
    let mut out = format!("# benchfarm run {}\n\n", inline(&report.run));
    out.push_str(&inline(&footer(report)));
    out.push_str("\n\n## Summary\n\n");
    out.push_str(&summary(report));
    out.push_str(&format!(
        "\nScore = (pass + ½·partial) / graded jobs; ±95% is the half-width of a {}-resample \
         cluster bootstrap over tasks.\n",
        report.ci.resamples
    ));

    out.push_str("\n## Per task\n\n");
    out.push_str(&task_matrix(report));
    out.push_str("\n## Per category\n\n");
    out.push_str(&category_matrix(report));
    out.push_str("\n## Per hardware\n\n");
    out.push_str(&hardware_table(report));
    out.push_str("\n## Failed jobs\n\n");
    out.push_str(&failed_list(report));
    out
}

/// One matrix cell for a model on a task.
fn task_cell(t: &TaskReport) -> String {
    let mut s = if t.n == 0 {
        DASH.to_string()
    } else if t.pass == t.n {
        format!("{}/{} ✓", t.pass, t.n)
    } else if t.fail == t.n {
        format!("0/{} ✗", t.n)
    } else if t.partial > 0 {
        format!("{}/{} · {} partial", t.pass, t.n, t.partial)
    } else {
        format!("{}/{}", t.pass, t.n)
    };
    if t.errors > 0 {
        s.push_str(&format!(" · {} err", t.errors));
    }
    s
}

fn task_matrix(report: &Report) -> String {
    // Rows are the first model's task list: aggregate gives every model the same list.
    let Some(first) = report.models.first() else {
        return "No models.\n".to_string();
    };
    let mut headers: Vec<(&str, Align)> = vec![("Task", Align::Left), ("Category", Align::Left)];
    headers.extend(report.models.iter().map(|m| (m.name.as_str(), Align::Left)));
    let rows: Vec<Vec<String>> = first
        .tasks
        .iter()
        .map(|task| {
            let mut row = vec![task.id.clone(), non_empty(&task.category)];
            row.extend(report.models.iter().map(|m| {
                m.tasks
                    .iter()
                    .find(|t| t.id == task.id)
                    .map_or_else(|| DASH.to_string(), task_cell)
            }));
            row
        })
        .collect();
    if rows.is_empty() {
        return "No tasks.\n".to_string();
    }
    pipe_table(&headers, &rows)
}

fn category_matrix(report: &Report) -> String {
    let Some(first) = report.models.first() else {
        return "No models.\n".to_string();
    };
    let mut headers: Vec<(&str, Align)> = vec![("Category", Align::Left), ("Tasks", Align::Right)];
    headers.extend(
        report
            .models
            .iter()
            .map(|m| (m.name.as_str(), Align::Right)),
    );
    let rows: Vec<Vec<String>> = first
        .categories
        .iter()
        .map(|cat| {
            let mut row = vec![non_empty(&cat.category), cat.tasks.to_string()];
            row.extend(report.models.iter().map(|m| {
                m.categories
                    .iter()
                    .find(|c| c.category == cat.category)
                    .map_or_else(|| DASH.to_string(), |c| percent(c.score, c.n))
            }));
            row
        })
        .collect();
    if rows.is_empty() {
        return "No tasks.\n".to_string();
    }
    pipe_table(&headers, &rows)
}

fn hardware_table(report: &Report) -> String {
    if report.hardware.is_empty() {
        return "No graded jobs yet.\n".to_string();
    }
    let headers = [
        ("Hardware", Align::Left),
        ("Model", Align::Left),
        ("Jobs", Align::Right),
        ("Score", Align::Right),
        ("Time", Align::Right),
        ("tg tok/s", Align::Right),
        ("Threads", Align::Left),
        ("Workers", Align::Left),
    ];
    let rows: Vec<Vec<String>> = report
        .hardware
        .iter()
        .map(|h| {
            let threads: Vec<String> = h.threads.iter().map(u32::to_string).collect();
            vec![
                non_empty(&h.class),
                h.model.clone(),
                h.n.to_string(),
                percent(h.score, h.n),
                seconds(h.timing.mean_seconds),
                one_decimal(h.timing.gen_tokens_per_second),
                if threads.is_empty() {
                    DASH.to_string()
                } else {
                    threads.join(", ")
                },
                workers_cell(&h.workers),
            ]
        })
        .collect();
    pipe_table(&headers, &rows)
}

fn failed_list(report: &Report) -> String {
    if report.failed_jobs.is_empty() {
        return "None.\n".to_string();
    }
    report
        .failed_jobs
        .iter()
        .map(|f| {
            format!(
                "- `{}` · `{}` · rep {}: {}\n",
                code(&f.model),
                code(&f.task_id),
                f.repetition,
                if f.reason.trim().is_empty() {
                    DASH.to_string()
                } else {
                    inline(&f.reason)
                }
            )
        })
        .collect()
}

fn non_empty(s: &str) -> String {
    if s.is_empty() {
        DASH.to_string()
    } else {
        s.to_string()
    }
}

/// Free text on one Markdown line: line breaks would start a new paragraph or list item.
fn inline(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Text inside a `code span`: a backtick would end the span early, so it becomes a quote.
fn code(s: &str) -> String {
    inline(s).replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(pass: u64, partial: u64, fail: u64, errors: u64) -> TaskReport {
        TaskReport {
            id: "t".into(),
            category: "c".into(),
            n: pass + partial + fail,
            pass,
            partial,
            fail,
            score: 0.0,
            score_stddev: 0.0,
            score_ci95_repetitions: [0.0, 0.0],
            errors,
            timing: Default::default(),
        }
    }

    #[test]
    fn cells() {
        assert_eq!(task_cell(&task(3, 0, 0, 0)), "3/3 ✓");
        assert_eq!(task_cell(&task(0, 0, 3, 0)), "0/3 ✗");
        assert_eq!(task_cell(&task(2, 0, 1, 0)), "2/3");
        assert_eq!(task_cell(&task(1, 1, 1, 0)), "1/3 · 1 partial");
        assert_eq!(task_cell(&task(2, 0, 0, 1)), "2/2 ✓ · 1 err");
        assert_eq!(task_cell(&task(0, 0, 0, 0)), DASH);
        assert_eq!(task_cell(&task(0, 0, 0, 2)), "— · 2 err");
    }

    #[test]
    fn escaping() {
        assert_eq!(inline("a\nb\r\tc"), "a b  c");
        assert_eq!(code("x`y"), "x'y");
    }
}
