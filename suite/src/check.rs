//! Checks: the predicates a task's grading applies to the extracted answer text.
//!
//! A [`Check`] is already validated when it exists (its regex compiled, its bounds
//! in range: see `check_parse.rs`), so evaluating it is total: every answer gives a
//! plain true/false and nothing here can fail or panic.

use crate::answer_regex::AnswerRegex;
use serde_json::Value;
use std::fmt;

/// One check of a task, as written in the suite (see docs/suite-format.md).
#[derive(Debug, Clone)]
pub enum Check {
    /// `{ contains = "s" }`: case-sensitive substring.
    Contains(String),
    /// `{ icontains = "s" }`: case-insensitive substring.
    IContains(String),
    /// `{ regex = "re" }`: the Rust `regex` matches somewhere in the text.
    Regex(regex::Regex),
    /// `{ equals = "s" }`: equal after trimming and folding whitespace runs.
    Equals(String),
    /// `{ json = true }`: the text parses as JSON.
    Json,
    /// `{ json_pointer = "/a", json_equals = VALUE }`.
    JsonPointer { pointer: String, equals: Value },
    /// `{ regex_accepts = [...] }`: the text, as a regex, matches each whole string.
    RegexAccepts(Vec<String>),
    /// `{ regex_rejects = [...] }`: the text, as a regex, matches none of them whole.
    RegexRejects(Vec<String>),
    /// `{ not = CHECK }`.
    Not(Box<Check>),
    /// `{ any = [CHECK, ...] }`.
    Any(Vec<Check>),
    /// `{ all = [CHECK, ...] }`.
    All(Vec<Check>),
    /// `{ at_least = N, of = [CHECK, ...] }`.
    AtLeast { n: usize, of: Vec<Check> },
}

impl Check {
    /// Whether the check holds for `text` (the extracted answer).
    pub fn holds(&self, text: &str) -> bool {
        match self {
            Check::Contains(s) => text.contains(s.as_str()),
            Check::IContains(s) => text.to_lowercase().contains(&s.to_lowercase()),
            Check::Regex(re) => re.is_match(text),
            Check::Equals(s) => fold_whitespace(text) == fold_whitespace(s),
            Check::Json => parse_json(text).is_some(),
            Check::JsonPointer { pointer, equals } => parse_json(text)
                .and_then(|v| v.pointer(pointer).map(|found| json_equal(found, equals)))
                .unwrap_or(false),
            Check::RegexAccepts(strings) => AnswerRegex::compile(text)
                .is_some_and(|re| strings.iter().all(|s| re.matches_whole(s) == Some(true))),
            Check::RegexRejects(strings) => AnswerRegex::compile(text)
                .is_some_and(|re| strings.iter().all(|s| re.matches_whole(s) == Some(false))),
            Check::Not(inner) => !inner.holds(text),
            Check::Any(checks) => checks.iter().any(|c| c.holds(text)),
            Check::All(checks) => checks.iter().all(|c| c.holds(text)),
            Check::AtLeast { n, of } => of.iter().filter(|c| c.holds(text)).count() >= *n,
        }
    }
}

