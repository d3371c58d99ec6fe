//! Live progress for `submit --wait` and `status RUN --wait`: on a terminal, one progress bar per
//! model (jobs ended / jobs so far, failures and running jobs beside it, an ETA from the measured
//! rate — `indicatif` draws them on stderr and limits redraws); elsewhere (a pipe, a CI log) one
//! line per finished job, as before, so logs stay greppable.
//!
//! The bars are drawn from each event's per-model counts (`RunStatus.model_counts`), so a bar's
//! length grows when an adaptive run adds repetitions.

use std::io::IsTerminal;

use benchfarm_proto::v1 as pb;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::print;

/// How a watch shows progress.
pub enum Progress {
    /// One line per finished job on stderr.
    Lines,
    /// A bar per model.
    Bars(Bars),
}

impl Progress {
    /// Bars when both stdout and stderr are terminals, else lines.
    pub fn for_this_terminal() -> Progress {
        if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            Progress::Bars(Bars::default())
        } else {
            Progress::Lines
        }
    }

    /// Shows `event`.
    pub fn event(&mut self, event: &pb::RunEvent) {
        match self {
            Progress::Lines => {
                if let Some(line) = print::progress_line(event) {
                    eprintln!("{line}");
                }
            }
            Progress::Bars(bars) => {
                if let Some(status) = &event.status {
                    bars.update(status);
                }
            }
        }
    }

    /// Leaves the bars as they are on the screen.
    pub fn finish(&mut self) {
        if let Progress::Bars(bars) = self {
            for (_, bar) in &bars.bars {
                bar.abandon();
            }
        }
    }
}

/// The bars, one per model in plan order.
#[derive(Default)]
pub struct Bars {
    multi: MultiProgress,
    bars: Vec<(String, ProgressBar)>,
}

/// What one model's bar shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarState {
    /// Jobs that ended (done or failed).
    pub position: u64,
    /// Jobs so far.
    pub length: u64,
    /// "2 running · 1 failed" (empty when neither).
    pub message: String,
}

/// The bar of one model's counts.
pub fn bar_state(c: &pb::ModelCounts) -> BarState {
    let mut parts = Vec::new();
    if c.running > 0 {
        parts.push(format!("{} running", c.running));
    }
    if c.failed > 0 {
        parts.push(format!("{} failed", c.failed));
    }
    BarState {
        position: u64::from(c.done) + u64::from(c.failed),
        length: u64::from(c.total),
        message: parts.join(" · "),
    }
}

impl Bars {
    fn update(&mut self, status: &pb::RunStatus) {
        for c in &status.model_counts {
            let bar = match self.bars.iter().find(|(m, _)| *m == c.model) {
                Some((_, bar)) => bar.clone(),
                None => {
                    let bar = self.multi.add(ProgressBar::new(u64::from(c.total)));
                    if let Ok(style) = ProgressStyle::with_template(
                        "{prefix:>24} [{bar:30}] {pos:>5}/{len:<5} {msg} {elapsed} (ETA {eta})",
                    ) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.set_prefix(c.model.clone());
                    self.bars.push((c.model.clone(), bar.clone()));
                    bar
                }
            };
            let state = bar_state(c);
            bar.set_length(state.length);
            bar.set_position(state.position);
            bar.set_message(state.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_counts_ended_jobs_and_names_running_and_failed_ones() {
        let c = pb::ModelCounts {
            model: "m".into(),
            total: 10,
            done: 6,
            failed: 1,
            running: 2,
        };
        assert_eq!(
            bar_state(&c),
            BarState {
                position: 7,
                length: 10,
                message: "2 running · 1 failed".into()
            }
        );
        let quiet = pb::ModelCounts {
            running: 0,
            failed: 0,
            ..c
        };
        assert_eq!(bar_state(&quiet).message, "");
    }

    #[test]
    fn bars_follow_the_counts_and_grow_with_added_repetitions() {
        let mut bars = Bars {
            // Hidden: the test draws nothing.
            multi: MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden()),
            bars: Vec::new(),
        };
        let status = |total, done| pb::RunStatus {
            model_counts: vec![pb::ModelCounts {
                model: "m".into(),
                total,
                done,
                ..pb::ModelCounts::default()
            }],
            ..pb::RunStatus::default()
        };
        bars.update(&status(4, 1));
        bars.update(&status(6, 4));
        assert_eq!(bars.bars.len(), 1);
        let bar = &bars.bars[0].1;
        assert_eq!((bar.position(), bar.length()), (4, Some(6)));
    }
}
