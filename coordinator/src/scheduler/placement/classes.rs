//! Classes of queued jobs for one placement call: jobs alike in all but their ids, so that a pick
//! asks its per-job rules once per class (see [`Classes`]).

use super::PendingJob;

/// Queued jobs alike in everything a pick asks of a job for one worker (all but their ids):
/// the pick's capability and leave-to-holders rules answer the same for every job of a class,
/// so a pick asks once per class instead of once per job of the queue's head (1,000 workers each
/// asking of a few thousand jobs was most of a step). A job is compared with the last few classes
/// seen; one that matches none starts a class of its own, which is only ever less sharing.
pub(super) struct Classes<'q> {
    recent: Vec<(&'q PendingJob, usize)>,
    /// How many recent classes a job is compared with (0: every job is a class of its own).
    compare: usize,
    count: usize,
}

impl<'q> Classes<'q> {
    /// How many recent classes a job is compared with in the scheduler.
    pub(super) const RECENT: usize = 8;

    pub(super) fn comparing(compare: usize) -> Classes<'q> {
        Classes {
            recent: Vec::with_capacity(compare),
            compare,
            count: 0,
        }
    }

    /// The class of `job`: the recent class it is alike to, else a new one.
    pub(super) fn of(&mut self, job: &'q PendingJob) -> usize {
        if let Some(&(_, class)) = self.recent.iter().find(|(seen, _)| alike(seen, job)) {
            return class;
        }
        let class = self.count;
        self.count += 1;
        if self.compare > 0 {
            if self.recent.len() == self.compare {
                self.recent.remove(0);
            }
            self.recent.push((job, class));
        }
        class
    }

    pub(super) fn count(&self) -> usize {
        self.count
    }
}

/// Whether two queued jobs are alike for a pick: equal in every field but their ids. Written as
/// a destructuring so that a field added to [`PendingJob`] cannot be left out by mistake.
fn alike(a: &PendingJob, b: &PendingJob) -> bool {
    let PendingJob {
        job_id: _,
        run_id: _,
        model,
        scripted,
        memory_bytes,
        pin,
        require,
        avoid,
        work_tokens,
        fetch_bytes,
        remote,
    } = a;
    *model == b.model
        && *scripted == b.scripted
        && *memory_bytes == b.memory_bytes
        && *pin == b.pin
        && *require == b.require
        && *avoid == b.avoid
        && work_tokens.to_bits() == b.work_tokens.to_bits()
        && *fetch_bytes == b.fetch_bytes
        && *remote == b.remote
}
