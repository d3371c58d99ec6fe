//! The coordinator grades: every answer a worker sends is graded again here, with the run's own
//! suite, and that grade is the one stored and counted.
//!
//! A worker's grade is only a claim: a stale worker (an older suite crate) or a tampered one could
//! send any verdict, and the coordinator holds both the suite and the raw answer. [`Graders`] holds
//! the parsed suite of every live run and which task each of its jobs is, shared between the
//! scheduler (which opens a run's entry at submit or resume and closes it when the run ends) and
//! the worker connections, which grade on the blocking pool *before* the result reaches the
//! scheduler thread: grading runs the suite's checks over an answer of up to the stored-answer limit
//! (regexes, JSON parsing, an answer compiled as a regex), and the single writer must not wait on
//! that (docs/benchmarks.md has the measured cost). The scheduler grades inline only when a result
//! arrives ungraded (tests that drive it directly; a run opened between the two).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use benchfarm_suite::{Grade, Suite};
use tracing::warn;

use crate::records::{JobRecord, RunRecord};

/// What grading one live run's answers needs.
#[derive(Debug)]
struct RunGrading {
    suite: Suite,
    /// The index in `suite.tasks` of each job, by job index (expansion order).
    task_of_job: Vec<u32>,
}

/// The suites of the live runs, by run id; clone it freely (it is shared).
#[derive(Debug, Clone, Default)]
pub struct Graders(Arc<RwLock<HashMap<String, Arc<RunGrading>>>>);

impl Graders {
    /// Makes `run`'s answers gradable: its suite parsed once, each job's task looked up once.
    /// A run whose stored suite no longer parses (written by an older coordinator) is logged and
    /// left out: its results then keep the worker's grades.
    pub fn open(&self, run: &RunRecord, jobs: &[JobRecord]) {
        // A run of throughput tests alone has no suite and nothing to grade.
        if run.suite_toml.is_empty() {
            return;
        }
        let suite = match Suite::parse(&run.suite_toml, "suite_toml") {
            Ok(suite) => suite,
            Err(err) => {
                warn!(run = %run.id, error = %err, "the run's suite does not load; its answers are not regraded");
                return;
            }
        };
        // By job index: sized by the largest index, as adaptive runs add jobs after the first.
        let slots = jobs.iter().map(|j| j.index as usize + 1).max().unwrap_or(0);
        let mut task_of_job = vec![u32::MAX; slots.max(jobs.len())];
        for job in jobs.iter().filter(|j| j.throughput.is_none()) {
            let task = suite.tasks.iter().position(|t| t.id == job.task_id);
            if let (Some(slot), Some(task)) = (task_of_job.get_mut(job.index as usize), task) {
                *slot = u32::try_from(task).unwrap_or(u32::MAX);
            }
        }
        if let Ok(mut map) = self.0.write() {
            map.insert(run.id.clone(), Arc::new(RunGrading { suite, task_of_job }));
        }
    }

    /// Forgets a run that ended (its late answers are not stored, so not graded either).
    pub fn close(&self, run_id: &str) {
        if let Ok(mut map) = self.0.write() {
            map.remove(run_id);
        }
    }

    /// The coordinator's grade of `answer` as the answer to job `job_id`; `None` when the job is
    /// not one of a live run's (nothing would store the result) or its task is not in the suite.
    pub fn grade(&self, job_id: &str, answer: &str) -> Option<Grade> {
        let run_id = crate::run::run_of_job(job_id)?;
        let index: usize = job_id.rsplit_once('-')?.1.parse().ok()?;
        let grading = self.0.read().ok()?.get(run_id).cloned()?;
        let task = *grading.task_of_job.get(index)?;
        let task = grading.suite.tasks.get(task as usize)?;
        Some(task.grade(answer))
    }
}

/// Whether the worker's grade disagrees with the coordinator's: another verdict. (Check texts may
/// differ between suite crate versions without either grade being wrong; the verdict is what counts.)
pub fn disagrees(worker: &Grade, coordinator: &Grade) -> bool {
    worker.verdict != coordinator.verdict
}

