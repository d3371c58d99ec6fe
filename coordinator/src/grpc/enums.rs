//! The wire's enums and the domain's, one conversion each way.
//!
//! The proto carries states, placements and report formats as proto enums (never strings), and the
//! domain has its own enums for them: [`RunState`], [`JobState`] (which also carries who holds a
//! job), [`Placement`] and the report crate's [`Format`]. What arrives on the wire is untrusted: an
//! unknown number is an error naming the field, never a silent default. Unspecified means the
//! documented default where a request may leave the field out (spread, table), and is refused where
//! a reply must say (a run's state, read by clients).

use benchfarm_proto::v1 as pb;
use benchfarm_report::Format;

use crate::job::JobState;
use crate::records::{Placement, RunState};

impl From<Placement> for pb::Placement {
    fn from(p: Placement) -> Self {
        match p {
            Placement::Spread => pb::Placement::Spread,
            Placement::EveryWorker => pb::Placement::EveryWorker,
            Placement::PerClass => pb::Placement::PerClass,
        }
    }
}

/// A request's placement: unspecified is spread, an unknown number an error.
pub fn placement_from_wire(v: i32) -> Result<Placement, String> {
    match pb::Placement::try_from(v) {
        Ok(pb::Placement::Unspecified | pb::Placement::Spread) => Ok(Placement::Spread),
        Ok(pb::Placement::EveryWorker) => Ok(Placement::EveryWorker),
        Ok(pb::Placement::PerClass) => Ok(Placement::PerClass),
        Err(_) => Err(format!(
            "unknown value {v}; expected SPREAD, EVERY_WORKER or PER_CLASS"
        )),
    }
}

impl From<RunState> for pb::RunState {
    fn from(s: RunState) -> Self {
        match s {
            RunState::Running => pb::RunState::Running,
            RunState::Finished => pb::RunState::Finished,
            RunState::Cancelled => pb::RunState::Cancelled,
        }
    }
}

/// A reply's run state, for clients: `None` for unspecified or a number this build does not know
/// (a newer coordinator), which a client shows as such instead of guessing.
pub fn run_state_from_wire(v: i32) -> Option<RunState> {
    match pb::RunState::try_from(v) {
        Ok(pb::RunState::Running) => Some(RunState::Running),
        Ok(pb::RunState::Finished) => Some(RunState::Finished),
        Ok(pb::RunState::Cancelled) => Some(RunState::Cancelled),
        Ok(pb::RunState::Unspecified) | Err(_) => None,
    }
}

/// The name a client prints for a reply's run state ("running", …; "unknown" for a number this
/// build does not know).
pub fn run_state_name(v: i32) -> &'static str {
    run_state_from_wire(v).map_or("unknown", RunState::as_str)
}

impl From<&JobState> for pb::JobState {
    fn from(s: &JobState) -> Self {
        match s {
            JobState::Queued => pb::JobState::Queued,
            JobState::Assigned { .. } => pb::JobState::Assigned,
            JobState::Running { .. } => pb::JobState::Running,
            JobState::Done { .. } => pb::JobState::Done,
            JobState::Failed => pb::JobState::Failed,
            JobState::Cancelled => pb::JobState::Cancelled,
        }
    }
}

/// The wire's name for a report format.
pub fn report_format_to_wire(f: Format) -> pb::ReportFormat {
    match f {
        Format::Table => pb::ReportFormat::Table,
        Format::Markdown => pb::ReportFormat::Markdown,
        Format::Csv => pb::ReportFormat::Csv,
        Format::Json => pb::ReportFormat::Json,
        Format::Jsonl => pb::ReportFormat::Jsonl,
        Format::Html => pb::ReportFormat::Html,
    }
}

/// A request's report format: unspecified is the table, an unknown number an error.
pub fn report_format_from_wire(v: i32) -> Result<Format, String> {
    match pb::ReportFormat::try_from(v) {
        Ok(pb::ReportFormat::Unspecified | pb::ReportFormat::Table) => Ok(Format::Table),
        Ok(pb::ReportFormat::Markdown) => Ok(Format::Markdown),
        Ok(pb::ReportFormat::Csv) => Ok(Format::Csv),
        Ok(pb::ReportFormat::Json) => Ok(Format::Json),
        Ok(pb::ReportFormat::Jsonl) => Ok(Format::Jsonl),
        Ok(pb::ReportFormat::Html) => Ok(Format::Html),
        Err(_) => Err(format!(
            "unknown value {v}; expected one of TABLE, MARKDOWN, CSV, JSON, JSONL, HTML"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placement_and_format_round_trips_and_unknown_numbers_are_refused() {
        for p in [
            Placement::Spread,
            Placement::EveryWorker,
            Placement::PerClass,
        ] {
            assert_eq!(placement_from_wire(pb::Placement::from(p) as i32), Ok(p));
        }
        assert_eq!(placement_from_wire(0), Ok(Placement::Spread));
        assert!(placement_from_wire(99).unwrap_err().contains("99"));
        for f in Format::ALL {
            assert_eq!(
                report_format_from_wire(report_format_to_wire(f) as i32),
                Ok(f)
            );
        }
        assert_eq!(report_format_from_wire(0), Ok(Format::Table));
        assert!(report_format_from_wire(-1).is_err());
    }

    #[test]
    fn run_states_round_trip_and_unspecified_is_unknown_to_clients() {
        for s in [RunState::Running, RunState::Finished, RunState::Cancelled] {
            assert_eq!(run_state_from_wire(pb::RunState::from(s) as i32), Some(s));
            assert_eq!(run_state_name(pb::RunState::from(s) as i32), s.as_str());
        }
        assert_eq!(run_state_from_wire(0), None);
        assert_eq!(run_state_name(42), "unknown");
    }

    #[test]
    fn job_states_map_onto_distinct_wire_values() {
        let states = [
            JobState::Queued,
            JobState::Assigned {
                worker_id: "w".into(),
                attempt: 1,
            },
            JobState::Running {
                worker_id: "w".into(),
                attempt: 1,
            },
            JobState::Done { attempt: 1 },
            JobState::Failed,
            JobState::Cancelled,
        ];
        let wire: std::collections::HashSet<i32> = states
            .iter()
            .map(|s| pb::JobState::from(s) as i32)
            .collect();
        assert_eq!(wire.len(), states.len());
        assert!(!wire.contains(&(pb::JobState::Unspecified as i32)));
    }
}
