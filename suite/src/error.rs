//! Load errors: [`SuiteError`] carries every problem found in a suite file as a
//! [`Diagnostic`] with file, line, column and field, so an author fixes them all in
//! one pass instead of one per reload.
//!
//! Positions are computed here from byte offsets (the TOML parser reports spans in
//! bytes) because authors read line/column in characters, 1-based, as editors show.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One problem in a suite file.
///
/// `line` and `column` are 1-based (columns count characters). A problem with the
/// file as a whole (it cannot be read, or no such built-in) has `line == 0` and
/// `column == 0`; its `field` is empty, as it is for TOML syntax errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A suite that could not be loaded: one or more diagnostics, in file order.
///
/// Display prints one line per diagnostic:
/// `FILE:LINE:COL: field `x`: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct SuiteError {
    diagnostics: Vec<Diagnostic>,
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl SuiteError {
    /// Builds an error from diagnostics; they are sorted by position so the
    /// report reads top to bottom whatever order the checks ran in.
    pub fn new(mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| (d.line, d.column));
        SuiteError { diagnostics }
    }

    /// An error about a whole file (unreadable, unknown name): no line or field.
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        SuiteError {
            diagnostics: vec![Diagnostic {
                file: file.to_owned(),
                line: 0,
                column: 0,
                field: String::new(),
                message: message.into(),
            }],
        }
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }
}

/// Maps byte offsets in a source text to 1-based (line, column) pairs.
pub(crate) struct Positions<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Positions<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Positions { text, line_starts }
    }

    /// Line and column of `offset`; offsets past the end or inside a character
    /// are clamped rather than trusted, so a bad span can never panic.
    pub(crate) fn locate(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_characters_from_one() {
        let p = Positions::new("ab\ncé\nx");
        assert_eq!(p.locate(0), (1, 1));
        assert_eq!(p.locate(1), (1, 2));
        assert_eq!(p.locate(3), (2, 1));
        // 'é' is two bytes; the column after it is 3, not 4.
        assert_eq!(p.locate(6), (2, 3));
        assert_eq!(p.locate(7), (3, 1));
        // Out of range and mid-character offsets are clamped, not panics.
        assert_eq!(p.locate(99), (3, 2));
        assert_eq!(p.locate(5), (2, 2));
    }

    #[test]
    fn display_is_one_line_per_diagnostic() {
        let d = |line, field: &str| Diagnostic {
            file: "s.toml".into(),
            line,
            column: 4,
            field: field.into(),
            message: "bad".into(),
        };
        let e = SuiteError::new(vec![d(7, "tasks[a].id"), d(2, "")]);
        assert_eq!(
            e.to_string(),
            "s.toml:2:4: bad\ns.toml:7:4: field `tasks[a].id`: bad"
        );
        assert_eq!(
            SuiteError::file("x.toml", "cannot read").to_string(),
            "x.toml: cannot read"
        );
    }
}
