//! `aggregate`: turns a run's description and its graded outcomes into a [`Report`].
//!
//! Ordering is part of the output and is fully determined by the inputs: models in plan order,
//! tasks in suite order, then anything the plan or suite did not mention (in first-seen order
//! over outcomes, then failed jobs) so that no data is silently dropped. Duplicate plan or suite
//! entries keep their first occurrence. Duplicate outcomes (same model/task/repetition) are
//! counted as given; deduplication is the coordinator's job, which knows which one is right.
//!
//! Timing hygiene: a timing that is NaN, infinite or negative is treated as "not measured" and
//! skipped (see `stats::valid_ms`); throughputs only use jobs with a positive duration for that
//! phase, so a zero-duration job neither divides by zero nor inflates the rate with its tokens.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::bootstrap::{self, Cluster};
use crate::outcome::{Outcome, RunInfo};
use crate::plausibility;
use crate::report::{
    CategoryReport, CiMethod, HardwareReport, ImplausibleTiming, ModelReport, Report, SuiteRef,
    TaskReport, Timing,
};
use crate::stats::{self, Counts};
use crate::timings;

/// Aggregates `outcomes` of the run described by `info`. Total: any input gives a report.
/// Outcomes with `counted == false` (superseded results kept for audit) are skipped: a job is
/// scored once, by its counted result.
pub fn aggregate(info: &RunInfo, outcomes: &[Outcome]) -> Report {
    // Cost is of every result, counted or not: a superseded answer was paid for too.
    let mut spent: HashMap<&str, Vec<Option<f64>>> = HashMap::new();
    for o in outcomes {
        spent.entry(o.model.as_str()).or_default().push(o.cost_usd);
    }
    // Borrowed, not cloned: an outcome carries its answer and trace, and a 100,000-result run
    // cloned twice was most of a report's memory. Only an outcome whose timings are flagged is
    // copied (with its timings cleared), into a list of its own.
    let counted: Vec<&Outcome> = outcomes.iter().filter(|o| o.counted).collect();
    // Implausible timings are flagged and left out of every timing aggregate (as unmeasured);
    // the outcome still counts for its grade.
    let reasons = plausibility::implausible(&counted);
    let flagged: Vec<Outcome> = counted
        .iter()
        .zip(&reasons)
        .filter_map(|(o, reason)| {
            Some(Outcome {
                implausible_timing: Some(reason.clone()?),
                ..plausibility::without_timings(o)
            })
        })
        .collect();
    let mut flagged = flagged.iter();
    let outcomes: Vec<&Outcome> = counted
        .iter()
        .zip(&reasons)
        .filter_map(|(o, reason)| match reason {
            Some(_) => flagged.next(),
            None => Some(*o),
        })
        .collect();
    let outcomes = outcomes.as_slice();
    let implausible_timings = outcomes
        .iter()
        .filter_map(|o| {
            Some(ImplausibleTiming {
                job: o.job.clone(),
                attempt: o.attempt,
                model: o.model.clone(),
                task_id: o.task_id.clone(),
                worker_name: o.worker_name.clone(),
                hardware_class: o.hardware_class.clone(),
                reason: o.implausible_timing.clone()?,
            })
        })
        .collect();
    let grade_disagreements = outcomes
        .iter()
        .filter(|o| o.worker_verdict.is_some())
        .count() as u64;
    let models = ordered(
        info.models.iter().map(|m| m.name.as_str()),
        outcomes.iter().map(|o| o.model.as_str()),
        info.failed_jobs.iter().map(|f| f.model.as_str()),
    );
    let tasks = ordered(
        info.tasks.iter().map(|t| t.id.as_str()),
        outcomes.iter().map(|o| o.task_id.as_str()),
        info.failed_jobs.iter().map(|f| f.task_id.as_str()),
    );
    let category_of: HashMap<&str, &str> = info
        .tasks
        .iter()
        .rev() // so that the first of duplicate ids wins
        .map(|t| (t.id.as_str(), t.category.as_str()))
        .collect();
    let task_list: Vec<(&str, &str)> = tasks
        .iter()
        .map(|id| (*id, category_of.get(id).copied().unwrap_or("")))
        .collect();

    let mut by_model: HashMap<&str, Vec<&Outcome>> = HashMap::new();
    for &o in outcomes {
        by_model.entry(o.model.as_str()).or_default().push(o);
    }

    let model_reports: Vec<ModelReport> = models
        .iter()
        .map(|name| {
            let outs = by_model.get(name).map(Vec::as_slice).unwrap_or(&[]);
            let mut report = model_report(info, name, outs, &task_list);
            let costs = spent.get(name).map(Vec::as_slice).unwrap_or(&[]);
            report.cost_usd = model_cost(info, name, costs);
            report.cost_per_job_usd = report
                .cost_usd
                .filter(|_| !costs.is_empty())
                .map(|c| c / costs.len() as f64);
            report
        })
        .collect();
    let cost_usd = crate::cost::total(model_reports.iter().map(|m| m.cost_usd));

    let hardware = hardware_reports(info, &models, &task_list, outcomes);
    let jobs_graded = outcomes.len() as u64;
    let jobs_failed = info.failed_jobs.len() as u64;

    Report {
        run: info.run_id.clone(),
        suite: SuiteRef {
            name: info.suite_name.clone(),
            version: info.suite_version.clone(),
        },
        repetitions: info.repetitions,
        state: info.state.clone(),
        jobs_total: info.jobs_total,
        jobs_done: jobs_graded.saturating_add(jobs_failed),
        jobs_graded,
        jobs_failed,
        ci: CiMethod {
            method: "cluster-bootstrap-tasks".to_string(),
            resamples: bootstrap::RESAMPLES as u64,
            confidence: bootstrap::CONFIDENCE,
        },
        ci_repetitions: CiMethod {
            method: "stratified-bootstrap-repetitions".to_string(),
            resamples: bootstrap::RESAMPLES as u64,
            confidence: bootstrap::CONFIDENCE,
        },
        models: model_reports,
        hardware,
        failed_jobs: info.failed_jobs.clone(),
        grade_disagreements,
        implausible_timings,
        cost_usd,
        jobs_measured: 0,
        throughput: Vec::new(),
    }
}

