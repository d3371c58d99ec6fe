//! The `json` format: the [`Report`] itself, pretty-printed — the contract other tools read.
//!
//! Serializing these plain structs cannot fail in practice (no maps with non-string keys, no
//! custom serializers; a NaN a caller put into a hand-made report becomes `null`), but rather
//! than `unwrap` the error is turned into a JSON object naming it, so the output stays JSON.

use crate::report::Report;

pub(crate) fn render(report: &Report) -> String {
    let mut out = match serde_json::to_string_pretty(report) {
        Ok(s) => s,
        Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
    };
    out.push('\n');
    out
}
