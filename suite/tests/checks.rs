//! Every check kind, written in TOML as an author would, both holding and not,
//! plus nesting, extraction through a task, and the two grading forms.

use benchfarm_suite::{Grading, Suite, Task, Verdict};

/// A one-task suite whose `pass` list is exactly `check`, graded on the whole
/// answer (`extract = "answer"`) so only the check itself is under test.
fn task_with(check: &str) -> Task {
    let text = format!(
        "name = \"t\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\nextract = \"answer\"\npass = [ {check} ]\n"
    );
    match Suite::parse(&text, "test.toml") {
        Ok(mut s) => s.tasks.remove(0),
        Err(e) => panic!("{check} does not load:\n{e}"),
    }
}

fn holds(check: &str, text: &str) -> bool {
    let grade = task_with(check).grade(text);
    assert_eq!(grade.checks.len(), 1);
    assert_eq!(grade.checks[0].held, grade.verdict == Verdict::Pass);
    grade.checks[0].held
}

#[test]
fn contains_is_case_sensitive() {
    assert!(holds(r#"{ contains = "jq" }"#, "use jq ."));
    assert!(!holds(r#"{ contains = "jq" }"#, "use JQ ."));
}

#[test]
fn icontains_ignores_case() {
    assert!(holds(r#"{ icontains = "Port" }"#, "the PORT is"));
    assert!(holds(r#"{ icontains = "ÉTÉ" }"#, "un été"));
    assert!(!holds(r#"{ icontains = "port" }"#, "host"));
}

#[test]
fn regex_matches_anywhere_with_crate_defaults() {
    assert!(holds(r#"{ regex = 'grep\s+-r' }"#, "sudo grep  -rn x"));
    assert!(!holds(r#"{ regex = 'grep\s+-r' }"#, "grep -n x"));
    // ^ and $ are text ends unless the pattern turns on (?m).
    assert!(!holds(r#"{ regex = '^b$' }"#, "a\nb\nc"));
    assert!(holds(r#"{ regex = '(?m)^b$' }"#, "a\nb\nc"));
}

#[test]
fn equals_trims_and_folds_whitespace() {
    assert!(holds(r#"{ equals = "ls  -la" }"#, "  ls\t-la\n"));
    assert!(!holds(r#"{ equals = "ls -la" }"#, "ls -l"));
    assert!(!holds(r#"{ equals = "ls -la" }"#, "ls -la /"));
}

#[test]
fn json_parses() {
    assert!(holds("{ json = true }", r#"{"a": [1, 2]}"#));
    assert!(holds("{ json = true }", "42"));
    assert!(!holds("{ json = true }", "{a: 1}"));
    assert!(!holds("{ json = true }", ""));
}

#[test]
fn json_pointer_compares_as_json() {
    let c = r#"{ json_pointer = "/db/ports/0", json_equals = 5432 }"#;
    assert!(holds(c, r#"{"db": {"ports": [5432, 5433]}}"#));
    assert!(holds(c, r#"{"db": {"ports": [5432.0]}}"#));
    assert!(!holds(c, r#"{"db": {"ports": ["5432"]}}"#));
    assert!(!holds(c, r#"{"db": {}}"#));
    assert!(!holds(c, "not json"));
    let table = r#"{ json_pointer = "", json_equals = { a = [true, "x"], "b~c" = 1.5 } }"#;
    assert!(holds(table, r#"{"b~c": 1.5, "a": [true, "x"]}"#));
    assert!(!holds(
        table,
        r#"{"b~c": 1.5, "a": [true, "x"], "extra": null}"#
    ));
    // RFC 6901 escapes: ~1 is '/', ~0 is '~'.
    assert!(holds(
        r#"{ json_pointer = "/a~1b/c~0d", json_equals = "v" }"#,
        r#"{"a/b": {"c~d": "v"}}"#
    ));
}

#[test]
fn regex_accepts_and_rejects_compile_the_answer() {
    let accepts = r#"{ regex_accepts = ["abc", "abbc"] }"#;
    assert!(holds(accepts, "ab+c"));
    assert!(holds(accepts, "/^ab+c$/"));
    assert!(!holds(accepts, "ab?c"), "must match every string");
    assert!(!holds(accepts, "b+"), "must match the whole string");
    assert!(!holds(accepts, "ab(+c"), "not a regex");
    let rejects = r#"{ regex_rejects = ["ac", "xabc"] }"#;
    assert!(holds(rejects, "ab+c"));
    assert!(!holds(rejects, "ab*c"));
    assert!(!holds(rejects, "a(b"), "not a regex fails rejects too");
    // PCRE-style features the regex crate lacks.
    assert!(holds(r#"{ regex_accepts = ["foobar"] }"#, r"(?=foo)\w+"));
    assert!(holds(r#"{ regex_rejects = ["abab"] }"#, r"(ab)\1\1"));
}

#[test]
fn not_any_all_at_least_nest() {
    assert!(holds(r#"{ not = { contains = "rm" } }"#, "ls"));
    assert!(!holds(r#"{ not = { contains = "rm" } }"#, "rm -rf /"));
    let any = r#"{ any = [{ contains = "jq" }, { regex = 'json\.load' }] }"#;
    assert!(holds(any, "python -c 'json.load(f)'"));
    assert!(!holds(any, "grep"));
    let all = r#"{ all = [{ contains = "a" }, { not = { contains = "b" } }] }"#;
    assert!(holds(all, "a"));
    assert!(!holds(all, "ab"));
    let at_least = r#"{ at_least = 2, of = [{ contains = "a" }, { contains = "b" }, { any = [{ contains = "c" }, { contains = "d" }] }] }"#;
    assert!(holds(at_least, "ad"));
    assert!(holds(at_least, "abcd"));
    assert!(!holds(at_least, "d"));
    let deep = r#"{ not = { not = { all = [{ any = [{ json = true }] }] } } }"#;
    assert!(holds(deep, "[]"));
    assert!(!holds(deep, "["));
}

#[test]
fn outcomes_name_the_check_readably() {
    let grade = task_with(r#"{ not = { regex = '\bjq\b' } }"#).grade("jq");
    assert_eq!(grade.checks[0].check, r"not (regex '\bjq\b')");
    assert_eq!(grade.checks[0].group, "pass");
    assert!(!grade.checks[0].held);
}

fn suite(body: &str) -> Suite {
    let text = format!("name = \"t\"\nversion = \"1\"\n{body}");
    Suite::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

const BASE: &str = "[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\n";

#[test]
fn partial_list_grades_between_pass_and_fail() {
    let s = suite(&format!(
        "{BASE}pass = [{{ contains = \"a\" }}, {{ contains = \"b\" }}]\npartial = [{{ contains = \"a\" }}]\n"
    ));
    let t = &s.tasks[0];
    let verdicts: Vec<_> = ["ab", "a", "b"].map(|a| t.grade(a).verdict).to_vec();
    assert_eq!(verdicts, [Verdict::Pass, Verdict::Partial, Verdict::Fail]);
    let g = t.grade("a");
    assert_eq!(g.score, 0.5);
    let groups: Vec<_> = g.checks.iter().map(|c| c.group.as_str()).collect();
    assert_eq!(groups, ["pass", "pass", "partial"]);
}

#[test]
fn share_form_uses_default_thresholds() {
    let s = suite(&format!(
        "{BASE}checks = [{{ contains = \"a\" }}, {{ contains = \"b\" }}, {{ contains = \"c\" }}, {{ contains = \"d\" }}]\n"
    ));
    let t = &s.tasks[0];
    assert_eq!(
        t.grading,
        Grading::Share {
            checks: t_checks(t),
            pass_at: 0.75,
            partial_at: 0.5
        }
    );
    let v = |a: &str| t.grade(a).verdict;
    assert_eq!(v("abcd"), Verdict::Pass);
    assert_eq!(v("abc"), Verdict::Pass);
    assert_eq!(v("ab"), Verdict::Partial);
    assert_eq!(v("a"), Verdict::Fail);
    assert!(t.grade("ab").checks.iter().all(|c| c.group == "checks"));
}

fn t_checks(t: &Task) -> Vec<benchfarm_suite::Check> {
    match &t.grading {
        Grading::Share { checks, .. } => checks.clone(),
        Grading::AllHold { pass, .. } => pass.clone(),
    }
}

#[test]
fn share_form_with_explicit_thresholds() {
    let s = suite(&format!(
        "{BASE}checks = [{{ contains = \"a\" }}, {{ contains = \"b\" }}, {{ contains = \"c\" }}]\npass_at = 1.0\npartial_at = 0\n"
    ));
    let t = &s.tasks[0];
    assert_eq!(t.grade("abc").verdict, Verdict::Pass);
    assert_eq!(t.grade("ab").verdict, Verdict::Partial);
    // partial_at = 0: every answer earns at least partial.
    assert_eq!(t.grade("").verdict, Verdict::Partial);
}

#[test]
fn defaults_apply_and_tasks_override_them() {
    let s = suite(&format!(
        "[defaults]\nsystem = \"S\"\nmax_tokens = 100\ntemperature = 0.5\nextract = \"answer\"\n\
         {BASE}pass = [{{ contains = \"x\" }}]\n\
         [[tasks]]\nid = \"u\"\ncategory = \"c\"\nprompt = \"p\"\nsystem = \"T\"\nmax_tokens = 7\ntemperature = 1\nextract = \"code\"\npass = [{{ equals = \"x\" }}]\n"
    ));
    let (t, u) = (&s.tasks[0], &s.tasks[1]);
    assert_eq!(
        (t.system.as_str(), t.max_tokens, t.temperature),
        ("S", 100, 0.5)
    );
    assert_eq!(
        (u.system.as_str(), u.max_tokens, u.temperature),
        ("T", 7, 1.0)
    );
    // The extract setting decides what the checks see.
    assert_eq!(t.grade("```\nx\n```").extracted, "```\nx\n```");
    assert_eq!(u.grade("```\nx\n```").extracted, "x");
    assert_eq!(u.grade("Sure:\n```sh\nx\n```").verdict, Verdict::Pass);
}

#[test]
fn built_in_defaults_when_nothing_is_set() {
    let s = suite(&format!("{BASE}pass = [{{ contains = \"x\" }}]\n"));
    let t = &s.tasks[0];
    assert_eq!(t.system, "");
    assert_eq!(t.max_tokens, benchfarm_suite::DEFAULT_MAX_TOKENS);
    assert_eq!(t.temperature, 0.0);
    assert_eq!(t.extract, benchfarm_suite::Extract::Code);
    assert_eq!(s.description, None);
    assert!(s.task("t").is_some());
    assert!(s.task("nope").is_none());
}

#[test]
fn extraction_variants_through_a_code_task() {
    let s = suite(&format!("{BASE}pass = [{{ equals = \"ls -la\" }}]\n"));
    let t = &s.tasks[0];
    for answer in [
        "ls -la",
        "`ls -la`",
        "```\nls -la\n```",
        "```bash\nls -la\n```",
        "Here is the command:\n\n```sh\nls -la\n```\nIt lists files.",
        "```bash\nls -la",
        "```\n`ls -la`\n```",
    ] {
        let g = t.grade(answer);
        assert_eq!(g.verdict, Verdict::Pass, "{answer:?} -> {:?}", g.extracted);
    }
    assert_eq!(t.grade("Run `ls -la`").verdict, Verdict::Fail);
}
