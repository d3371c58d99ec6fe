//! The suite file format: walks the parsed TOML document (top level, `[defaults]`,
//! each `[[tasks]]` and its `[[tasks.examples]]`) into a [`Suite`], applying
//! defaults and checking every rule of docs/suite-format.md. Checks themselves are
//! read in `check_parse.rs`.
//!
//! Every problem is recorded and the walk continues, so one load lists them all.

use crate::check_parse::read_check_list;
use crate::error::{Diagnostic, Positions, SuiteError};
use crate::extract::Extract;
use crate::limits::SuiteLimits;
use crate::model::Grading;
use crate::model::{DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, Example, Suite, Task};
use crate::reader::{Reader, Value, is_slug, join, key_span};
use benchfarm_domain::Verdict;
use std::collections::HashMap;
use std::ops::Range;
use toml::de::DeTable;

const ROOT_KEYS: &[&str] = &["name", "version", "description", "defaults", "tasks"];
const SETTING_KEYS: &[&str] = &["system", "max_tokens", "temperature", "extract"];
const TASK_KEYS: &[&str] = &[
    "id",
    "category",
    "prompt",
    "system",
    "max_tokens",
    "temperature",
    "extract",
    "pass",
    "partial",
    "checks",
    "pass_at",
    "partial_at",
    "examples",
];
const EXAMPLE_KEYS: &[&str] = &["answer", "grade"];

/// The settings `[defaults]` provides and a task may override.
#[derive(Default)]
struct Settings {
    system: Option<String>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    extract: Option<Extract>,
}

pub(crate) fn parse(text: &str, origin: &str, limits: SuiteLimits) -> Result<Suite, SuiteError> {
    let (doc, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The recovered tree is partial; validating it would add noise such as
        // "missing key" for keys that are there but after the syntax error.
        let positions = Positions::new(text);
        let diagnostics = syntax_errors
            .iter()
            .map(|e| {
                let (line, column) = positions.locate(e.span().map_or(0, |s| s.start));
                Diagnostic {
                    file: origin.to_owned(),
                    line,
                    column,
                    field: String::new(),
                    message: format!("invalid TOML: {}", e.message()),
                }
            })
            .collect();
        return Err(SuiteError::new(diagnostics));
    }
    let mut r = Reader::new(text, origin, limits);
    let suite = read_suite(&mut r, doc.get_ref(), doc.span());
    r.finish(suite)
}

fn read_suite(r: &mut Reader<'_>, root: &DeTable<'_>, span: Range<usize>) -> Option<Suite> {
    r.unknown_keys(root, ROOT_KEYS, "");
    let name = required(r, root, "name", "", &span).and_then(|v| {
        let name = r.string(v, "name")?;
        slug(r, v, "name", name)
    });
    let version = required(r, root, "version", "", &span).and_then(|v| {
        let version = r.string(v, "version")?;
        if version.trim().is_empty() {
            r.error(v.span(), "version", "must not be empty");
            return None;
        }
        Some(version)
    });
    // A bad description is recorded by r.string; the walk goes on either way.
    let description = root
        .get("description")
        .and_then(|v| r.string(v, "description"));
    let defaults = match root.get("defaults") {
        Some(v) => {
            let table = r.table(v, "defaults", "a table ([defaults])");
            table
                .map(|t| {
                    r.unknown_keys(t, SETTING_KEYS, "defaults");
                    read_settings(r, t, "defaults")
                })
                .unwrap_or_default()
        }
        None => Settings::default(),
    };
    let tasks = required(r, root, "tasks", "", &span).and_then(|v| read_tasks(r, v, &defaults));
    Some(Suite {
        name: name?,
        version: version?,
        description,
        tasks: tasks?,
    })
}

fn read_tasks(r: &mut Reader<'_>, v: &Value<'_>, defaults: &Settings) -> Option<Vec<Task>> {
    let items = r.array(v, "tasks", "an array of tables ([[tasks]])")?;
    if items.is_empty() {
        r.error(v.span(), "tasks", "a suite needs at least one task");
        return None;
    }
    if items.len() > r.limits.tasks {
        let message = format!(
            "{} tasks, over the limit max_suite_tasks = {}",
            items.len(),
            r.limits.tasks
        );
        r.error(v.span(), "tasks", message);
        return None;
    }
    let mut tasks = Vec::new();
    // Ids are checked for uniqueness from the raw tables, not the read tasks, so a
    // duplicate is reported even when the first task with that id has other errors.
    let mut seen: HashMap<String, Range<usize>> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        if let Some(id) = item.get_ref().as_table().and_then(|t| t.get("id"))
            && let Some(name) = id.get_ref().as_str().filter(|s| is_slug(s))
        {
            if let Some(first) = seen.get(name) {
                let (line, column) = r.locate(first.start);
                let message = format!(
                    "duplicate task id `{name}` (first used at {line}:{column}; ids must be unique)"
                );
                r.error(id.span(), &format!("tasks[{name}].id"), message);
            } else {
                seen.insert(name.to_owned(), id.span());
            }
        }
        if let Some(task) = read_task(r, index, item, defaults) {
            tasks.push(task);
        }
    }
    (tasks.len() == items.len()).then_some(tasks)
}