/// A model's cost: nothing for a model the plan calls local (whatever its outcomes say: older
/// inputs carry no cost), else the sum of its results' costs, unknown if one is.
fn model_cost(info: &RunInfo, name: &str, costs: &[Option<f64>]) -> Option<f64> {
    match info.models.iter().find(|m| m.name == name) {
        Some(m) if m.kind != "remote" => Some(0.0),
        Some(m) if costs.is_empty() => crate::cost::job_cost(&m.kind, m.price_per_mtok, 0, 0),
        _ => crate::cost::total(costs.iter().copied()),
    }
}

/// The declared names first, then names only seen in the two other streams, each kept once.
fn ordered<'a>(
    declared: impl Iterator<Item = &'a str>,
    seen: impl Iterator<Item = &'a str>,
    also_seen: impl Iterator<Item = &'a str>,
) -> Vec<&'a str> {
    let mut known = std::collections::HashSet::new();
    declared
        .chain(seen)
        .chain(also_seen)
        .filter(|name| known.insert(*name))
        .collect()
}

fn model_report(
    info: &RunInfo,
    name: &str,
    outs: &[&Outcome],
    task_list: &[(&str, &str)],
) -> ModelReport {
    let plan = info.models.iter().find(|m| m.name == name);
    let counts = count(outs);

    let mut by_task: HashMap<&str, Vec<&Outcome>> = HashMap::new();
    for o in outs {
        by_task.entry(o.task_id.as_str()).or_default().push(o);
    }
    let mut errors_by_task: HashMap<&str, u64> = HashMap::new();
    for f in info.failed_jobs.iter().filter(|f| f.model == name) {
        *errors_by_task.entry(f.task_id.as_str()).or_default() += 1;
    }

    let tasks: Vec<TaskReport> = task_list
        .iter()
        .map(|(id, category)| {
            let touts = by_task.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let errors = errors_by_task.get(id).copied().unwrap_or(0);
            let seed = bootstrap::seed_for_parts(&[&info.run_id, name, id, "repetitions"]);
            task_report(id, category, touts, errors, seed)
        })
        .collect();

    let seed = bootstrap::seed_for(&info.run_id, name);
    let rep_seed = bootstrap::seed_for_parts(&[&info.run_id, name, "repetitions"]);

    ModelReport {
        name: name.to_string(),
        size_bytes: plan.map_or(0, |m| m.size_bytes),
        kind: plan.map(|m| m.kind.clone()).unwrap_or_default(),
        sha256: plan.map(|m| m.sha256.clone()).unwrap_or_default(),
        n: counts.n(),
        pass: counts.pass,
        partial: counts.partial,
        fail: counts.fail,
        score: counts.score(),
        score_ci95: bootstrap::ci95(&clusters(&tasks), seed),
        score_ci95_repetitions: bootstrap::ci95_repetitions(&by_task_jobs(outs), rep_seed),
        score_stddev: rep_stddev(outs),
        errors: errors_by_task.values().sum(),
        cost_usd: None,
        cost_per_job_usd: None,
        price_per_mtok: plan.and_then(|m| m.price_per_mtok),
        stop_reason: None,
        timing: timing(outs),
        workers: distinct_workers(outs),
        threads: distinct_threads(outs),
        categories: categories(&tasks),
        tasks,
    }
}

