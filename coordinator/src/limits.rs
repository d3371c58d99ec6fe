//! The coordinator's size limits: what one submit, one suite, one answer and one worker may
//! claim. Each is configurable (`coordinator serve --max-…`), each refusal names its limit, and a
//! refused submit stores nothing.
//!
//! The numbers bound the cost of untrusted input: a suite's checks run over every answer on the
//! coordinator, an answer is stored for good, `max_tokens` sizes a worker's llama.cpp context (and
//! its memory, which placement's estimate does not see), labels and names end up in every report.
//! The defaults are far above anything a real plan uses.

use benchfarm_suite::SuiteLimits;

/// Every limit, with its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one stored answer; a longer answer is stored cut to this, flagged (`--max-answer-bytes`).
    pub answer_bytes: usize,
    /// Tasks, checks and regexes per suite (`--max-suite-tasks`, `--max-suite-checks`,
    /// `--max-regex-bytes`, `--max-regex-compiled-bytes`).
    pub suite: SuiteLimits,
    /// The most tokens a task may ask for, whatever the model (`--max-tokens-cap`); a model whose
    /// context length is known (from its GGUF header) caps it further.
    pub max_tokens: u32,
    /// Labels of one worker or one plan's `require` (`--max-labels`), and the bytes of one label's
    /// key or value (`--max-label-bytes`).
    pub labels: usize,
    pub label_bytes: usize,
    /// Bytes of a name: model, run label, worker name, task id (`--max-name-bytes`).
    pub name_bytes: usize,
    /// Models in one run (`--max-models-per-run`).
    pub models_per_run: usize,
    /// Slots one worker may claim (`--max-worker-slots`), and jobs one worker may hold at once,
    /// running and waiting (`--max-worker-in-flight`).
    pub worker_slots: u32,
    pub worker_in_flight: u32,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        answer_bytes: 64 * 1024,
        suite: SuiteLimits::DEFAULT,
        max_tokens: 32_768,
        labels: 32,
        label_bytes: 128,
        name_bytes: 256,
        models_per_run: 256,
        worker_slots: 64,
        worker_in_flight: 128,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// The limits as `coordinator serve` flags (flattened into the verb).
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Bytes of one stored answer; longer answers are stored cut to this and flagged.
    #[arg(long, default_value_t = Limits::DEFAULT.answer_bytes)]
    pub max_answer_bytes: usize,
    /// Tasks in one suite.
    #[arg(long, default_value_t = Limits::DEFAULT.suite.tasks)]
    pub max_suite_tasks: usize,
    /// Checks in one suite (nested checks included).
    #[arg(long, default_value_t = Limits::DEFAULT.suite.checks)]
    pub max_suite_checks: usize,
    /// Bytes of one `regex` check's pattern.
    #[arg(long, default_value_t = Limits::DEFAULT.suite.regex_bytes)]
    pub max_regex_bytes: usize,
    /// Compiled size of one `regex` check, in bytes (the regex crate's size limit).
    #[arg(long, default_value_t = Limits::DEFAULT.suite.regex_compiled_bytes)]
    pub max_regex_compiled_bytes: usize,
    /// The most tokens a task may ask for (a model's known context length caps it further).
    #[arg(long, default_value_t = Limits::DEFAULT.max_tokens)]
    pub max_tokens_cap: u32,
    /// Labels of one worker or one plan's `require`.
    #[arg(long, default_value_t = Limits::DEFAULT.labels)]
    pub max_labels: usize,
    /// Bytes of one label key or value.
    #[arg(long, default_value_t = Limits::DEFAULT.label_bytes)]
    pub max_label_bytes: usize,
    /// Bytes of a model name, run label, worker name or task id.
    #[arg(long, default_value_t = Limits::DEFAULT.name_bytes)]
    pub max_name_bytes: usize,
    /// Models in one run.
    #[arg(long, default_value_t = Limits::DEFAULT.models_per_run)]
    pub max_models_per_run: usize,
    /// Slots one worker may claim (a larger claim is cut to this).
    #[arg(long, default_value_t = Limits::DEFAULT.worker_slots)]
    pub max_worker_slots: u32,
    /// Jobs one worker may hold at once, running and waiting.
    #[arg(long, default_value_t = Limits::DEFAULT.worker_in_flight)]
    pub max_worker_in_flight: u32,
}

