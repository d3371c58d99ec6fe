//! The Markdown write-up: title, summary table, both intervals per model, per-task matrix,
//! per-category scores, per-hardware table, the (model, task) and (model, task, hardware) cells
//! with their spread and timings, timing distributions (warm and cold apart), and the list of
//! failed jobs with their reasons.
//!
//! Matrix cells read at a glance: "3/3 ✓" when every repetition passed, "0/3 ✗" when none earned
//! anything, otherwise "passes/n" with the partial count, and the failed-job count when a job
//! ended without an answer ("2/3 · 1 partial · 1 err"). Free text (names, reasons) is escaped
//! so it cannot break a table or the list.

use crate::render::table::{Align, footer, pipe_table, summary};
use crate::render::{DASH, dollars, one_decimal, percent, ranked, seconds, workers_cell};
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

    out.push_str("\n## Intervals\n\n");
    out.push_str(&intervals(report));
    out.push_str("\n## Per task\n\n");
    out.push_str(&task_matrix(report));
    out.push_str("\n## Per category\n\n");
    out.push_str(&category_matrix(report));
    out.push_str("\n## Per hardware\n\n");
    out.push_str(&hardware_table(report));
    out.push_str("\n## Per model and task\n\n");
    out.push_str(&task_cells(report));
    out.push_str("\n## Per model, task and hardware\n\n");
    out.push_str(&hardware_task_cells(report));
    if !report.throughput.is_empty() {
        out.push_str("\n## Throughput (llama-bench tests)\n\n");
        out.push_str(&crate::render::throughput::table(&report.throughput));
        out.push_str(
            "\nt/s: mean ± sample standard deviation over the repetitions of each test, \
             llama-bench's procedure on each worker's own build.\n",
        );
    }
    out.push_str("\n## Timings\n\n");
    out.push_str(&timings_table(report));
    if !report.implausible_timings.is_empty() {
        out.push_str("\n## Implausible timings\n\n");
        out.push_str(&implausible_list(report));
    }
    out.push_str("\n## Cost\n\n");
    out.push_str(&cost_table(report));
    out.push_str("\n## Failed jobs\n\n");
    out.push_str(&failed_list(report));
    out
}

/// The results whose timings were left out of every timing figure, and why.
fn implausible_list(report: &Report) -> String {
    report
        .implausible_timings
        .iter()
        .map(|t| {
            format!(
                "- `{}` · `{}` · job `{}` attempt {} on {}: {}\n",
                code(&t.model),
                code(&t.task_id),
                code(&t.job),
                t.attempt,
                inline(&t.worker_name),
                inline(&t.reason)
            )
        })
        .collect()
}

/// Per model: what it cost in all and per job, and the price it was charged at.
fn cost_table(report: &Report) -> String {
    let headers = [
        ("Model", Align::Left),
        ("Kind", Align::Left),
        ("$/M in", Align::Right),
        ("$/M out", Align::Right),
        ("Per job", Align::Right),
        ("Cost", Align::Right),
    ];
    let price = |m: &crate::report::ModelReport, pick: fn(&crate::cost::Price) -> f64| match (
        m.kind.as_str(),
        &m.price_per_mtok,
    ) {
        ("remote", Some(p)) => format!("{:.2}", pick(p)),
        ("remote", None) => DASH.to_string(),
        _ => "0.00".to_string(),
    };
    let rows: Vec<Vec<String>> = report
        .models
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.kind.clone(),
                price(m, |p| p.input),
                price(m, |p| p.output),
                dollars(m.cost_per_job_usd),
                dollars(m.cost_usd),
            ]
        })
        .collect();
    let mut out = pipe_table(&headers, &rows);
    out.push_str(&format!(
        "\nRun total: {}. A remote job costs prompt tokens × input price + generated tokens \
         (reasoning included) × output price, with the endpoint's own token counts; local models \
         cost $0.00.\n",
        dollars(report.cost_usd)
    ));
    out
}

/// "[lo, hi]" in percent, "—" without graded jobs.
fn interval(ci: [f64; 2], n: u64) -> String {
    if n == 0 {
        return DASH.to_string();
    }
    format!("[{:.1}, {:.1}]%", ci[0] * 100.0, ci[1] * 100.0)
}

fn points(x: f64, n: u64) -> String {
    if n == 0 || !x.is_finite() {
        return DASH.to_string();
    }
    format!("{:.1}", x * 100.0)
}

