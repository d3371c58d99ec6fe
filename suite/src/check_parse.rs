//! Reading one CHECK (an inline table) from the suite's TOML, with every load-time
//! validation the format promises: exactly one kind key (or one of the two allowed
//! pairs), regexes that compile, JSON pointers with valid syntax, `at_least` bounds,
//! non-empty lists.
//!
//! Validation happens here, once, so that [`Check::holds`] can be total.

use crate::check::Check;
use crate::reader::{Reader, Value, join};
use serde_json::{Map, Number, Value as Json};
use toml::de::{DeTable, DeValue};

/// Every key that can start a check, for "expected one of" messages.
const KINDS: &[&str] = &[
    "contains",
    "icontains",
    "regex",
    "equals",
    "json",
    "json_pointer",
    "json_equals",
    "regex_accepts",
    "regex_rejects",
    "not",
    "any",
    "all",
    "at_least",
    "of",
];

/// The two checks written with two keys.
const PAIRS: [(&str, &str); 2] = [("json_pointer", "json_equals"), ("at_least", "of")];

const CHECK_SHAPE: &str = "a check (an inline table such as { contains = \"x\" })";

/// Reads a non-empty array of checks at `field`.
pub(crate) fn read_check_list(
    r: &mut Reader<'_>,
    v: &Value<'_>,
    field: &str,
) -> Option<Vec<Check>> {
    let items = r.array(v, field, "an array of checks")?;
    if items.is_empty() {
        r.error(v.span(), field, "must list at least one check");
        return None;
    }
    let before = r.error_count();
    let checks: Vec<Check> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| read_check(r, item, &format!("{field}[{i}]")))
        .collect();
    (r.error_count() == before && checks.len() == items.len()).then_some(checks)
}

/// Reads one check at `field`.
pub(crate) fn read_check(r: &mut Reader<'_>, v: &Value<'_>, field: &str) -> Option<Check> {
    r.checks_read += 1;
    // Reported once, at the first check over the limit: where the suite grew too big.
    if r.checks_read == r.limits.checks + 1 {
        let message = format!(
            "more than {} checks in the suite, over the limit max_suite_checks = {}",
            r.limits.checks, r.limits.checks
        );
        r.error(v.span(), field, message);
    }
    if r.checks_read > r.limits.checks {
        return None;
    }
    let table = r.table(v, field, CHECK_SHAPE)?;
    let keys: Vec<&str> = table.iter().map(|(k, _)| -> &str { k.get_ref() }).collect();
    let unknown_before = r.error_count();
    r.unknown_keys(table, KINDS, field);
    if r.error_count() > unknown_before {
        return None;
    }
    match keys.as_slice() {
        [] => {
            r.error(
                v.span(),
                field,
                format!("empty check; expected one of: {}", KINDS.join(", ")),
            );
            None
        }
        [kind] => {
            if let Some((a, b)) = PAIRS.iter().find(|(a, b)| a == kind || b == kind) {
                let missing = if a == kind { b } else { a };
                r.error(
                    v.span(),
                    field,
                    format!("`{kind}` needs `{missing}` in the same check"),
                );
                return None;
            }
            let value = table.get(*kind)?;
            read_single(r, kind, value, &join(field, kind))
        }
        _ => {
            if let Some((a, b)) = PAIRS
                .iter()
                .find(|(a, b)| keys.len() == 2 && keys.contains(a) && keys.contains(b))
            {
                return read_pair(r, table, a, b, field);
            }
            let listed = keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            r.error(
                v.span(),
                field,
                format!(
                    "a check has exactly one key (or json_pointer + json_equals, or at_least + of); found {listed}"
                ),
            );
            None
        }
    }
}

fn read_single(r: &mut Reader<'_>, kind: &str, v: &Value<'_>, field: &str) -> Option<Check> {
    match kind {
        "contains" => non_empty_string(r, v, field).map(Check::Contains),
        "icontains" => non_empty_string(r, v, field).map(Check::IContains),
        "equals" => r.string(v, field).map(Check::Equals),
        "regex" => {
            let pattern = r.string(v, field)?;
            if pattern.len() > r.limits.regex_bytes {
                let message = format!(
                    "regex of {} bytes, over the limit max_regex_bytes = {}",
                    pattern.len(),
                    r.limits.regex_bytes
                );
                r.error(v.span(), field, message);
                return None;
            }
            // The compiled size is bounded too: a short pattern with nested counted
            // repetitions compiles to gigabytes. The regex crate reports going over it
            // as `CompiledTooBig`, named here as the limit.
            match regex::RegexBuilder::new(&pattern)
                .size_limit(r.limits.regex_compiled_bytes)
                .build()
            {
                Err(regex::Error::CompiledTooBig(limit)) => {
                    r.error(
                        v.span(),
                        field,
                        format!(
                            "regex `{pattern}` compiles to more than {limit} bytes, over the limit max_regex_compiled_bytes = {limit}"
                        ),
                    );
                    None
                }
                Ok(re) => Some(Check::Regex(re)),
                Err(e) => {
                    let why = one_line_regex_error(&e);
                    r.error(
                        v.span(),
                        field,
                        format!("regex `{pattern}` does not compile: {why}"),
                    );
                    None
                }
            }
        }
        "json" => match v.get_ref() {
            DeValue::Boolean(true) => Some(Check::Json),
            DeValue::Boolean(false) => {
                r.error(
                    v.span(),
                    field,
                    "`json = false` is not a check; write `{ not = { json = true } }` for \"is not JSON\"",
                );
                None
            }
            other => {
                let found = other.type_str();
                r.error(v.span(), field, format!("expected `true`, found {found}"));
                None
            }
        },
        "regex_accepts" => string_list(r, v, field).map(Check::RegexAccepts),
        "regex_rejects" => string_list(r, v, field).map(Check::RegexRejects),
        "not" => read_check(r, v, field).map(|c| Check::Not(Box::new(c))),
        "any" => read_check_list(r, v, field).map(Check::Any),
        "all" => read_check_list(r, v, field).map(Check::All),
        // read_check routes only known single keys here; anything else is a bug in
        // that routing, reported rather than panicked on.
        _ => {
            r.error(v.span(), field, format!("`{kind}` cannot be used alone"));
            None
        }
    }
}

