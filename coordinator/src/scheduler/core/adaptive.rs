//! Adaptive repetitions in the live scheduler: when every job of a model (at the repetitions it
//! has so far) has ended, the pure rule of `benchfarm_report::adaptive` decides from its results
//! whether it gets one more repetition of all its tasks — added as ordinary jobs (leases,
//! exactly-once, the same pins as its first repetition) — or stops, and why. The run finishes
//! only once every model has stopped.
//!
//! The decision reads the run's stored results (once per model and repetition, not per job) on
//! the scheduler's thread, like the rest of the single writer's store work. A crash between a
//! model's last job and its decision is harmless: resuming a run settles every model before
//! finishing it, so the same decision is taken then. The repetitions a model has and the next
//! job index are read from the jobs, never from the run's counters, which a crash may leave a
//! step behind the jobs the store kept.

use benchfarm_report::adaptive::{Decision, StopReason, assess};
use tracing::info;

use super::Scheduler;
use crate::records::{JobRecord, Pin};
use crate::run::queued_job;
use crate::scheduler::SchedulerError;

impl Scheduler {
    /// Settles every model of `run_id` whose jobs have all ended (see [`Scheduler::settle_model`]),
    /// then finishes the run if nothing is left to run.
    pub(super) fn settle_run(&mut self, run_id: &str) -> Result<(), SchedulerError> {
        let models = self.runs.get(run_id).map_or(0, |r| r.models.len());
        for model in 0..models {
            self.settle_model(run_id, model)?;
        }
        self.finish_if_complete(run_id)
    }

    /// A job of model `model` of `run_id` ended: settle that model, then finish the run if done.
    pub(super) fn job_ended(&mut self, run_id: &str, model: u32) -> Result<(), SchedulerError> {
        self.settle_model(run_id, model as usize)?;
        self.finish_if_complete(run_id)
    }

    /// For a run with an adaptive rule: when none of `model`'s jobs is left to run and it has not
    /// stopped, decide — one more repetition of its tasks, or a stop reason, stored in the run.
    fn settle_model(&mut self, run_id: &str, model: usize) -> Result<(), SchedulerError> {
        let Some(run) = self.runs.get(run_id) else {
            return Ok(());
        };
        let Some(rule) = run.adaptive else {
            return Ok(());
        };
        if run.stop_reasons.get(model).copied().flatten().is_some() {
            return Ok(());
        }
        let graded = |j: &&JobRecord| j.model_index as usize == model && j.throughput.is_none();
        // Checked on the live jobs in place: this runs after every job of an adaptive run, and
        // the copy below is only for the (rare) decision.
        if self
            .jobs_of(run_id)
            .into_iter()
            .filter(graded)
            .any(|j| !j.state.is_terminal())
        {
            return Ok(());
        }
        let jobs: Vec<JobRecord> = self.jobs_of(run_id).into_iter().cloned().collect();
        // From the jobs themselves, not the run's counters: after a crash the store may hold
        // a repetition's jobs without the run record that counted them.
        let repetitions = jobs
            .iter()
            .filter(graded)
            .map(|j| j.repetition.saturating_add(1))
            .max()
            .unwrap_or(0)
            .max(run.repetitions_of(model));
        let name = run
            .models
            .get(model)
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let results = self.store.results_of_run(run_id)?;
        let inputs = crate::reporting::inputs(run, &jobs, &results, &[]);
        let outcomes: Vec<_> = inputs
            .outcomes
            .into_iter()
            .filter(|o| o.model == name)
            .collect();
        let seed = benchfarm_report::bootstrap::seed_for_parts(&[run_id, &name, "repetitions"]);
        let assessment = assess(&rule, &outcomes, repetitions, seed);
        let decision = match assessment.decision {
            // The rule says `max` itself; this guards the arithmetic below all the same.
            Decision::More if repetitions >= rule.max.max(rule.min) => {
                Decision::Stop(StopReason::MaxReached)
            }
            other => other,
        };
        info!(run = %run_id, model = %name, repetitions, decision = ?decision,
              ci_half_width = ?assessment.ci_half_width, "adaptive repetitions decided");
        match decision {
            Decision::More => self.add_repetition(run_id, model, &jobs, repetitions),
            Decision::Stop(reason) => {
                let Some(run) = self.runs.get_mut(run_id) else {
                    return Ok(());
                };
                run.stop_reasons.resize(run.models.len(), None);
                if let Some(slot) = run.stop_reasons.get_mut(model) {
                    *slot = Some(reason);
                }
                self.store.put_run(run)?;
                Ok(())
            }
        }
    }

    /// Adds repetition `repetition` (0-based) of every task of `model`, once per pin its first
    /// repetition had, as queued jobs after the run's last one.
    fn add_repetition(
        &mut self,
        run_id: &str,
        model: usize,
        jobs: &[JobRecord],
        repetition: u32,
    ) -> Result<(), SchedulerError> {
        let Some(run) = self.runs.get(run_id) else {
            return Ok(());
        };
        let firsts = || {
            jobs.iter().filter(|j| {
                j.model_index as usize == model && j.throughput.is_none() && j.repetition == 0
            })
        };
        let mut pins: Vec<Option<Pin>> = Vec::new();
        for job in firsts() {
            if !pins.contains(&job.pin) {
                pins.push(job.pin.clone());
            }
        }
        let mut added = Vec::new();
        // After every job the run has (see `settle_model` on counters after a crash).
        let mut index = jobs
            .iter()
            .map(|j| j.index.saturating_add(1))
            .max()
            .unwrap_or(0)
            .max(run.jobs_total);
        for task in &run.tasks {
            for pin in &pins {
                added.push(queued_job(
                    run,
                    index,
                    model as u32,
                    &task.id,
                    None,
                    repetition,
                    pin.clone(),
                ));
                index = index.saturating_add(1);
            }
        }
        let Some(run) = self.runs.get_mut(run_id) else {
            return Ok(());
        };
        run.jobs_total = index;
        run.model_repetitions
            .resize(run.models.len(), run.repetitions);
        if let Some(n) = run.model_repetitions.get_mut(model) {
            *n = repetition.saturating_add(1);
        }
        // Jobs first, then the run that counts them, then durable: as at submit.
        self.store.put_jobs(&added)?;
        self.store.put_run(run)?;
        self.store.flush()?;
        info!(run = %run_id, model, repetition, jobs = added.len(), "repetition added");
        let run = run.clone();
        for job in added {
            self.insert_job(job);
        }
        // The graders learn the new jobs' tasks (they index tasks by job).
        let all: Vec<JobRecord> = self.jobs_of(run_id).into_iter().cloned().collect();
        self.graders.open(&run, &all);
        Ok(())
    }
}