fn intervals(report: &Report) -> String {
    if report.models.is_empty() {
        return "No models.\n".to_string();
    }
    let headers = [
        ("Model", Align::Left),
        ("Score", Align::Right),
        ("95% over tasks", Align::Right),
        ("95% over repetitions", Align::Right),
        ("SD across reps (pts)", Align::Right),
        ("Stopped", Align::Left),
    ];
    let rows: Vec<Vec<String>> = ranked(report)
        .into_iter()
        .map(|m| {
            vec![
                m.name.clone(),
                percent(m.score, m.n),
                interval(m.score_ci95, m.n),
                interval(m.score_ci95_repetitions, m.n),
                points(m.score_stddev, m.n),
                m.stop_reason
                    .map_or_else(|| DASH.to_string(), |r| r.describe().to_string()),
            ]
        })
        .collect();
    let mut out = pipe_table(&headers, &rows);
    out.push_str(
        "\nOver tasks: how the score would move on other tasks like these (no number of \
         repetitions shrinks it below the spread between tasks). Over repetitions: the sampling \
         noise on this suite with the tasks fixed; more repetitions shrink it.\n",
    );
    out
}

fn task_cells(report: &Report) -> String {
    let headers = [
        ("Model", Align::Left),
        ("Task", Align::Left),
        ("Jobs", Align::Right),
        ("Score", Align::Right),
        ("95% over reps", Align::Right),
        ("SD (pts)", Align::Right),
        ("Median", Align::Right),
        ("p90", Align::Right),
        ("TTFT ms", Align::Right),
        ("tg tok/s", Align::Right),
        ("Cold", Align::Right),
    ];
    let rows: Vec<Vec<String>> = report
        .models
        .iter()
        .flat_map(|m| {
            m.tasks.iter().filter(|t| t.n > 0).map(move |t| {
                vec![
                    m.name.clone(),
                    t.id.clone(),
                    t.n.to_string(),
                    percent(t.score, t.n),
                    interval(t.score_ci95_repetitions, t.n),
                    points(t.score_stddev, t.n),
                    seconds(t.timing.median_seconds),
                    seconds(t.timing.p90_seconds),
                    one_decimal(t.timing.timings.all.ttft_ms.median),
                    one_decimal(t.timing.gen_tokens_per_second),
                    t.timing.cold_loads.to_string(),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        return "No graded jobs yet.\n".to_string();
    }
    pipe_table(&headers, &rows)
}

fn hardware_task_cells(report: &Report) -> String {
    let headers = [
        ("Hardware", Align::Left),
        ("Model", Align::Left),
        ("Task", Align::Left),
        ("Jobs", Align::Right),
        ("Score", Align::Right),
        ("95% over reps", Align::Right),
        ("Median", Align::Right),
        ("tg tok/s", Align::Right),
    ];
    let rows: Vec<Vec<String>> = report
        .hardware
        .iter()
        .flat_map(|h| {
            h.tasks.iter().map(move |t| {
                vec![
                    non_empty(&h.class),
                    h.model.clone(),
                    t.id.clone(),
                    t.n.to_string(),
                    percent(t.score, t.n),
                    interval(t.score_ci95_repetitions, t.n),
                    seconds(t.timing.median_seconds),
                    one_decimal(t.timing.gen_tokens_per_second),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        return "No graded jobs yet.\n".to_string();
    }
    pipe_table(&headers, &rows)
}

fn timings_table(report: &Report) -> String {
    let headers = [
        ("Model", Align::Left),
        ("Jobs", Align::Right),
        ("Wall median", Align::Right),
        ("mean", Align::Right),
        ("SD", Align::Right),
        ("p90", Align::Right),
        ("Cold jobs", Align::Right),
        ("Cold mean", Align::Right),
        ("Load mean ms", Align::Right),
        ("TTFT median ms", Align::Right),
        ("pp tok/s", Align::Right),
        ("tg tok/s", Align::Right),
        ("e2e tok/s", Align::Right),
        ("tg SD", Align::Right),
    ];
    let rows: Vec<Vec<String>> = report
        .models
        .iter()
        .filter(|m| m.n > 0)
        .map(|m| {
            let d = &m.timing.timings;
            vec![
                m.name.clone(),
                d.all.jobs.to_string(),
                seconds(d.warm.wall_seconds.median),
                seconds(d.warm.wall_seconds.mean),
                seconds(d.warm.wall_seconds.stddev),
                seconds(d.warm.wall_seconds.p90),
                d.cold.jobs.to_string(),
                seconds(d.cold.wall_seconds.mean),
                one_decimal(d.load_ms.mean),
                one_decimal(d.all.ttft_ms.median),
                one_decimal(m.timing.prompt_tokens_per_second),
                one_decimal(m.timing.gen_tokens_per_second),
                one_decimal(m.timing.e2e_gen_tokens_per_second),
                one_decimal(d.all.gen_tokens_per_second.stddev),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "No graded jobs yet.\n".to_string();
    }
    let mut out = pipe_table(&headers, &rows);
    out.push_str(
        "\nWall columns are warm jobs (model already loaded); cold jobs, which load the model \
         first, are counted and averaged apart, and their load time is shown on its own. tok/s \
         are Σ tokens / Σ seconds; tg is the decode speed llama-bench's tg reports (time in \
         llama_decode), e2e the generation loop's (sampling and detokenizing included); tg SD is \
         the spread of per-job generation rates.\n",
    );
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
            grade_disagreements: 0,
            implausible_timings: 0,
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
