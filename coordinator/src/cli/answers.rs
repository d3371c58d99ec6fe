//! The verbs that read a run's answers: `answers RUN`, `show JOB` and `compare RUN_A [RUN_B]`.
//!
//! All three are built on the run's jsonl report (one line per ended attempt, every field), read
//! back into the report crate's types on the client, so they need no RPC of their own and show
//! exactly what `report --format jsonl` exports. The rendering (answers with their checks, the
//! paired comparison) is the report crate's and pure.

use anyhow::{Context, Result, bail};
use benchfarm_proto::v1 as pb;
use benchfarm_report::{
    AnswerFilter, CompareFormat, CompareOptions, FailedAttempt, Outcome, Side, Verdict,
};

use super::connect::{Target, connect};

/// The attempts of a run, as its jsonl report lists them.
pub struct Attempts {
    pub outcomes: Vec<Outcome>,
    pub failures: Vec<FailedAttempt>,
}

/// Parses a jsonl report: result lines into outcomes, `verdict = "error"` lines into failures.
/// A line that is neither is an error naming its line number.
pub fn parse_jsonl(text: &str) -> Result<Attempts> {
    let mut attempts = Attempts {
        outcomes: Vec::new(),
        failures: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("jsonl line {}", i + 1))?;
        if value.get("verdict").and_then(|v| v.as_str()) == Some("error") {
            attempts.failures.push(
                serde_json::from_value(value).with_context(|| format!("jsonl line {}", i + 1))?,
            );
        } else {
            attempts.outcomes.push(
                serde_json::from_value(value).with_context(|| format!("jsonl line {}", i + 1))?,
            );
        }
    }
    Ok(attempts)
}

async fn fetch(target: &Target, run_id: &str) -> Result<Attempts> {
    let mut client = connect(target).await?;
    let body = client
        .get_report(pb::GetReportRequest {
            run_id: run_id.into(),
            format: pb::ReportFormat::Jsonl.into(),
        })
        .await?
        .into_inner()
        .body;
    parse_jsonl(&body).with_context(|| format!("the jsonl report of run {run_id}"))
}

/// `coordinator answers RUN [--model M] [--task T] [--verdict V] [--all]`.
pub async fn answers(
    target: &Target,
    run_id: &str,
    model: Option<String>,
    task: Option<String>,
    verdict: Option<&str>,
    all: bool,
) -> Result<i32> {
    let verdict = match verdict {
        None => None,
        Some("pass") => Some(Verdict::Pass),
        Some("partial") => Some(Verdict::Partial),
        Some("fail") => Some(Verdict::Fail),
        Some(other) => bail!("--verdict: {other:?} is not pass, partial or fail"),
    };
    let attempts = fetch(target, run_id).await?;
    let filter = AnswerFilter {
        model,
        task,
        verdict,
        include_uncounted: all,
        // Long answers are cut in the terminal (never in jsonl); `show JOB` prints them whole.
        max_answer_chars: Some(2_000),
        ..AnswerFilter::default()
    };
    let failures: &[FailedAttempt] = if verdict.is_some() {
        &[]
    } else {
        &attempts.failures
    };
    print!(
        "{}",
        benchfarm_report::render_answers(&attempts.outcomes, failures, &filter)
    );
    Ok(0)
}

/// `coordinator show JOB`: every attempt of one job, answers whole, every check.
pub async fn show(target: &Target, job_id: &str) -> Result<i32> {
    let Some(run_id) = crate::run::run_of_job(job_id) else {
        bail!("{job_id:?} is not a job id (RUN-INDEX)");
    };
    let attempts = fetch(target, run_id).await?;
    let filter = AnswerFilter {
        job: Some(job_id.to_string()),
        include_uncounted: true,
        all_checks: true,
        ..AnswerFilter::default()
    };
    print!(
        "{}",
        benchfarm_report::render_answers(&attempts.outcomes, &attempts.failures, &filter)
    );
    Ok(0)
}

/// `coordinator compare RUN_A [RUN_B] [--models A,B] [--format table|md|json]`.
pub async fn compare(
    target: &Target,
    run_a: &str,
    run_b: Option<&str>,
    models: Option<&str>,
    format: &str,
    allow_suite_change: bool,
) -> Result<i32> {
    let format: CompareFormat = format
        .parse()
        .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    let a = fetch(target, run_a).await?;
    let b = match run_b {
        Some(run_b) => Some(fetch(target, run_b).await?),
        None => None,
    };
    let pairs: Vec<(String, String)> = match models {
        Some(list) => match list.split_once(',') {
            Some((x, y)) if !x.trim().is_empty() && !y.trim().is_empty() => {
                vec![(x.trim().to_string(), y.trim().to_string())]
            }
            _ => bail!("--models: expected two model names, A,B; got {list:?}"),
        },
        None if run_b.is_none() => {
            bail!("comparing two models within one run needs --models A,B")
        }
        None => Vec::new(),
    };
    // Each side's run and suite, as its lines record them.
    let side = |attempts: &Attempts| -> (String, String, String) {
        let first = attempts.outcomes.first();
        (
            first.map(|o| o.run.clone()).unwrap_or_default(),
            first.map(|o| o.suite_name.clone()).unwrap_or_default(),
            first.map(|o| o.suite_version.clone()).unwrap_or_default(),
        )
    };
    let (a_run, a_suite, a_version) = side(&a);
    let b_attempts = b.as_ref().unwrap_or(&a);
    let (b_run, b_suite, b_version) = side(b_attempts);
    let a_run = if a_run.is_empty() {
        run_a.to_string()
    } else {
        a_run
    };
    let b_run = if b_run.is_empty() {
        run_b.unwrap_or(run_a).to_string()
    } else {
        b_run
    };
    let comparison = benchfarm_report::compare(
        &Side {
            run: &a_run,
            suite_name: &a_suite,
            suite_version: &a_version,
            outcomes: &a.outcomes,
        },
        &Side {
            run: &b_run,
            suite_name: &b_suite,
            suite_version: &b_version,
            outcomes: &b_attempts.outcomes,
        },
        &pairs,
        &CompareOptions { allow_suite_change },
    )?;
    print!(
        "{}",
        benchfarm_report::render_comparison(&comparison, format)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jsonl_report_reads_back_into_results_and_failures() {
        let outcome = Outcome {
            model: "m".into(),
            task_id: "t".into(),
            answer: "line one\nline \"two\" ✓ ```fence```".into(),
            job: "r-0000000001".into(),
            attempt: 2,
            ..Outcome::default()
        };
        let failure = FailedAttempt {
            model: "m".into(),
            task_id: "t".into(),
            job: "r-0000000002".into(),
            attempt: 1,
            reason: "engine error".into(),
            ..FailedAttempt::default()
        };
        let report = benchfarm_report::aggregate(&benchfarm_report::RunInfo::default(), &[]);
        let text = benchfarm_report::render_run(
            &report,
            std::slice::from_ref(&outcome),
            std::slice::from_ref(&failure),
            benchfarm_report::Format::Jsonl,
        );
        let back = parse_jsonl(&text).expect("parses");
        assert_eq!(back.outcomes.len(), 1);
        assert_eq!(back.outcomes[0].answer, outcome.answer);
        assert_eq!(back.outcomes[0].attempt, 2);
        assert_eq!(back.failures.len(), 1);
        assert_eq!(back.failures[0].reason, "engine error");
        let err = parse_jsonl("{\"schema\":2}\nnot json")
            .err()
            .expect("bad line");
        assert!(format!("{err:#}").contains("jsonl line"), "{err:#}");
    }
}
