//! A submitted run expanded into jobs: model × (task or throughput test) × repetition, each with
//! its own seed.
//!
//! Pure: the caller gives the id and the clock. The job seed depends on (run seed, task, repetition)
//! and not on the model, so every model answers a repetition under the same seed: a fair comparison,
//! and a rerun of the same plan reproduces every sampled answer.

use crate::job::JobState;
use crate::records::{JobRecord, Pin, RunRecord, ThroughputTest};

/// The id of job `index` of `run_id`: sorts by run and then by expansion order in the store.
pub fn job_id(run_id: &str, index: u32) -> String {
    format!("{run_id}-{index:010}")
}

/// The run id a job id belongs to.
pub fn run_of_job(job_id: &str) -> Option<&str> {
    job_id.rsplit_once('-').map(|(run, _)| run)
}

/// `f(seed, task, repetition)`: FNV-1a over the task id, mixed with the seed and repetition by
/// SplitMix64 so nearby inputs give unrelated seeds.
pub fn job_seed(seed: u64, task_id: &str, repetition: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in task_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(seed ^ splitmix64(h ^ u64::from(repetition).rotate_left(32)))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Job `index` of `run`, queued: model `model_index`'s `task_id` (or throughput test), repetition
/// `repetition`, bound to `pin`, with its seed.
pub fn queued_job(
    run: &RunRecord,
    index: u32,
    model_index: u32,
    task_id: &str,
    throughput: Option<ThroughputTest>,
    repetition: u32,
    pin: Option<Pin>,
) -> JobRecord {
    JobRecord {
        id: job_id(&run.id, index),
        run_id: run.id.clone(),
        index,
        model_index,
        task_id: task_id.to_string(),
        throughput,
        repetition,
        seed: job_seed(run.seed, task_id, repetition),
        pin,
        state: JobState::Queued,
        attempts: Vec::new(),
    }
}

/// Every job of a `spread` run: models × tasks × repetitions, unpinned.
pub fn expand(run: &RunRecord) -> Vec<JobRecord> {
    expand_pinned(run, &vec![vec![None]; run.models.len()])
}

/// Every job of `run`, in the order models × (tasks, then throughput tests) × repetitions × pins
/// (throughput tests for local models only), where `pins[m]` lists the
/// targets of model `m` (`[None]` for spread; one worker or class each for the other placements).
/// The order matters: the scheduler takes jobs in this order, so one model's jobs are grouped and a
/// worker keeps its model loaded.
pub fn expand_pinned(run: &RunRecord, pins: &[Vec<Option<Pin>>]) -> Vec<JobRecord> {
    let mut jobs = Vec::new();
    for (model_index, model_pins) in pins.iter().enumerate().take(run.models.len()) {
        for task in &run.tasks {
            for repetition in 0..run.repetitions {
                for pin in model_pins {
                    let index = jobs.len() as u32;
                    jobs.push(queued_job(
                        run,
                        index,
                        model_index as u32,
                        &task.id,
                        None,
                        repetition,
                        pin.clone(),
                    ));
                }
            }
        }
        // A remote model runs on somebody else's machine: there is no llama.cpp to measure.
        let local = run
            .models
            .get(model_index)
            .is_some_and(|m| m.remote().is_none());
        for test in run.throughput.iter().filter(|_| local) {
            let name = test.name();
            for repetition in 0..run.repetitions {
                for pin in model_pins {
                    let index = jobs.len() as u32;
                    jobs.push(queued_job(
                        run,
                        index,
                        model_index as u32,
                        &name,
                        Some(*test),
                        repetition,
                        pin.clone(),
                    ));
                }
            }
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ModelKind, RunModel, RunState, RunTask, ThroughputTest};

    fn run(models: usize, tasks: usize, reps: u32) -> RunRecord {
        RunRecord {
            id: "0190-run".into(),
            created_unix_ms: 0,
            label: String::new(),
            suite_name: "s".into(),
            suite_version: "1".into(),
            suite_toml: String::new(),
            models: (0..models)
                .map(|i| RunModel {
                    name: format!("m{i}"),
                    sha256: format!("{i:064}"),
                    size_bytes: 1,
                    kind: ModelKind::Scripted {
                        toml: String::new(),
                    },
                })
                .collect(),
            tasks: (0..tasks)
                .map(|i| RunTask {
                    id: format!("t{i}"),
                    category: "c".into(),
                    max_tokens: 64,
                })
                .collect(),
            throughput: Vec::new(),
            repetitions: reps,
            adaptive: None,
            model_repetitions: Vec::new(),
            stop_reasons: Vec::new(),
            seed: 42,
            placement: Default::default(),
            require: Default::default(),
            jobs_total: 0,
            state: RunState::Running,
            finished_unix_ms: None,
            suite_history: vec![],
            counts: None,
            trace_parent: String::new(),
        }
    }

    #[test]
    fn expands_models_tasks_repetitions_in_order() {
        let jobs = expand(&run(2, 3, 4));
        assert_eq!(jobs.len(), 24);
        let mut seen = std::collections::HashSet::new();
        for j in &jobs {
            assert!(seen.insert((j.model_index, j.task_id.clone(), j.repetition)));
            assert_eq!(run_of_job(&j.id), Some("0190-run"));
        }
        assert_eq!(jobs[0].model_index, 0);
        assert_eq!(jobs[12].model_index, 1);
        assert_eq!((jobs[5].task_id.as_str(), jobs[5].repetition), ("t1", 1));
        // Ids sort in expansion order (the store relies on it for prefix scans).
        let mut ids: Vec<_> = jobs.iter().map(|j| j.id.clone()).collect();
        ids.sort();
        assert_eq!(ids, jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>());
    }

    #[test]
    fn pinned_expansion_repeats_each_job_per_target() {
        let r = run(2, 2, 2);
        let pins = vec![
            vec![Some(Pin::Worker("a".into())), Some(Pin::Worker("b".into()))],
            vec![Some(Pin::Class("x".into()))],
        ];
        let jobs = expand_pinned(&r, &pins);
        assert_eq!(jobs.len(), 2 * 2 * 2 + 2 * 2);
        assert_eq!(
            jobs.iter()
                .filter(|j| j.pin == Some(Pin::Worker("b".into())))
                .count(),
            4
        );
        assert!(
            jobs[8..]
                .iter()
                .all(|j| j.model_index == 1 && j.pin == Some(Pin::Class("x".into())))
        );
    }

    #[test]
    fn throughput_tests_follow_the_tasks_of_each_local_model_only() {
        let mut r = run(2, 2, 2);
        r.throughput = vec![
            ThroughputTest {
                n_prompt: 16,
                n_gen: 0,
            },
            ThroughputTest {
                n_prompt: 0,
                n_gen: 8,
            },
        ];
        // The second model is remote: no llama.cpp of ours to measure.
        r.models[1].kind = ModelKind::Remote(crate::records::RemoteSpec {
            url: "http://127.0.0.1:1/v1".into(),
            model: "m".into(),
            api_key_env: None,
            price_per_mtok: None,
            max_concurrency: 1,
            timeout_ms: 1000,
            retries: 0,
        });
        let pins = vec![
            vec![Some(Pin::Worker("a".into())), Some(Pin::Worker("b".into()))],
            vec![None],
        ];
        let jobs = expand_pinned(&r, &pins);
        // Model 0: (2 tasks + 2 tests) × 2 reps × 2 workers; model 1: 2 tasks × 2 reps.
        assert_eq!(jobs.len(), 16 + 4);
        let measured: Vec<&JobRecord> = jobs.iter().filter(|j| j.throughput.is_some()).collect();
        assert_eq!(measured.len(), 8);
        assert!(measured.iter().all(|j| j.model_index == 0));
        // After the model's tasks, named as llama-bench names the test, each on both workers.
        assert!(jobs[..8].iter().all(|j| j.throughput.is_none()));
        assert_eq!(
            measured
                .iter()
                .map(|j| j.task_id.as_str())
                .collect::<Vec<_>>(),
            ["pp16", "pp16", "pp16", "pp16", "tg8", "tg8", "tg8", "tg8"]
        );
        assert_eq!(
            (measured[2].repetition, measured[2].pin.clone()),
            (1, Some(Pin::Worker("a".into())))
        );
        assert_eq!(jobs[8].index, 8);
        assert_eq!(jobs[8].seed, job_seed(42, "pp16", 0));
    }

    #[test]
    fn seeds_are_shared_across_models_and_distinct_across_repetitions() {
        let jobs = expand(&run(2, 2, 3));
        assert_eq!(jobs[0].seed, jobs[6].seed, "same task+rep on two models");
        assert_ne!(jobs[0].seed, jobs[1].seed);
        assert_ne!(job_seed(42, "a", 0), job_seed(43, "a", 0));
        assert_ne!(job_seed(42, "a", 0), job_seed(42, "b", 0));
        assert_eq!(job_seed(42, "a", 7), job_seed(42, "a", 7));
    }
}
