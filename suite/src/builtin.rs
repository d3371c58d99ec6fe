//! The suites compiled into the binary: their names and their exact TOML text (a leaf:
//! `suite.rs`'s `resolve` turns what a user typed into a parsed suite with it).
//!
//! The text travels with the suite because the coordinator ships it to workers, who
//! re-parse it: a worker then grades with exactly the suite the coordinator loaded,
//! even if its own binary's built-ins or files differ.

/// Built-in names, in the order listed to users.
pub(crate) const NAMES: &[&str] = &["agent-coding"];

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
