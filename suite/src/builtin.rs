//! The suites compiled into the binary, and [`resolve`], which turns what a user
//! typed ("agent-coding" or "suites/x.toml") into a suite plus its exact source text.
//!
//! The text travels with the suite because the coordinator ships it to workers, who
//! re-parse it: a worker then grades with exactly the suite the coordinator loaded,
//! even if its own binary's built-ins or files differ.

use crate::error::SuiteError;
use crate::suite::{Suite, read_file};
use std::path::Path;

/// Built-in names, in the order listed to users.
const NAMES: &[&str] = &["agent-coding"];

/// Names of the built-in suites.
pub fn builtin_names() -> &'static [&'static str] {
    NAMES
}

/// The embedded TOML text of a built-in suite.
pub fn builtin_source(name: &str) -> Option<&'static str> {
    match name {
        "agent-coding" => Some(include_str!("../suites/agent-coding.toml")),
        _ => None,
    }
}

/// Resolves a built-in name (also accepted as `builtin:NAME`) or a file path to the
/// parsed suite and its source text. A built-in name wins over a file of the same
/// name in the working directory; write `./agent-coding` for the file.
pub fn resolve(name_or_path: &str) -> Result<(Suite, String), SuiteError> {
    let builtin = name_or_path
        .strip_prefix("builtin:")
        .unwrap_or(name_or_path);
    if let Some(text) = builtin_source(builtin) {
        let suite = Suite::parse(text, &format!("builtin:{builtin}"))?;
        return Ok((suite, text.to_owned()));
    }
    let path = Path::new(name_or_path);
    if name_or_path.starts_with("builtin:") || !path.exists() {
        return Err(SuiteError::file(
            name_or_path,
            format!(
                "no such suite file, and not a built-in suite (built-ins: {})",
                NAMES.join(", ")
            ),
        ));
    }
    let text = read_file(path)?;
    let suite = Suite::parse(&text, &path.display().to_string())?;
    Ok((suite, text))
}
