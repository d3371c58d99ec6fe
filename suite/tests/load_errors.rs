//! Bad suites: every problem is reported, each at the right file, line, column and
//! field, and nothing is silently ignored.

use benchfarm_suite::{Diagnostic, Suite, SuiteError};

fn errors(text: &str) -> SuiteError {
    match Suite::parse(text, "bad.toml") {
        Ok(_) => panic!("suite loaded but should not:\n{text}"),
        Err(e) => e,
    }
}

/// (line, column, field) of each diagnostic, in order.
fn places(e: &SuiteError) -> Vec<(usize, usize, String)> {
    e.diagnostics()
        .iter()
        .map(|d| (d.line, d.column, d.field.clone()))
        .collect()
}

fn only(e: &SuiteError) -> &Diagnostic {
    assert_eq!(e.diagnostics().len(), 1, "{e}");
    &e.diagnostics()[0]
}

const HEAD: &str = "name = \"s\"\nversion = \"1\"\n";
const TASK: &str = "[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\n";

/// A suite whose first task's `pass` line (line 7) is `pass_line`.
fn with_pass(pass_line: &str) -> String {
    format!("{HEAD}{TASK}{pass_line}\n")
}

#[test]
fn unknown_keys_everywhere_are_errors_with_positions() {
    let text = format!(
        "{HEAD}colour = \"red\"\n[defaults]\nmax_token = 5\n{TASK}pass = [{{ contains = \"x\" }}]\npromt = \"typo\"\n\
         [[tasks.examples]]\nanswer = \"x\"\ngrade = \"pass\"\nnote = \"n\"\n"
    );
    let e = errors(&text);
    assert_eq!(
        places(&e),
        [
            (3, 1, "colour".to_owned()),
            (5, 1, "defaults.max_token".to_owned()),
            (11, 1, "tasks[t].promt".to_owned()),
            (15, 1, "tasks[t].examples[0].note".to_owned()),
        ]
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with("bad.toml:3:1: field `colour`: unknown key `colour`"),
        "{shown}"
    );
    assert_eq!(shown.lines().count(), 4);
}

#[test]
fn unknown_check_kind_points_at_the_key() {
    let e = errors(&with_pass(
        r#"pass = [{ contains = "x" }, { contain = "y" }]"#,
    ));
    let d = only(&e);
    assert_eq!((d.line, d.column), (7, 31));
    assert_eq!(d.field, "tasks[t].pass[1].contain");
    assert!(d.message.contains("unknown key `contain`"), "{}", d.message);
}

