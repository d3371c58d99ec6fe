//! Answers for a terminal: what `coordinator answers RUN [--model M] [--task T] [--verdict V]`
//! and `coordinator show JOB` print — each attempt's grade, the checks that failed, and the
//! answer itself.
//!
//! Terminal-safe: an answer is untrusted text, and a raw ESC in it could move the cursor, retitle
//! the window or hide lines. Control characters other than line feed and tab are therefore shown
//! as `\u{..}` escapes (CR too, which would overwrite the start of a line). Answers are printed
//! whole unless the caller asks for a limit (`max_answer_chars`), and a cut says how much it cut;
//! the jsonl format is where answers are never cut. Order: model, task, repetition, attempt
//! (stable, so the coordinator's order breaks ties), failures after results of the same key.

use std::fmt::Write as _;

use crate::outcome::{FailedAttempt, Outcome, Verdict};

/// Which attempts to print; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerFilter {
    pub model: Option<String>,
    pub task: Option<String>,
    /// `Some(v)` keeps results with that verdict (failures are kept only when `None`).
    pub verdict: Option<Verdict>,
    /// Only this job's attempts (`show JOB`).
    pub job: Option<String>,
    /// Include superseded (uncounted) results; `show JOB` wants them, `answers` need not.
    pub include_uncounted: bool,
    /// Print at most this many characters of each answer.
    pub max_answer_chars: Option<usize>,
    /// Print every check, not only the failed ones.
    pub all_checks: bool,
}

/// Makes untrusted text safe to print on a terminal (see the module docs).
pub(crate) fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch == '\n' || ch == '\t' || !ch.is_control() {
            out.push(ch);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(ch));
        }
    }
    out
}

fn one_line(s: &str) -> String {
    terminal_safe(s).replace(['\n', '\t'], " ")
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Partial => "PARTIAL",
        Verdict::Fail => "FAIL",
    }
}