/// One `[[tasks]]` entry with defaults applied, or `None` after recording why not.
fn read_task(r: &mut Reader<'_>, index: usize, v: &Value<'_>, defaults: &Settings) -> Option<Task> {
    let table = r.table(v, &format!("tasks[{index}]"), "a table ([[tasks]])")?;
    let before = r.error_count();
    let span = v.span();
    // Name the task by its id in every diagnostic once the id is known to be good:
    // "tasks[parse-json].pass[1]" is what an author searches for, not an index.
    let id = table
        .get("id")
        .and_then(|v| v.get_ref().as_str())
        .filter(|s| is_slug(s))
        .map(str::to_owned);
    let label = match &id {
        Some(id) => format!("tasks[{id}]"),
        None => format!("tasks[{index}]"),
    };
    r.unknown_keys(table, TASK_KEYS, &label);
    let id_field = join(&label, "id");
    let id = required(r, table, "id", &label, &span).and_then(|v| {
        let id = r.string(v, &id_field)?;
        slug(r, v, &id_field, id)
    });
    let mut text = |key: &str| {
        let field = join(&label, key);
        required(r, table, key, &label, &span).and_then(|v| {
            let s = r.string(v, &field)?;
            if s.trim().is_empty() {
                r.error(v.span(), &field, "must not be empty");
                return None;
            }
            Some(s)
        })
    };
    let category = text("category");
    let prompt = text("prompt");
    let own = read_settings(r, table, &label);
    let grading = read_grading(r, table, &label, &span);
    let examples = read_examples(r, table, &label);
    let task = Task {
        id: id?,
        category: category?,
        prompt: prompt?,
        system: own
            .system
            .or_else(|| defaults.system.clone())
            .unwrap_or_default(),
        max_tokens: own
            .max_tokens
            .or(defaults.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: own
            .temperature
            .or(defaults.temperature)
            .unwrap_or(DEFAULT_TEMPERATURE),
        extract: own.extract.or(defaults.extract).unwrap_or_default(),
        grading: grading?,
        examples: examples?,
    };
    (r.error_count() == before).then_some(task)
}

/// `system`, `max_tokens`, `temperature`, `extract` from `[defaults]` or a task.
/// Other keys are the caller's to check: a task's table allows more than these.
fn read_settings(r: &mut Reader<'_>, table: &DeTable<'_>, prefix: &str) -> Settings {
    let mut s = Settings::default();
    if let Some(v) = table.get("system") {
        s.system = r.string(v, &join(prefix, "system"));
    }
    if let Some(v) = table.get("max_tokens") {
        let field = join(prefix, "max_tokens");
        s.max_tokens = r.integer(v, &field).and_then(|n| match u32::try_from(n) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                r.error(
                    v.span(),
                    &field,
                    format!("must be between 1 and {}, found {n}", u32::MAX),
                );
                None
            }
        });
    }
    if let Some(v) = table.get("temperature") {
        let field = join(prefix, "temperature");
        s.temperature = r.number(v, &field).and_then(|t| {
            if t.is_finite() && t >= 0.0 && t <= f64::from(f32::MAX) {
                Some(t as f32)
            } else {
                r.error(
                    v.span(),
                    &field,
                    format!("must be a finite number >= 0, found {t}"),
                );
                None
            }
        });
    }
    if let Some(v) = table.get("extract") {
        let field = join(prefix, "extract");
        s.extract = r
            .string(v, &field)
            .and_then(|e| match e.parse::<Extract>() {
                Ok(e) => Some(e),
                Err(err) => {
                    r.error(v.span(), &field, err.to_string());
                    None
                }
            });
    }
    s
}

