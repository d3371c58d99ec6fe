//! A run's report as a test reads it: the server's rendering in a named format, or parsed JSON.
//! Both farms ([`crate::in_process`], [`crate::process`]) re-export these.

use benchfarm_coordinator::cli::connect::FarmClient;
use benchfarm_proto::v1 as pb;

/// The report of a run as JSON.
pub async fn report_json(client: &mut FarmClient, run_id: &str) -> serde_json::Value {
    serde_json::from_str(&report_body(client, run_id, "json").await).unwrap()
}

/// The report of a run in `format`, as the server renders it.
pub async fn report_body(client: &mut FarmClient, run_id: &str, format: &str) -> String {
    client
        .get_report(pb::GetReportRequest {
            run_id: run_id.into(),
            // The names a user types (`md`, `jsonl`, …), as the wire's enum.
            format: benchfarm_coordinator::grpc::enums::report_format_to_wire(
                format.parse().expect("a report format name"),
            )
            .into(),
        })
        .await
        .unwrap()
        .into_inner()
        .body
}

/// `(jobs_total, jobs_graded, jobs_failed)` of a JSON report.
pub fn report_counts(report: &serde_json::Value) -> (u64, u64, u64) {
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("report has no {k}: {report}"))
    };
    (n("jobs_total"), n("jobs_graded"), n("jobs_failed"))
}
