//! Output formats and their command-line names.
//!
//! The names are what a user types after `--format`, so parsing is case-insensitive and accepts
//! the obvious long spelling `markdown` besides `md`; `Display` gives back the canonical name.

use std::fmt;
use std::str::FromStr;

/// A rendering of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Aligned pipe table with a one-line footer, for terminals.
    Table,
    /// A full write-up: summary, per-task matrix, per-category, per-hardware, failed jobs.
    Markdown,
    /// One row per model × task.
    Csv,
    /// The `Report` itself, pretty-printed.
    Json,
    /// One line per attempt (results and failures), every field.
    Jsonl,
    /// One self-contained HTML page: leaderboard, charts, heat map, every answer.
    Html,
}

impl Format {
    /// Every format, in the order help texts list them.
    pub const ALL: [Format; 6] = [
        Format::Table,
        Format::Markdown,
        Format::Csv,
        Format::Json,
        Format::Jsonl,
        Format::Html,
    ];

    /// The canonical name, as accepted by `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Markdown => "md",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Html => "html",
        }
    }
}

impl Format {
    /// The media type of the rendering, for an HTTP or gRPC reply that carries it; the same
    /// strings the coordinator used before this method existed, plus `text/html` for the page.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv",
            Format::Markdown => "text/markdown",
            Format::Table => "text/plain",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown report format {0:?} (expected one of: table, md, csv, json, jsonl, html)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "md" | "markdown" => Ok(Format::Markdown),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "jsonl" => Ok(Format::Jsonl),
            "html" | "htm" => Ok(Format::Html),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
        }
    }

    #[test]
    fn parses_aliases_and_case() {
        assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!("Markdown".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!(" JSONL ".parse::<Format>(), Ok(Format::Jsonl));
        assert_eq!("HTML".parse::<Format>(), Ok(Format::Html));
    }

    #[test]
    fn content_types() {
        assert_eq!(Format::Jsonl.content_type(), "application/x-ndjson");
        assert_eq!(Format::Html.content_type(), "text/html; charset=utf-8");
        for f in Format::ALL {
            assert!(!f.content_type().is_empty());
        }
    }

    #[test]
    fn rejects_unknown() {
        let err = "xml".parse::<Format>().unwrap_err();
        assert_eq!(err, UnknownFormat("xml".to_string()));
        assert!(err.to_string().contains("table, md, csv, json, jsonl"));
        assert!("".parse::<Format>().is_err());
    }
}