/// One (model, task) — or (model, task, hardware class) — cell.
fn task_report(
    id: &str,
    category: &str,
    touts: &[&Outcome],
    errors: u64,
    rep_seed: u64,
) -> TaskReport {
    let c = count(touts);
    let job_scores: Vec<f64> = touts.iter().map(|o| o.verdict.score()).collect();
    let jobs: Vec<u64> = touts.iter().map(|o| o.verdict.half_points()).collect();
    TaskReport {
        id: id.to_string(),
        category: category.to_string(),
        n: c.n(),
        pass: c.pass,
        partial: c.partial,
        fail: c.fail,
        score: c.score(),
        score_stddev: stats::sample_stddev(&job_scores),
        score_ci95_repetitions: bootstrap::ci95_repetitions(&[jobs], rep_seed),
        errors,
        grade_disagreements: touts.iter().filter(|o| o.worker_verdict.is_some()).count() as u64,
        implausible_timings: touts
            .iter()
            .filter(|o| o.implausible_timing.is_some())
            .count() as u64,
        timing: timing(touts),
    }
}

/// The task clusters of the cluster bootstrap.
fn clusters(tasks: &[TaskReport]) -> Vec<Cluster> {
    tasks
        .iter()
        .map(|t| Cluster {
            half_points: 2 * t.pass + t.partial,
            jobs: t.n,
        })
        .collect()
}

/// Half-points of every job, grouped by task (first-seen order), for the repetitions bootstrap.
fn by_task_jobs(outs: &[&Outcome]) -> Vec<Vec<u64>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<u64>> = Vec::new();
    for o in outs {
        let i = *index.entry(o.task_id.as_str()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        if let Some(g) = groups.get_mut(i) {
            g.push(o.verdict.half_points());
        }
    }
    groups
}

/// Standard deviation of the per-repetition suite scores: how much the headline number moves
/// between repeats.
fn rep_stddev(outs: &[&Outcome]) -> f64 {
    let mut by_rep: BTreeMap<u32, Counts> = BTreeMap::new();
    for o in outs {
        by_rep.entry(o.repetition).or_default().add(o.verdict);
    }
    let rep_scores: Vec<f64> = by_rep.values().map(Counts::score).collect();
    stats::sample_stddev(&rep_scores)
}

fn count(outs: &[&Outcome]) -> Counts {
    let mut c = Counts::default();
    for o in outs {
        c.add(o.verdict);
    }
    c
}

fn categories(tasks: &[TaskReport]) -> Vec<CategoryReport> {
    let mut out: Vec<CategoryReport> = Vec::new();
    for t in tasks {
        let idx = match out.iter().position(|c| c.category == t.category) {
            Some(i) => i,
            None => {
                out.push(CategoryReport {
                    category: t.category.clone(),
                    tasks: 0,
                    n: 0,
                    pass: 0,
                    partial: 0,
                    fail: 0,
                    score: 0.0,
                });
                out.len() - 1
            }
        };
        if let Some(c) = out.get_mut(idx) {
            c.tasks += 1;
            c.n += t.n;
            c.pass += t.pass;
            c.partial += t.partial;
            c.fail += t.fail;
        }
    }
    for c in &mut out {
        c.score = Counts {
            pass: c.pass,
            partial: c.partial,
            fail: c.fail,
        }
        .score();
    }
    out
}

