//! The estimates placement decides on, as pure functions of what was measured: a worker's speed
//! and model-load time, a model's expected answer length, and how long until a busy worker has a
//! slot free.
//!
//! Speed is learned: each worker's generated tokens per second, as a moving average over its jobs.
//! A worker without history is assumed to be as fast as the median measured worker (or a nominal
//! 100 tokens/s before anyone has measured anything), so a new worker is neither starved nor trusted
//! with the tail of a run. The scheduler (`core/views.rs`) feeds these its state; the placement
//! simulator (`benches/placement_sim.rs`) feeds them a simulated farm, so both run on the same rules.

/// Tokens per second assumed before any worker has been measured.
pub const NOMINAL_SPEED: f64 = 100.0;
/// Weight of the newest sample in a moving average.
pub const SMOOTHING: f64 = 0.3;

/// The moving average after `sample`: the sample itself when there was none before.
pub fn smoothed(old: Option<f64>, sample: f64) -> f64 {
    old.map_or(sample, |old| old + SMOOTHING * (sample - old))
}

/// What a worker without measurements of its own is assumed to have, from the farm's measured
/// workers: the median speed, and the load time of the median measured load (with that worker's
/// speed, to scale by). Worked out once per scheduler step, not once per worker: asking every
/// worker's view for the farm's medians made a step O(workers²) (at 1,000 simulated workers, the
/// largest cost of a step; docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fallbacks {
    speed: f64,
    load: Option<(f64, f64)>,
}

impl Fallbacks {
    /// From each measured worker's speed (`speeds`) and each measured load's seconds and speed
    /// (`loads`).
    pub fn new(
        speeds: impl IntoIterator<Item = f64>,
        loads: impl IntoIterator<Item = (f64, f64)>,
    ) -> Fallbacks {
        let mut known: Vec<f64> = speeds.into_iter().collect();
        known.sort_by(f64::total_cmp);
        let mut loads: Vec<(f64, f64)> = loads.into_iter().collect();
        loads.sort_by(|a, b| a.0.total_cmp(&b.0));
        Fallbacks {
            speed: known.get(known.len() / 2).copied().unwrap_or(NOMINAL_SPEED),
            load: loads.get(loads.len() / 2).copied(),
        }
    }

    /// The speed assumed for a worker: its own measured speed, else the median measured one,
    /// else [`NOMINAL_SPEED`].
    pub fn speed(&self, own: Option<f64>) -> f64 {
        own.unwrap_or(self.speed)
    }

    /// The seconds a worker of `speed` is assumed to need to load a model: its own measured loads,
    /// else the median measured load scaled by relative speed, else 0.
    pub fn load_seconds(&self, own: Option<f64>, speed: f64) -> f64 {
        if let Some(load) = own {
            return load;
        }
        match self.load {
            Some((load, measured_speed)) => load * measured_speed / speed.max(1e-9),
            None => 0.0,
        }
    }
}

/// The speed assumed for a worker: its own measured speed, else the median of the `measured` ones,
/// else [`NOMINAL_SPEED`].
pub fn assumed_speed(own: Option<f64>, measured: impl IntoIterator<Item = f64>) -> f64 {
    match own {
        Some(speed) => speed,
        None => Fallbacks::new(measured, []).speed(None),
    }
}

/// The seconds a worker of `speed` is assumed to need to load a model: its own measured loads,
/// else the median measured worker's (`measured`: load seconds and speed of each) scaled by relative
/// speed, else 0.
pub fn assumed_load_seconds(
    own: Option<f64>,
    measured: impl IntoIterator<Item = (f64, f64)>,
    speed: f64,
) -> f64 {
    match own {
        Some(load) => load,
        None => Fallbacks::new([], measured).load_seconds(None, speed),
    }
}

/// Expected generated tokens of a job with token limit `max_tokens`: its model's mean so far
/// (`model`: total tokens and jobs), else the mean over every model measured (`all`; answers to one
/// suite are alike in length more often than not), else half the limit.
pub fn expected_tokens(
    model: Option<(f64, u32)>,
    all: impl IntoIterator<Item = (f64, u32)>,
    max_tokens: u32,
) -> f64 {
    if let Some((sum, n)) = model.filter(|(_, n)| *n > 0) {
        return sum / f64::from(n);
    }
    let (sum, n) = all
        .into_iter()
        .fold((0.0, 0u32), |(s, c), (sum, n)| (s + sum, c + n));
    if n > 0 {
        sum / f64::from(n)
    } else {
        f64::from(max_tokens.max(2)) / 2.0
    }
}