fn read_pair(
    r: &mut Reader<'_>,
    table: &DeTable<'_>,
    a: &str,
    b: &str,
    field: &str,
) -> Option<Check> {
    let (va, vb) = (table.get(a)?, table.get(b)?);
    let (fa, fb) = (join(field, a), join(field, b));
    if a == "json_pointer" {
        let pointer = r.string(va, &fa);
        if let Some(p) = &pointer {
            if !(p.is_empty() || p.starts_with('/')) {
                r.error(
                    va.span(),
                    &fa,
                    format!("JSON pointer `{p}` must be \"\" or start with \"/\" (RFC 6901)"),
                );
                return None;
            }
            if let Some(bad) = bad_pointer_escape(p) {
                r.error(
                    va.span(),
                    &fa,
                    format!("JSON pointer `{p}`: `~` must be followed by 0 or 1, found `{bad}`"),
                );
                return None;
            }
        }
        let equals = toml_to_json(r, vb, &fb);
        Some(Check::JsonPointer {
            pointer: pointer?,
            equals: equals?,
        })
    } else {
        let n = r.integer(va, &fa);
        let of = read_check_list(r, vb, &fb)?;
        let n = n?;
        if n < 1 || n as usize > of.len() {
            r.error(
                va.span(),
                &fa,
                format!(
                    "at_least = {n} must be between 1 and the {} checks listed in `of`",
                    of.len()
                ),
            );
            return None;
        }
        Some(Check::AtLeast { n: n as usize, of })
    }
}

/// The first `~x` in a pointer where x is not 0 or 1, as text.
fn bad_pointer_escape(p: &str) -> Option<String> {
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0' | '1') => {}
                Some(x) => return Some(format!("~{x}")),
                None => return Some("~".to_owned()),
            }
        }
    }
    None
}

/// An empty needle always holds, which would make a check that tests nothing.
fn non_empty_string(r: &mut Reader<'_>, v: &Value<'_>, field: &str) -> Option<String> {
    let s = r.string(v, field)?;
    if s.is_empty() {
        r.error(
            v.span(),
            field,
            "must not be empty (an empty string is in every text)",
        );
        return None;
    }
    Some(s)
}

/// A non-empty array of strings: with none, regex_accepts/rejects would hold for
/// any answer that compiles.
fn string_list(r: &mut Reader<'_>, v: &Value<'_>, field: &str) -> Option<Vec<String>> {
    let items = r.array(v, field, "an array of strings")?;
    if items.is_empty() {
        r.error(v.span(), field, "must list at least one string");
        return None;
    }
    let strings: Vec<String> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| r.string(item, &format!("{field}[{i}]")))
        .collect();
    (strings.len() == items.len()).then_some(strings)
}

/// A TOML value as the JSON value it would be compared to. Datetimes become their
/// TOML text; non-finite floats have no JSON form and are rejected.
pub(crate) fn toml_to_json(r: &mut Reader<'_>, v: &Value<'_>, field: &str) -> Option<Json> {
    match v.get_ref() {
        DeValue::String(s) => Some(Json::String(s.to_string())),
        DeValue::Integer(_) => r.integer(v, field).map(|i| Json::Number(i.into())),
        DeValue::Float(_) => {
            let f = r.number(v, field)?;
            let n = Number::from_f64(f);
            if n.is_none() {
                r.error(v.span(), field, format!("{f} has no JSON form"));
            }
            n.map(Json::Number)
        }
        DeValue::Boolean(b) => Some(Json::Bool(*b)),
        DeValue::Datetime(d) => Some(Json::String(d.to_string())),
        DeValue::Array(items) => {
            let converted: Vec<Json> = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| toml_to_json(r, item, &format!("{field}[{i}]")))
                .collect();
            (converted.len() == items.len()).then_some(Json::Array(converted))
        }
        DeValue::Table(t) => {
            let mut map = Map::new();
            for (k, item) in t.iter() {
                let key: &str = k.get_ref();
                map.insert(key.to_owned(), toml_to_json(r, item, &join(field, key))?);
            }
            Some(Json::Object(map))
        }
    }
}

/// The `regex` crate's errors draw a caret diagram over several lines; a diagnostic
/// is one line, so keep only the "error: ..." part.
fn one_line_regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}