fn indented(out: &mut String, text: &str) {
    for line in text.split('\n') {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
}

enum Item<'a> {
    Result(&'a Outcome),
    Failure(&'a FailedAttempt),
}

impl Item<'_> {
    fn key(&self) -> (&str, &str, u32, u32, u8) {
        match self {
            Item::Result(o) => (&o.model, &o.task_id, o.repetition, o.attempt, 0),
            Item::Failure(f) => (&f.model, &f.task_id, f.repetition, f.attempt, 1),
        }
    }
}

/// The answers matching `filter`, one block per attempt; "No matching answers.\n" for none.
pub fn render_answers(
    outcomes: &[Outcome],
    failures: &[FailedAttempt],
    filter: &AnswerFilter,
) -> String {
    let keep = |model: &str, task: &str, job: &str| {
        filter.model.as_deref().is_none_or(|m| m == model)
            && filter.task.as_deref().is_none_or(|t| t == task)
            && filter.job.as_deref().is_none_or(|j| j == job)
    };
    let mut items: Vec<Item> = outcomes
        .iter()
        .filter(|o| keep(&o.model, &o.task_id, &o.job))
        .filter(|o| filter.include_uncounted || o.counted)
        .filter(|o| filter.verdict.is_none_or(|v| v == o.verdict))
        .map(Item::Result)
        .chain(
            failures
                .iter()
                .filter(|f| filter.verdict.is_none() && keep(&f.model, &f.task_id, &f.job))
                .map(Item::Failure),
        )
        .collect();
    items.sort_by(|a, b| a.key().cmp(&b.key()));
    if items.is_empty() {
        return "No matching answers.\n".to_string();
    }
    let mut out = String::new();
    for item in items {
        match item {
            Item::Result(o) => result_block(&mut out, o, filter),
            Item::Failure(f) => {
                let _ = writeln!(
                    out,
                    "── {} · {} · rep {} · attempt {} · ERROR{}",
                    one_line(&f.model),
                    one_line(&f.task_id),
                    f.repetition,
                    f.attempt,
                    if f.job.is_empty() {
                        String::new()
                    } else {
                        format!(" · job {}", one_line(&f.job))
                    }
                );
                let _ = writeln!(out, "  reason: {}", one_line(&f.reason));
                if !f.trace_id.is_empty() {
                    let _ = writeln!(out, "  trace: {}", one_line(&f.trace_id));
                }
                out.push('\n');
            }
        }
    }
    out
}

fn result_block(out: &mut String, o: &Outcome, filter: &AnswerFilter) {
    let _ = writeln!(
        out,
        "── {} · {} · rep {} · attempt {} · {}{}{}{}",
        one_line(&o.model),
        one_line(&o.task_id),
        o.repetition,
        o.attempt,
        verdict_word(o.verdict),
        o.score.map(|s| format!(" (score {s})")).unwrap_or_default(),
        if o.counted {
            ""
        } else {
            " · superseded, not counted"
        },
        if o.job.is_empty() {
            String::new()
        } else {
            format!(" · job {}", one_line(&o.job))
        }
    );
    if !o.trace_id.is_empty() {
        let _ = writeln!(out, "  trace: {}", one_line(&o.trace_id));
    }
    let failed: Vec<_> = o
        .checks
        .iter()
        .filter(|c| filter.all_checks || !c.held)
        .collect();
    for c in failed {
        let group = if c.group.is_empty() {
            String::new()
        } else {
            format!("{}: ", one_line(&c.group))
        };
        let _ = writeln!(
            out,
            "  {} {group}{}",
            if c.held { "✓" } else { "✗" },
            one_line(&c.check)
        );
    }
    if o.truncated {
        out.push_str(
            "  answer (truncated by the worker to fit the coordinator's message limit):\n",
        );
    } else {
        out.push_str("  answer:\n");
    }
    let answer = terminal_safe(&o.answer);
    match filter.max_answer_chars {
        Some(max) if answer.chars().count() > max => {
            let cut: String = answer.chars().take(max).collect();
            indented(out, &cut);
            let _ = writeln!(
                out,
                "    … ({} more characters; the jsonl format has the whole answer)",
                answer.chars().count() - max
            );
        }
        _ => indented(out, &answer),
    }
    if !o.extracted.is_empty() && o.extracted != o.answer {
        out.push_str("  extracted:\n");
        indented(out, &terminal_safe(&o.extracted));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::CheckOutcome;

    fn o(model: &str, task: &str, rep: u32, verdict: Verdict, answer: &str) -> Outcome {
        Outcome {
            model: model.into(),
            task_id: task.into(),
            repetition: rep,
            attempt: 1,
            verdict,
            answer: answer.into(),
            job: format!("{model}-{task}-{rep}"),
            ..Default::default()
        }
    }

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(
            terminal_safe("a\u{1b}[2Jb\r\nc\td\u{7}"),
            "a\\u{1b}[2Jb\\u{d}\nc\td\\u{7}"
        );
        assert_eq!(terminal_safe("plain ü ✓"), "plain ü ✓");
    }

    #[test]
    fn filters_orders_and_shows_failed_checks() {
        let mut a = o("m", "t2", 0, Verdict::Fail, "line 1\nline 2");
        a.checks = vec![
            CheckOutcome {
                group: "must".into(),
                check: "says hi".into(),
                held: true,
            },
            CheckOutcome {
                group: "must".into(),
                check: "compiles".into(),
                held: false,
            },
        ];
        let b = o("m", "t1", 1, Verdict::Pass, "ok");
        let c = o("other", "t1", 0, Verdict::Fail, "no");
        let mut old = o("m", "t1", 1, Verdict::Fail, "older");
        old.counted = false;
        let f = FailedAttempt {
            model: "m".into(),
            task_id: "t1".into(),
            repetition: 2,
            attempt: 1,
            reason: "timeout".into(),
            job: "m-t1-2".into(),
            ..Default::default()
        };
        let outs = [a, b, c, old];
        let text = render_answers(
            &outs,
            std::slice::from_ref(&f),
            &AnswerFilter {
                model: Some("m".into()),
                ..Default::default()
            },
        );
        let expected = "\
── m · t1 · rep 1 · attempt 1 · PASS · job m-t1-1
  answer:
    ok

── m · t1 · rep 2 · attempt 1 · ERROR · job m-t1-2
  reason: timeout

── m · t2 · rep 0 · attempt 1 · FAIL · job m-t2-0
  ✗ must: compiles
  answer:
    line 1
    line 2

";
        assert_eq!(text, expected);
        // a verdict filter drops failures and other verdicts
        let fails = render_answers(
            &outs,
            &[f],
            &AnswerFilter {
                verdict: Some(Verdict::Fail),
                ..Default::default()
            },
        );
        assert!(
            fails.contains("other · t1")
                && fails.contains("m · t2")
                && !fails.contains("ERROR")
                && !fails.contains("older")
        );
        // show JOB: one job, superseded results included
        let job = render_answers(
            &outs,
            &[],
            &AnswerFilter {
                job: Some("m-t1-1".into()),
                include_uncounted: true,
                ..Default::default()
            },
        );
        assert_eq!(job.matches("── ").count(), 2);
        assert!(job.contains("superseded, not counted"));
        assert_eq!(
            render_answers(&[], &[], &AnswerFilter::default()),
            "No matching answers.\n"
        );
    }

    #[test]
    fn truncates_only_on_request_and_says_so() {
        let outs = [o("m", "t", 0, Verdict::Pass, "abcdefghij")];
        let cut = render_answers(
            &outs,
            &[],
            &AnswerFilter {
                max_answer_chars: Some(4),
                ..Default::default()
            },
        );
        assert!(
            cut.contains(
                "    abcd\n    … (6 more characters; the jsonl format has the whole answer)\n"
            ),
            "{cut}"
        );
        let whole = render_answers(&outs, &[], &AnswerFilter::default());
        assert!(whole.contains("    abcdefghij\n"));
    }
}