/// Seconds until one of a worker's slots frees up for a new job: 0 while it holds fewer jobs than
/// it has slots, else the work still ahead of it spread over its slots. `ahead` lists the jobs it
/// holds whose size is known: each job's whole duration and, for a running job, the seconds since
/// a slot started it (a prefetched job may have waited on the worker long after its assignment).
pub fn busy_for(held: u32, slots: u32, ahead: impl IntoIterator<Item = (f64, Option<f64>)>) -> f64 {
    let slots = slots.max(1);
    if held < slots {
        return 0.0;
    }
    let remaining: f64 = ahead
        .into_iter()
        .map(|(whole, running_for)| match running_for {
            Some(elapsed) => (whole - elapsed).max(0.0),
            None => whole,
        })
        .sum();
    let busy = remaining / f64::from(slots);
    if busy.is_finite() { busy } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmeasured_workers_take_the_median_or_the_nominal_speed() {
        assert_eq!(assumed_speed(Some(7.0), [1.0, 2.0]), 7.0);
        assert_eq!(assumed_speed(None, [300.0, 100.0, 200.0]), 200.0);
        assert_eq!(assumed_speed(None, []), NOMINAL_SPEED);
    }

    #[test]
    fn unmeasured_loads_scale_the_median_by_relative_speed() {
        assert_eq!(assumed_load_seconds(Some(0.5), [(9.0, 1.0)], 1.0), 0.5);
        // Median load 2 s on a 100 tokens/s worker: 1 s on one twice as fast.
        assert_eq!(
            assumed_load_seconds(None, [(1.0, 50.0), (2.0, 100.0), (9.0, 10.0)], 200.0),
            1.0
        );
        assert_eq!(assumed_load_seconds(None, [], 200.0), 0.0);
    }

    #[test]
    fn the_farm_fallbacks_worked_out_once_give_each_worker_what_it_would_get_alone() {
        let speeds = [30.0, 120.0, 75.0, 75.0];
        let loads = [(1.0, 50.0), (2.0, 100.0), (9.0, 10.0)];
        let farm = Fallbacks::new(speeds, loads);
        for own in [None, Some(12.5)] {
            let speed = farm.speed(own);
            assert_eq!(speed, assumed_speed(own, speeds));
            for own_load in [None, Some(0.25)] {
                assert_eq!(
                    farm.load_seconds(own_load, speed),
                    assumed_load_seconds(own_load, loads, speed)
                );
            }
        }
        let empty = Fallbacks::new([], []);
        assert_eq!(empty.speed(None), NOMINAL_SPEED);
        assert_eq!(empty.load_seconds(None, 10.0), 0.0);
    }

    #[test]
    fn expected_tokens_fall_back_from_model_to_all_to_half_the_limit() {
        assert_eq!(expected_tokens(Some((30.0, 3)), [(100.0, 1)], 256), 10.0);
        assert_eq!(
            expected_tokens(Some((0.0, 0)), [(30.0, 1), (10.0, 1)], 256),
            20.0
        );
        assert_eq!(expected_tokens(None, [], 256), 128.0);
    }

    #[test]
    fn busy_for_counts_from_the_start_of_a_running_job() {
        assert_eq!(busy_for(1, 2, [(4.0, Some(1.0))]), 0.0);
        // Running 3 s left, one waiting 4 s, one slot.
        assert_eq!(busy_for(2, 1, [(4.0, Some(1.0)), (4.0, None)]), 7.0);
        // Overdue jobs count as about to end, and two slots share the work.
        assert_eq!(busy_for(2, 2, [(1.0, Some(5.0)), (6.0, Some(2.0))]), 2.0);
        assert_eq!(smoothed(None, 5.0), 5.0);
        assert_eq!(smoothed(Some(10.0), 20.0), 13.0);
    }
}