#[test]
fn check_shape_errors() {
    let cases = [
        (r#"pass = ["x"]"#, "tasks[t].pass[0]", "expected a check"),
        ("pass = [{}]", "tasks[t].pass[0]", "empty check"),
        (
            r#"pass = [{ contains = "x", regex = "y" }]"#,
            "tasks[t].pass[0]",
            "exactly one key",
        ),
        (
            r#"pass = [{ json_pointer = "/a" }]"#,
            "tasks[t].pass[0]",
            "needs `json_equals`",
        ),
        (
            "pass = [{ of = [{ json = true }] }]",
            "tasks[t].pass[0]",
            "needs `at_least`",
        ),
        (
            "pass = [{ json = false }]",
            "tasks[t].pass[0].json",
            "not a check",
        ),
        (
            r#"pass = [{ json = "yes" }]"#,
            "tasks[t].pass[0].json",
            "expected `true`",
        ),
        (
            r#"pass = [{ contains = "" }]"#,
            "tasks[t].pass[0].contains",
            "must not be empty",
        ),
        (
            "pass = [{ contains = 3 }]",
            "tasks[t].pass[0].contains",
            "expected a string, found integer",
        ),
        (
            "pass = [{ regex_accepts = [] }]",
            "tasks[t].pass[0].regex_accepts",
            "at least one string",
        ),
        (
            "pass = [{ any = [] }]",
            "tasks[t].pass[0].any",
            "at least one check",
        ),
        (
            "pass = [{ not = [] }]",
            "tasks[t].pass[0].not",
            "expected a check",
        ),
        ("pass = []", "tasks[t].pass", "at least one check"),
        (
            r#"pass = { contains = "x" }"#,
            "tasks[t].pass",
            "expected an array of checks",
        ),
    ];
    for (line, field, message) in cases {
        let e = errors(&with_pass(line));
        let d = only(&e);
        assert_eq!(d.line, 7, "{line}");
        assert_eq!(d.field, field, "{line}");
        assert!(d.message.contains(message), "{line}: {}", d.message);
    }
}

#[test]
fn bad_regex_names_task_pattern_and_position() {
    let e = errors(&with_pass(r#"pass = [{ any = [{ regex = 'a(b' }] }]"#));
    let d = only(&e);
    assert_eq!((d.line, d.column), (7, 28));
    assert_eq!(d.field, "tasks[t].pass[0].any[0].regex");
    assert!(
        d.message.contains("`a(b`") && d.message.contains("unclosed group"),
        "{}",
        d.message
    );
    assert_eq!(e.to_string().lines().count(), 1);
}

#[test]
fn at_least_bounds_are_checked() {
    for n in [0, 3, -1] {
        let e = errors(&with_pass(&format!(
            "pass = [{{ at_least = {n}, of = [{{ json = true }}, {{ contains = \"x\" }}] }}]"
        )));
        let d = only(&e);
        assert_eq!(d.field, "tasks[t].pass[0].at_least");
        assert!(
            d.message.contains("between 1 and the 2 checks"),
            "{}",
            d.message
        );
    }
}

#[test]
fn json_pointer_syntax_is_checked() {
    for bad in ["a/b", "/a~2", "/a~"] {
        let e = errors(&with_pass(&format!(
            "pass = [{{ json_pointer = \"{bad}\", json_equals = 1 }}]"
        )));
        assert_eq!(only(&e).field, "tasks[t].pass[0].json_pointer", "{bad}");
    }
    let e = errors(&with_pass(
        "pass = [{ json_pointer = \"/a\", json_equals = nan }]",
    ));
    assert!(only(&e).message.contains("no JSON form"));
}

#[test]
fn all_semantic_errors_are_collected() {
    let text = "name = \"Bad Name\"\nversion = \"\"\n[defaults]\nmax_tokens = 0\ntemperature = -1.0\nextract = \"html\"\n\
        [[tasks]]\nid = \"A\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ regex = '(' }]\n\
        [[tasks]]\nid = \"b\"\ncategory = \"\"\nprompt = \"p\"\nchecks = [{ contains = \"x\" }]\npass_at = 0.4\npartial_at = 0.6\n\
        [[tasks]]\nid = \"b\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contains = \"x\" }]\n\
        [[tasks]]\nid = \"d\"\ncategory = \"c\"\nprompt = \"p\"\ncheck = [{ contains = \"x\" }]\n\
        [[tasks.examples]]\nanswer = \"a\"\ngrade = \"ok\"\n";
    let e = errors(text);
    let got = places(&e);
    let want: Vec<(usize, usize, &str)> = vec![
        (1, 8, "name"),
        (2, 11, "version"),
        (4, 14, "defaults.max_tokens"),
        (5, 15, "defaults.temperature"),
        (6, 11, "defaults.extract"),
        (8, 6, "tasks[0].id"),
        (11, 19, "tasks[0].pass[0].regex"),
        (14, 12, "tasks[b].category"),
        (18, 14, "tasks[b].partial_at"),
        (20, 6, "tasks[b].id"),
        (24, 1, "tasks[d].pass"),
        (28, 1, "tasks[d].check"),
        (31, 9, "tasks[d].examples[0].grade"),
    ];
    let want: Vec<_> = want
        .into_iter()
        .map(|(l, c, f)| (l, c, f.to_owned()))
        .collect();
    assert_eq!(got, want, "\n{e}");
    assert!(
        e.to_string()
            .contains("duplicate task id `b` (first used at 13:6"),
        "{e}"
    );
}

#[test]
fn missing_required_keys() {
    let e = errors("description = \"x\"\n");
    assert_eq!(
        places(&e),
        [
            (1, 1, "name".into()),
            (1, 1, "version".into()),
            (1, 1, "tasks".into())
        ]
    );
    let e = errors(&format!("{HEAD}[[tasks]]\nid = \"t\"\n"));
    let fields: Vec<_> = e.diagnostics().iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        ["tasks[t].category", "tasks[t].prompt", "tasks[t].pass"]
    );
    assert!(e.diagnostics().iter().all(|d| (d.line, d.column) == (3, 1)));
    let e = errors(&format!("{HEAD}tasks = []\n"));
    assert!(only(&e).message.contains("at least one task"));
}

#[test]
fn grading_forms_cannot_mix() {
    let e = errors(&format!(
        "{HEAD}{TASK}pass = [{{ json = true }}]\npass_at = 0.5\n"
    ));
    let d = only(&e);
    assert_eq!(
        (d.line, d.column, d.field.as_str()),
        (8, 1, "tasks[t].pass_at")
    );
    let e = errors(&format!("{HEAD}{TASK}partial = [{{ json = true }}]\n"));
    assert!(only(&e).message.contains("missing required key `pass`"));
    let e = errors(&format!(
        "{HEAD}{TASK}checks = [{{ json = true }}]\npass_at = 1.5\n"
    ));
    assert!(only(&e).message.contains("between 0 and 1"));
    // partial_at left at its default (0.5) but pass_at below it: point at pass_at.
    let e = errors(&format!(
        "{HEAD}{TASK}checks = [{{ json = true }}]\npass_at = 0.25\n"
    ));
    assert_eq!(only(&e).field, "tasks[t].pass_at");
}

#[test]
fn toml_syntax_errors_have_positions() {
    let e = errors("name = \"s\"\nversion = \n");
    let d = &e.diagnostics()[0];
    assert_eq!((d.line, d.field.as_str()), (2, ""));
    assert!(d.message.starts_with("invalid TOML"), "{}", d.message);
    assert!(e.to_string().starts_with("bad.toml:2:"), "{e}");
    // Duplicate keys are syntax errors in TOML.
    let e = errors("name = \"s\"\nname = \"t\"\n");
    assert_eq!(e.diagnostics()[0].line, 2);
}

#[test]
fn type_errors_name_what_was_found() {
    let e = errors(&format!(
        "name = \"s\"\nversion = 1\n{TASK}pass = [{{ json = true }}]\n"
    ));
    let d = only(&e);
    assert_eq!((d.line, d.column), (2, 11));
    assert_eq!(d.message, "expected a string, found integer");
    let e = errors(&format!("{HEAD}[tasks]\nid = \"t\"\n"));
    assert!(only(&e).message.contains("array of tables"));
}