/// Cuts `answer` to at most `max_bytes` (at a character boundary) and returns its length before,
/// when it was longer: the stored answer is bounded whatever a worker sends.
pub fn truncate_answer(answer: &mut String, max_bytes: usize) -> Option<u64> {
    if answer.len() <= max_bytes {
        return None;
    }
    let before = answer.len() as u64;
    let mut end = max_bytes;
    while !answer.is_char_boundary(end) {
        end -= 1;
    }
    answer.truncate(end);
    Some(before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Placement, Requirements, RunState, RunTask};

    const SUITE: &str = r#"
name = "g"
version = "1"
[[tasks]]
id = "a"
category = "c"
prompt = "say yes"
pass = [{ contains = "yes" }]
[[tasks]]
id = "b"
category = "c"
prompt = "say no"
pass = [{ contains = "no" }]
"#;

    fn run() -> RunRecord {
        RunRecord {
            id: "0190abcd-0000-7000-8000-000000000001".into(),
            created_unix_ms: 0,
            label: String::new(),
            suite_name: "g".into(),
            suite_version: "1".into(),
            suite_toml: SUITE.into(),
            models: Vec::new(),
            tasks: ["a", "b"]
                .map(|id| RunTask {
                    id: id.into(),
                    category: "c".into(),
                    max_tokens: 16,
                })
                .to_vec(),
            throughput: Vec::new(),
            repetitions: 2,
            adaptive: None,
            model_repetitions: Vec::new(),
            stop_reasons: Vec::new(),
            seed: 0,
            placement: Placement::Spread,
            require: Requirements::default(),
            jobs_total: 0,
            state: RunState::Running,
            finished_unix_ms: None,
            suite_history: Vec::new(),
            counts: None,
            trace_parent: String::new(),
        }
    }

    #[test]
    fn grades_each_job_with_its_own_task_until_the_run_closes() {
        let mut r = run();
        r.models.push(crate::records::RunModel {
            name: "m".into(),
            sha256: "0".repeat(64),
            size_bytes: 0,
            kind: crate::records::ModelKind::Scripted {
                toml: String::new(),
            },
        });
        let jobs = crate::run::expand(&r);
        let graders = Graders::default();
        graders.open(&r, &jobs);
        // Expansion order: a#0, a#1, b#0, b#1.
        let verdict = |i: usize, answer: &str| {
            graders
                .grade(&jobs[i].id, answer)
                .map(|g| g.verdict.as_str())
        };
        assert_eq!(verdict(0, "yes"), Some("pass"));
        assert_eq!(verdict(1, "no"), Some("fail"));
        assert_eq!(verdict(2, "no"), Some("pass"));
        assert_eq!(verdict(3, "yes"), Some("fail"));
        // Not a job of a live run, or not a job id at all.
        assert_eq!(graders.grade(&crate::run::job_id(&r.id, 99), "yes"), None);
        assert_eq!(graders.grade("no-such-run-0000000000", "yes"), None);
        assert_eq!(graders.grade("", "yes"), None);
        graders.close(&r.id);
        assert_eq!(verdict(0, "yes"), None);
    }

    #[test]
    fn a_run_whose_suite_does_not_load_is_left_out() {
        let mut r = run();
        r.suite_toml = "name = ".into();
        let graders = Graders::default();
        graders.open(&r, &[]);
        assert_eq!(graders.grade(&crate::run::job_id(&r.id, 0), "yes"), None);
    }

    #[test]
    fn answers_are_cut_at_a_character_boundary() {
        let mut short = "abc".to_string();
        assert_eq!(truncate_answer(&mut short, 3), None);
        assert_eq!(short, "abc");
        let mut long = "aé".repeat(4); // 12 bytes
        assert_eq!(truncate_answer(&mut long, 5), Some(12));
        assert_eq!(long, "aéa"); // 4 bytes: the é at 4..6 would cross the limit
        let mut none = "é".to_string();
        assert_eq!(truncate_answer(&mut none, 1), Some(2));
        assert_eq!(none, "");
    }
}
