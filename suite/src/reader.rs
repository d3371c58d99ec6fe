//! The typed reader over a parsed TOML tree: it pulls strings, numbers, arrays and
//! tables out of `toml::de::DeValue`s, and on any mismatch records a [`Diagnostic`]
//! at the value's span and carries on, so one load reports every problem.
//!
//! The suite is walked by hand over the span-carrying `DeTable` rather than through
//! `serde` derive because derive stops at the first error, cannot report an unknown
//! key with its own position, and cannot express "an inline table with exactly one
//! of these keys" for checks.

use crate::error::{Diagnostic, Positions, SuiteError};
use crate::limits::SuiteLimits;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

pub(crate) struct Reader<'a> {
    origin: &'a str,
    positions: Positions<'a>,
    diagnostics: Vec<Diagnostic>,
    /// The size limits this suite is read under.
    pub(crate) limits: SuiteLimits,
    /// Checks read so far (nested ones included), against `limits.checks`.
    pub(crate) checks_read: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str, origin: &'a str, limits: SuiteLimits) -> Self {
        Reader {
            origin,
            positions: Positions::new(text),
            diagnostics: Vec::new(),
            limits,
            checks_read: 0,
        }
    }

    /// Records one problem at `span`.
    pub(crate) fn error(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let (line, column) = self.positions.locate(span.start);
        self.diagnostics.push(Diagnostic {
            file: self.origin.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// 1-based line and column of a byte offset, for messages that point elsewhere.
    pub(crate) fn locate(&self, offset: usize) -> (usize, usize) {
        self.positions.locate(offset)
    }

    /// How many problems so far: callers compare before/after to know whether a
    /// sub-tree was clean without threading a flag through every helper.
    pub(crate) fn error_count(&self) -> usize {
        self.diagnostics.len()
    }

    /// The value if nothing went wrong, else every diagnostic. A `None` with no
    /// diagnostic would be a bug in a reader; it still yields an error, never a
    /// silently empty suite.
    pub(crate) fn finish<T>(mut self, value: Option<T>) -> Result<T, SuiteError> {
        match value {
            Some(v) if self.diagnostics.is_empty() => Ok(v),
            None if self.diagnostics.is_empty() => {
                self.error(0..0, "", "the suite could not be read");
                Err(SuiteError::new(self.diagnostics))
            }
            _ => Err(SuiteError::new(self.diagnostics)),
        }
    }

    fn mismatch(&mut self, v: &Value<'_>, field: &str, expected: &str) {
        let found = v.get_ref().type_str();
        self.error(
            v.span(),
            field,
            format!("expected {expected}, found {found}"),
        );
    }

    pub(crate) fn string(&mut self, v: &Value<'_>, field: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.mismatch(v, field, "a string");
                None
            }
        }
    }

    pub(crate) fn integer(&mut self, v: &Value<'_>, field: &str) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                let parsed = i64::from_str_radix(i.as_str(), i.radix()).ok();
                if parsed.is_none() {
                    self.error(v.span(), field, "integer out of range");
                }
                parsed
            }
            _ => {
                self.mismatch(v, field, "an integer");
                None
            }
        }
    }

    /// A float or an integer (authors write `temperature = 0`), as f64.
    pub(crate) fn number(&mut self, v: &Value<'_>, field: &str) -> Option<f64> {
        match v.get_ref() {
            DeValue::Integer(_) => self.integer(v, field).map(|i| i as f64),
            DeValue::Float(f) => {
                let parsed = f.as_str().parse::<f64>().ok();
                if parsed.is_none() {
                    self.error(v.span(), field, "invalid number");
                }
                parsed
            }
            _ => {
                self.mismatch(v, field, "a number");
                None
            }
        }
    }

    pub(crate) fn array<'v, 'i>(
        &mut self,
        v: &'v Value<'i>,
        field: &str,
        expected: &str,
    ) -> Option<&'v [Value<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(&a[..]),
            _ => {
                self.mismatch(v, field, expected);
                None
            }
        }
    }

    pub(crate) fn table<'v, 'i>(
        &mut self,
        v: &'v Value<'i>,
        field: &str,
        expected: &str,
    ) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.mismatch(v, field, expected);
                None
            }
        }
    }

    /// Reports every key of `table` not in `allowed`, at the key's own position.
    pub(crate) fn unknown_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], prefix: &str) {
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if !allowed.contains(&name) {
                let field = join(prefix, name);
                let message = format!(
                    "unknown key `{name}` (expected one of: {})",
                    allowed.join(", ")
                );
                self.error(key.span(), &field, message);
            }
        }
    }
}

/// `prefix.name`, or `name` at the top level.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The span of `key`'s name in `table` (for errors about the key itself).
pub(crate) fn key_span(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    table.get_key_value(key).map(|(k, _)| k.span())
}

/// `[a-z0-9-]+`, the shape of suite names and task ids (they end up in file names,
/// URLs and metric labels).
pub(crate) fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
