//! The `jsonl` format: one line per attempt that ended, every field, for people who want the raw
//! data (and for tools: the line shape is documented field by field in `docs/jsonl.md`).
//!
//! A result ([`Outcome`], counted or not) and a failed attempt ([`FailedAttempt`]) are both one
//! line, with the *same keys*: a failure has `verdict = "error"`, its `reason`, and `null` / empty
//! values where a result would have an answer or timings. One flat shape rather than two tagged
//! ones, so a reader can load every line into one table and filter on `verdict`. Results come
//! first, in the order given (the coordinator's), then failures in the order given.
//!
//! One compact JSON object per line: serde_json escapes line breaks inside strings, so a line is
//! always exactly one attempt, and answers are written whole (never truncated) with every byte
//! preserved. Timings that are NaN or infinite cannot be JSON numbers and come out as `null`.
//! Every line starts with `"schema"` ([`JSONL_SCHEMA`]); lines without it are schema 1, the
//! sixteen-key shape of earlier versions, whose keys are all still here with the same meaning.

use serde::Serialize;

use crate::outcome::{CheckOutcome, FailedAttempt, GradeEntry, Outcome, RemoteOutcome};

/// Version of the jsonl line shape. 1 was the unversioned sixteen-key outcome; 2 added the
/// answer, the trace, provenance and failure lines; 3 added `trace_id`; 4 added `cost_usd` and
/// `remote` (remote models' HTTP side). Additive changes bump it; keys are never renamed or removed.
pub const JSONL_SCHEMA: u32 = 4;

/// A result line: the outcome's own fields between the schema and the failure fields.
#[derive(Serialize)]
struct ResultLine<'a> {
    schema: u32,
    #[serde(flatten)]
    outcome: &'a Outcome,
    reason: Option<&'a str>,
    job_failed: bool,
}

/// A failure line: the same keys in the same order as [`ResultLine`] (a test holds them equal).
#[derive(Serialize)]
struct ErrorLine<'a> {
    schema: u32,
    model: &'a str,
    task_id: &'a str,
    repetition: u32,
    verdict: &'static str,
    worker_id: &'a str,
    worker_name: &'a str,
    hardware_class: &'a str,
    threads: u32,
    wall_ms: Option<f64>,
    load_ms: Option<f64>,
    cold: bool,
    prompt_tokens: u32,
    prompt_ms: Option<f64>,
    ttft_ms: Option<f64>,
    gen_tokens: u32,
    gen_ms: Option<f64>,
    run: &'a str,
    job: &'a str,
    attempt: u32,
    counted: bool,
    model_sha256: &'a str,
    model_size_bytes: u64,
    category: &'a str,
    answer: &'a str,
    extracted: &'a str,
    score: Option<f64>,
    checks: &'a [CheckOutcome],
    llama_cpp_build: &'a str,
    chat_template: &'a str,
    stop: &'a str,
    suite_name: &'a str,
    suite_version: &'a str,
    seed: Option<u64>,
    temperature: Option<f64>,
    top_k: Option<u32>,
    top_p: Option<f64>,
    hardware_tags: &'a [String],
    grade_history: &'a [GradeEntry],
    decode_tokens: u32,
    decode_ms: f64,
    truncated: bool,
    worker_verdict: Option<&'static str>,
    answer_truncated_from: Option<u64>,
    implausible_timing: Option<&'a str>,
    trace_id: &'a str,
    cost_usd: Option<f64>,
    remote: Option<&'a RemoteOutcome>,
    reason: Option<&'a str>,
    job_failed: bool,
}

impl<'a> ErrorLine<'a> {
    fn new(f: &'a FailedAttempt) -> Self {
        Self {
            schema: JSONL_SCHEMA,
            model: &f.model,
            task_id: &f.task_id,
            repetition: f.repetition,
            verdict: "error",
            worker_id: &f.worker_id,
            worker_name: &f.worker_name,
            hardware_class: &f.hardware_class,
            threads: f.threads,
            wall_ms: f.wall_ms,
            load_ms: None,
            cold: false,
            prompt_tokens: 0,
            prompt_ms: None,
            ttft_ms: None,
            gen_tokens: 0,
            gen_ms: None,
            run: &f.run,
            job: &f.job,
            attempt: f.attempt,
            counted: false,
            model_sha256: &f.model_sha256,
            model_size_bytes: f.model_size_bytes,
            category: &f.category,
            answer: "",
            extracted: "",
            score: None,
            checks: &[],
            llama_cpp_build: &f.llama_cpp_build,
            chat_template: &f.chat_template,
            stop: "",
            suite_name: &f.suite_name,
            suite_version: &f.suite_version,
            seed: f.seed,
            temperature: f.temperature,
            top_k: f.top_k,
            top_p: f.top_p,
            hardware_tags: &f.hardware_tags,
            grade_history: &[],
            decode_tokens: 0,
            decode_ms: 0.0,
            truncated: false,
            worker_verdict: None,
            answer_truncated_from: None,
            implausible_timing: None,
            trace_id: &f.trace_id,
            // A failed attempt returned no usage: what it cost is not known.
            cost_usd: None,
            remote: None,
            reason: Some(&f.reason),
            job_failed: f.job_failed,
        }
    }
}

fn push_line<T: Serialize>(out: &mut String, line: &T) {
    match serde_json::to_string(line) {
        Ok(s) => out.push_str(&s),
        Err(e) => out.push_str(&serde_json::json!({ "error": e.to_string() }).to_string()),
    }
    out.push('\n');
}

pub(crate) fn render(outcomes: &[Outcome], failures: &[FailedAttempt]) -> String {
    let mut out = String::new();
    // Counted results' timings are judged among themselves, as the aggregate judges them.
    let counted: Vec<Outcome> = outcomes.iter().filter(|o| o.counted).cloned().collect();
    let mut reasons = crate::plausibility::implausible(&counted).into_iter();
    for o in outcomes {
        let flagged = if o.counted {
            reasons.next().flatten()
        } else {
            None
        };
        let flagged = flagged.map(|reason| Outcome {
            implausible_timing: Some(reason),
            ..o.clone()
        });
        push_line(
            &mut out,
            &ResultLine {
                schema: JSONL_SCHEMA,
                outcome: flagged.as_ref().unwrap_or(o),
                reason: None,
                job_failed: false,
            },
        );
    }
    for f in failures {
        push_line(&mut out, &ErrorLine::new(f));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Verdict;

    /// The line's key set, sorted.
    fn keys(line: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let mut ks: Vec<String> = v
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        ks.sort();
        ks
    }

    #[test]
    fn result_and_error_lines_have_the_same_keys() {
        let o = Outcome {
            verdict: Verdict::Pass,
            ..Default::default()
        };
        let f = FailedAttempt {
            reason: "boom".into(),
            ..Default::default()
        };
        let text = render(&[o], &[f]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(keys(lines[0]), keys(lines[1]));
        // and in the same order: with no nested values on these lines but empty arrays, the
        // key sequence can be read off the raw text at each `,"`
        let order = |l: &str| -> Vec<String> {
            l.split(",\"")
                .filter_map(|p| p.trim_start_matches("{\"").split('"').next())
                .map(str::to_string)
                .collect()
        };
        assert_eq!(order(lines[0]), order(lines[1]));
        assert!(lines[0].starts_with("{\"schema\":4,\"model\":"));
        let e: serde_json::Value = serde_json::from_str(lines[1]).unwrap_or_default();
        assert_eq!(e["verdict"], "error");
        assert_eq!(e["reason"], "boom");
        assert_eq!(e["counted"], false);
        assert!(e["wall_ms"].is_null());
    }
}