impl From<LimitArgs> for Limits {
    fn from(a: LimitArgs) -> Self {
        Limits {
            answer_bytes: a.max_answer_bytes,
            suite: SuiteLimits {
                tasks: a.max_suite_tasks,
                checks: a.max_suite_checks,
                regex_bytes: a.max_regex_bytes,
                regex_compiled_bytes: a.max_regex_compiled_bytes,
            },
            max_tokens: a.max_tokens_cap,
            labels: a.max_labels,
            label_bytes: a.max_label_bytes,
            name_bytes: a.max_name_bytes,
            models_per_run: a.max_models_per_run,
            worker_slots: a.max_worker_slots.max(1),
            worker_in_flight: a.max_worker_in_flight.max(1),
        }
    }
}

/// "`field`: N bytes, over the limit `limit` = max" when `text` is longer than `max` bytes.
pub fn check_len(field: &str, text: &str, max: usize, limit: &str) -> Result<(), String> {
    if text.len() > max {
        return Err(format!(
            "{field}: {} bytes, over the limit {limit} = {max}",
            text.len()
        ));
    }
    Ok(())
}

/// Checks a label map: count, then each key and value's length; the error names the label.
pub fn check_labels<'a>(
    field: &str,
    labels: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
    limits: &Limits,
) -> Result<(), String> {
    if labels.len() > limits.labels {
        return Err(format!(
            "{field}: {} labels, over the limit max_labels = {}",
            labels.len(),
            limits.labels
        ));
    }
    for (k, v) in labels {
        check_len(
            &format!("{field}[{k:?}]"),
            k,
            limits.label_bytes,
            "max_label_bytes",
        )?;
        check_len(
            &format!("{field}[{k:?}]"),
            v,
            limits.label_bytes,
            "max_label_bytes",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn flags_default_to_the_defaults_and_set_each_limit() {
        let defaults: Limits = Cli::parse_from(["x"]).limits.into();
        assert_eq!(defaults, Limits::DEFAULT);
        let set: Limits = Cli::parse_from([
            "x",
            "--max-answer-bytes",
            "10",
            "--max-suite-tasks",
            "2",
            "--max-suite-checks",
            "3",
            "--max-regex-bytes",
            "4",
            "--max-regex-compiled-bytes",
            "5",
            "--max-tokens-cap",
            "6",
            "--max-labels",
            "7",
            "--max-label-bytes",
            "8",
            "--max-name-bytes",
            "9",
            "--max-models-per-run",
            "11",
            "--max-worker-slots",
            "12",
            "--max-worker-in-flight",
            "13",
        ])
        .limits
        .into();
        assert_eq!(
            set,
            Limits {
                answer_bytes: 10,
                suite: SuiteLimits {
                    tasks: 2,
                    checks: 3,
                    regex_bytes: 4,
                    regex_compiled_bytes: 5,
                },
                max_tokens: 6,
                labels: 7,
                label_bytes: 8,
                name_bytes: 9,
                models_per_run: 11,
                worker_slots: 12,
                worker_in_flight: 13,
            }
        );
    }

    #[test]
    fn label_errors_name_the_limit_and_the_label() {
        let limits = Limits {
            labels: 1,
            label_bytes: 3,
            ..Limits::DEFAULT
        };
        let one: std::collections::BTreeMap<String, String> =
            [("site".to_string(), "x".to_string())].into();
        assert_eq!(
            check_labels("require.labels", one.iter(), &limits),
            Err("require.labels[\"site\"]: 4 bytes, over the limit max_label_bytes = 3".into())
        );
        let two: std::collections::BTreeMap<String, String> =
            [("a".into(), "b".into()), ("c".into(), "d".into())].into();
        assert_eq!(
            check_labels("labels", two.iter(), &limits),
            Err("labels: 2 labels, over the limit max_labels = 1".into())
        );
    }
}