/// Trim and fold every whitespace run to one space, for `equals`.
pub(crate) fn fold_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse_json(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// JSON equality where numbers compare by value, so a suite's `json_equals = 1`
/// matches an answer's `1.0`: a suite author means the number, not its spelling.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Regexes compare by pattern: two suites parsed from the same text are equal.
impl PartialEq for Check {
    fn eq(&self, other: &Check) -> bool {
        use Check::*;
        match (self, other) {
            (Contains(a), Contains(b)) | (IContains(a), IContains(b)) | (Equals(a), Equals(b)) => {
                a == b
            }
            (Regex(a), Regex(b)) => a.as_str() == b.as_str(),
            (Json, Json) => true,
            (
                JsonPointer {
                    pointer: p,
                    equals: e,
                },
                JsonPointer {
                    pointer: q,
                    equals: f,
                },
            ) => p == q && e == f,
            (RegexAccepts(a), RegexAccepts(b)) | (RegexRejects(a), RegexRejects(b)) => a == b,
            (Not(a), Not(b)) => a == b,
            (Any(a), Any(b)) | (All(a), All(b)) => a == b,
            (AtLeast { n, of }, AtLeast { n: m, of: other }) => n == m && of == other,
            _ => false,
        }
    }
}

/// The readable, TOML-ish form used in grade reports, e.g. `contains "jq"`,
/// `not (regex "^rm")`, `at_least 2 of [contains "a", contains "b"]`.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Contains(s) => write!(f, "contains {}", Quoted(s)),
            Check::IContains(s) => write!(f, "icontains {}", Quoted(s)),
            Check::Regex(re) => write!(f, "regex {}", Quoted(re.as_str())),
            Check::Equals(s) => write!(f, "equals {}", Quoted(s)),
            Check::Json => f.write_str("json"),
            Check::JsonPointer { pointer, equals } => {
                write!(f, "json_pointer {} json_equals {equals}", Quoted(pointer))
            }
            Check::RegexAccepts(v) => write!(f, "regex_accepts {}", Strings(v)),
            Check::RegexRejects(v) => write!(f, "regex_rejects {}", Strings(v)),
            Check::Not(c) => write!(f, "not ({c})"),
            Check::Any(v) => write!(f, "any {}", List(v)),
            Check::All(v) => write!(f, "all {}", List(v)),
            Check::AtLeast { n, of } => write!(f, "at_least {n} of {}", List(of)),
        }
    }
}

/// A string as TOML would spell it: in 'literal' quotes when it has backslashes
/// (regexes read as written, not with every backslash doubled), else "basic".
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.contains('\\') && !s.contains('\'') && !s.chars().any(char::is_control) {
            write!(f, "'{s}'")
        } else {
            write!(f, "{s:?}")
        }
    }
}

struct Strings<'a>(&'a [String]);

impl fmt::Display for Strings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Quoted(s))?;
        }
        f.write_str("]")
    }
}

struct List<'a>(&'a [Check]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_numbers_compare_by_value() {
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert!(json_equal(
            &json!({"a": [1, 2.5]}),
            &json!({"a": [1.0, 2.5]})
        ));
        assert!(!json_equal(&json!(1), &json!(2)));
        assert!(!json_equal(&json!("1"), &json!(1)));
        assert!(!json_equal(&json!([1]), &json!([1, 1])));
        assert!(!json_equal(&json!({"a": 1}), &json!({"b": 1})));
        assert!(json_equal(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_equal(&json!(u64::MAX), &json!(u64::MAX - 1)));
    }

    #[test]
    fn display_is_toml_ish() {
        let c = Check::AtLeast {
            n: 1,
            of: vec![
                Check::Not(Box::new(Check::Contains("rm \"x\"".into()))),
                Check::JsonPointer {
                    pointer: "/a/0".into(),
                    equals: json!(5),
                },
                Check::RegexAccepts(vec!["ab".into()]),
                Check::Json,
            ],
        };
        assert_eq!(
            c.to_string(),
            r#"at_least 1 of [not (contains "rm \"x\""), json_pointer "/a/0" json_equals 5, regex_accepts ["ab"], json]"#
        );
    }

    #[test]
    fn regexes_show_in_literal_quotes_when_that_reads_better() {
        let re = |p: &str| Check::Regex(regex::Regex::new(p).unwrap()).to_string();
        assert_eq!(re(r"\bjq\b"), r"regex '\bjq\b'");
        assert_eq!(re("jq"), r#"regex "jq""#);
        assert_eq!(re(r"\d'"), r#"regex "\\d'""#);
    }

    #[test]
    fn fold_whitespace_trims_and_folds() {
        assert_eq!(fold_whitespace("  a \t\n b  c "), "a b c");
    }
}