fn hardware_reports(
    info: &RunInfo,
    models: &[&str],
    task_list: &[(&str, &str)],
    outcomes: &[&Outcome],
) -> Vec<HardwareReport> {
    let mut by_class: BTreeMap<&str, HashMap<&str, Vec<&Outcome>>> = BTreeMap::new();
    for &o in outcomes {
        by_class
            .entry(o.hardware_class.as_str())
            .or_default()
            .entry(o.model.as_str())
            .or_default()
            .push(o);
    }
    let mut out = Vec::new();
    for (class, per_model) in &by_class {
        for model in models {
            let Some(outs) = per_model.get(model) else {
                continue;
            };
            let c = count(outs);
            let mut by_task: HashMap<&str, Vec<&Outcome>> = HashMap::new();
            for o in outs {
                by_task.entry(o.task_id.as_str()).or_default().push(o);
            }
            // Only the tasks that ran on this class: a task that never did is not a 0 here.
            let tasks: Vec<TaskReport> = task_list
                .iter()
                .filter_map(|(id, category)| {
                    let touts = by_task.get(id)?;
                    let seed =
                        bootstrap::seed_for_parts(&[&info.run_id, model, class, id, "repetitions"]);
                    Some(task_report(id, category, touts, 0, seed))
                })
                .collect();
            let seed = bootstrap::seed_for_parts(&[&info.run_id, model, class]);
            let rep_seed = bootstrap::seed_for_parts(&[&info.run_id, model, class, "repetitions"]);
            out.push(HardwareReport {
                class: (*class).to_string(),
                model: (*model).to_string(),
                n: c.n(),
                pass: c.pass,
                partial: c.partial,
                fail: c.fail,
                score: c.score(),
                score_stddev: rep_stddev(outs),
                score_ci95: bootstrap::ci95(&clusters(&tasks), seed),
                score_ci95_repetitions: bootstrap::ci95_repetitions(&by_task_jobs(outs), rep_seed),
                timing: timing(outs),
                workers: distinct_workers(outs),
                threads: distinct_threads(outs),
                tasks,
            });
        }
    }
    out
}

fn distinct_workers(outs: &[&Outcome]) -> Vec<String> {
    let set: BTreeSet<&str> = outs.iter().map(|o| o.worker_name.as_str()).collect();
    set.into_iter().map(str::to_string).collect()
}

fn distinct_threads(outs: &[&Outcome]) -> Vec<u32> {
    let set: BTreeSet<u32> = outs.iter().map(|o| o.threads).collect();
    set.into_iter().collect()
}

/// Timing summary of a slice of outcomes (see the module docs for what is skipped and why).
pub fn timing(outs: &[&Outcome]) -> Timing {
    let wall_s: Vec<f64> = outs
        .iter()
        .map(|o| o.wall_ms)
        .filter(|&ms| stats::valid_ms(ms))
        .map(|ms| ms / 1000.0)
        .collect();
    let ttft: Vec<f64> = outs
        .iter()
        .map(|o| o.ttft_ms)
        .filter(|&ms| stats::valid_ms(ms))
        .collect();
    let cold: Vec<&&Outcome> = outs.iter().filter(|o| o.cold).collect();
    let load: Vec<f64> = cold
        .iter()
        .map(|o| o.load_ms)
        .filter(|&ms| stats::valid_ms(ms))
        .collect();

    Timing {
        mean_seconds: stats::mean(&wall_s),
        median_seconds: stats::quantile(&wall_s, 0.5),
        p90_seconds: stats::quantile(&wall_s, 0.9),
        gen_tokens_per_second: throughput(outs.iter().map(|o| o.tg())),
        e2e_gen_tokens_per_second: throughput(outs.iter().map(|o| (o.gen_tokens, o.gen_ms))),
        prompt_tokens_per_second: throughput(outs.iter().map(|o| (o.prompt_tokens, o.prompt_ms))),
        mean_ttft_ms: stats::mean(&ttft),
        cold_loads: cold.len() as u64,
        mean_load_ms: stats::mean(&load),
        timings: timings::detail(outs),
    }
}

/// Σ tokens / Σ seconds over the jobs whose duration is finite and positive.
fn throughput(samples: impl Iterator<Item = (u32, f64)>) -> Option<f64> {
    let (tokens, ms) = samples
        .filter(|&(_, ms)| ms.is_finite() && ms > 0.0)
        .fold((0u64, 0.0f64), |(t, m), (tok, ms)| {
            (t.saturating_add(u64::from(tok)), m + ms)
        });
    stats::rate(tokens, ms)
}