/// Either `pass` (+ optional `partial`) or `checks` (+ optional thresholds).
fn read_grading(
    r: &mut Reader<'_>,
    table: &DeTable<'_>,
    label: &str,
    span: &Range<usize>,
) -> Option<Grading> {
    let share_key = ["checks", "pass_at", "partial_at"]
        .into_iter()
        .find(|k| table.contains_key(*k));
    let lists_key = ["pass", "partial"]
        .into_iter()
        .find(|k| table.contains_key(*k));
    if let (Some(share), Some(lists)) = (share_key, lists_key) {
        let at = key_span(table, share).unwrap_or_else(|| span.clone());
        r.error(
            at,
            &join(label, share),
            format!("`{share}` cannot be combined with `{lists}`: a task grades either with pass/partial or with checks/pass_at/partial_at"),
        );
        return None;
    }
    if share_key.is_some() {
        return read_share(r, table, label, span);
    }
    let Some(pass) = table.get("pass") else {
        r.error(
            span.clone(),
            &join(label, "pass"),
            "missing required key `pass` (or `checks` for share-of-checks grading)",
        );
        return None;
    };
    let pass = read_check_list(r, pass, &join(label, "pass"));
    let partial = table
        .get("partial")
        .map(|v| read_check_list(r, v, &join(label, "partial")));
    let partial = match partial {
        Some(None) => return None,
        Some(Some(p)) => Some(p),
        None => None,
    };
    Some(Grading::AllHold {
        pass: pass?,
        partial,
    })
}

fn read_share(
    r: &mut Reader<'_>,
    table: &DeTable<'_>,
    label: &str,
    span: &Range<usize>,
) -> Option<Grading> {
    let checks = required(r, table, "checks", label, span)
        .and_then(|v| read_check_list(r, v, &join(label, "checks")));
    let mut threshold = |key: &str, default: f64| -> Option<(f64, Option<Range<usize>>)> {
        let Some(v) = table.get(key) else {
            return Some((default, None));
        };
        let field = join(label, key);
        let t = r.number(v, &field)?;
        if !(0.0..=1.0).contains(&t) {
            r.error(
                v.span(),
                &field,
                format!("must be between 0 and 1, found {t}"),
            );
            return None;
        }
        Some((t, Some(v.span())))
    };
    let pass_at = threshold("pass_at", Grading::DEFAULT_PASS_AT);
    let partial_at = threshold("partial_at", Grading::DEFAULT_PARTIAL_AT);
    let ((pass_at, pass_span), (partial_at, partial_span)) = (pass_at?, partial_at?);
    if partial_at > pass_at {
        // Point at whichever of the two the author actually wrote.
        let (at, key) = match (partial_span, pass_span) {
            (Some(s), _) => (s, "partial_at"),
            (None, Some(s)) => (s, "pass_at"),
            (None, None) => (span.clone(), "partial_at"),
        };
        r.error(
            at,
            &join(label, key),
            format!("partial_at ({partial_at}) must not be greater than pass_at ({pass_at})"),
        );
        return None;
    }
    Some(Grading::Share {
        checks: checks?,
        pass_at,
        partial_at,
    })
}

fn read_examples(r: &mut Reader<'_>, table: &DeTable<'_>, label: &str) -> Option<Vec<Example>> {
    let Some(v) = table.get("examples") else {
        return Some(Vec::new());
    };
    let field = join(label, "examples");
    let items = r.array(v, &field, "an array of tables ([[tasks.examples]])")?;
    let mut examples = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let Some(t) = r.table(item, &field, "a table with `answer` and `grade`") else {
            continue;
        };
        r.unknown_keys(t, EXAMPLE_KEYS, &field);
        let span = item.span();
        let answer = required(r, t, "answer", &field, &span)
            .and_then(|v| r.string(v, &join(&field, "answer")));
        let grade = required(r, t, "grade", &field, &span).and_then(|v| {
            let grade_field = join(&field, "grade");
            let text = r.string(v, &grade_field)?;
            match text.parse::<Verdict>() {
                Ok(g) => Some(g),
                Err(e) => {
                    r.error(v.span(), &grade_field, e.to_string());
                    None
                }
            }
        });
        if let (Some(answer), Some(grade)) = (answer, grade) {
            examples.push(Example { answer, grade });
        }
    }
    (examples.len() == items.len()).then_some(examples)
}

/// `table[key]`, or a "missing required key" error at the table's span.
fn required<'v, 'i>(
    r: &mut Reader<'_>,
    table: &'v DeTable<'i>,
    key: &str,
    prefix: &str,
    span: &Range<usize>,
) -> Option<&'v Value<'i>> {
    let v = table.get(key);
    if v.is_none() {
        r.error(
            span.clone(),
            &join(prefix, key),
            format!("missing required key `{key}`"),
        );
    }
    v
}

fn slug(r: &mut Reader<'_>, v: &Value<'_>, field: &str, s: String) -> Option<String> {
    if is_slug(&s) {
        Some(s)
    } else {
        r.error(
            v.span(),
            field,
            format!("`{s}` must be lowercase letters, digits and '-' only ([a-z0-9-]+)"),
        );
        None
    }
}
