//! The `jsonl` format: one line per [`Outcome`], every field, for people who want the raw data.
//!
//! One compact JSON object per line, in the order given (the coordinator's order). serde_json
//! escapes line breaks inside strings, so a line is always exactly one outcome. Timings that are
//! NaN or infinite cannot be written as JSON numbers and come out as `null`.

use crate::outcome::Outcome;

pub(crate) fn render(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        match serde_json::to_string(o) {
            Ok(line) => out.push_str(&line),
            Err(e) => out.push_str(&serde_json::json!({ "error": e.to_string() }).to_string()),
        }
        out.push('\n');
    }
    out
}
