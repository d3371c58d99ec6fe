//! benchfarm-suite: the benchmark suite format. A suite is one TOML file of tasks
//! (prompt + checks + known example answers); this crate loads and validates it,
//! extracts the relevant text from a model's raw answer, and grades it.
//!
//! The crate is pure (no network, clock, threads or I/O beyond reading a suite file)
//! so coordinator and workers grade identically and every rule is unit-testable.
//! The format for suite authors is in docs/suite-format.md.

mod answer_regex;
mod builtin;
mod check;
mod check_parse;
mod error;
mod examples;
mod extract;
mod format;
mod grade;
mod limits;
mod model;
mod reader;
mod suite;

pub use builtin::{builtin_names, builtin_source};
pub use check::Check;
pub use error::{Diagnostic, SuiteError};
pub use examples::{Disagreement, ExamplesReport, check_examples};
pub use extract::{Extract, ParseExtractError, extract_code, first_fenced_block};
pub use grade::{CheckOutcome, Grade, ParseVerdictError, Verdict};
pub use limits::SuiteLimits;
pub use model::{DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, Example, Grading, Suite, Task};
pub use suite::resolve;
