//! The entry points that produce a [`Suite`]: `parse` (text), `load` (a file), `builtin` (by
//! name) and [`resolve`] (what a user typed: a built-in name or a path), plus the crate's only
//! I/O, reading one suite file. The data model is `model.rs`, the format walk `format.rs`.

use crate::error::SuiteError;
use crate::limits::SuiteLimits;
use crate::model::Suite;
use std::path::Path;

impl Suite {
    /// Parses and validates suite text. `origin` names the source in errors
    /// ("suites/x.toml", "builtin:agent-coding").
    pub fn parse(text: &str, origin: &str) -> Result<Suite, SuiteError> {
        crate::format::parse(text, origin, SuiteLimits::DEFAULT)
    }

    /// [`Suite::parse`] under `limits` (the coordinator's, from its flags): a suite over one is
    /// refused with an error naming the limit and where it was exceeded.
    pub fn parse_with_limits(
        text: &str,
        origin: &str,
        limits: SuiteLimits,
    ) -> Result<Suite, SuiteError> {
        crate::format::parse(text, origin, limits)
    }

    /// Reads and parses a suite file; an unreadable file is an error naming it.
    pub fn load(path: &Path) -> Result<Suite, SuiteError> {
        let text = read_file(path)?;
        Suite::parse(&text, &path.display().to_string())
    }

    /// A built-in suite by name, parsed. `None` for an unknown name.
    pub fn builtin(name: &str) -> Option<Suite> {
        let text = crate::builtin::builtin_source(name)?;
        Suite::parse(text, &format!("builtin:{name}")).ok()
    }
}

/// The only I/O in the crate: reading one suite file.
pub(crate) fn read_file(path: &Path) -> Result<String, SuiteError> {
    std::fs::read_to_string(path).map_err(|e| {
        SuiteError::file(
            &path.display().to_string(),
            format!("cannot read suite file: {e}"),
        )
    })
}

/// Resolves a built-in name (also accepted as `builtin:NAME`) or a file path to the
/// parsed suite and its source text. A built-in name wins over a file of the same
/// name in the working directory; write `./agent-coding` for the file.
pub fn resolve(name_or_path: &str) -> Result<(Suite, String), SuiteError> {
    let builtin = name_or_path
        .strip_prefix("builtin:")
        .unwrap_or(name_or_path);
    if let Some(text) = crate::builtin::builtin_source(builtin) {
        let suite = Suite::parse(text, &format!("builtin:{builtin}"))?;
        return Ok((suite, text.to_owned()));
    }
    let path = Path::new(name_or_path);
    if name_or_path.starts_with("builtin:") || !path.exists() {
        return Err(SuiteError::file(
            name_or_path,
            format!(
                "no such suite file, and not a built-in suite (built-ins: {})",
                crate::builtin::NAMES.join(", ")
            ),
        ));
    }
    let text = read_file(path)?;
    let suite = Suite::parse(&text, &path.display().to_string())?;
    Ok((suite, text))
}
