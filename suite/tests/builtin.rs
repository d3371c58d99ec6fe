//! The built-in suites: they parse, have the promised shape, and every example
//! answer gets exactly the grade its author wrote down.

use benchfarm_suite::{
    Grading, Suite, Verdict, builtin_names, builtin_source, check_examples, resolve,
};
use std::collections::HashSet;

fn agent_coding() -> Suite {
    let text = builtin_source("agent-coding").expect("agent-coding is built in");
    match Suite::parse(text, "builtin:agent-coding") {
        Ok(s) => s,
        Err(e) => panic!("built-in suite does not load:\n{e}"),
    }
}

#[test]
fn every_builtin_parses_and_every_example_agrees() {
    for name in builtin_names() {
        let suite = Suite::builtin(name).unwrap_or_else(|| panic!("{name} does not load"));
        assert_eq!(&suite.name, name);
        let report = check_examples(&suite);
        assert!(report.total > 0);
        assert!(report.disagreements.is_empty(), "{name}:\n{report}");
        assert_eq!(report.agree, report.total);
    }
}

#[test]
fn agent_coding_has_ten_tasks_in_ten_categories() {
    let suite = agent_coding();
    assert_eq!(suite.version, "1");
    assert_eq!(suite.tasks.len(), 10);
    let categories: HashSet<_> = suite.tasks.iter().map(|t| t.category.as_str()).collect();
    assert_eq!(categories.len(), 10);
}

#[test]
fn agent_coding_examples_cover_every_verdict_per_task() {
    for task in agent_coding().tasks {
        assert!(task.examples.len() >= 4, "{}: too few examples", task.id);
        for v in Verdict::ALL {
            assert!(
                task.examples.iter().any(|e| e.grade == v),
                "{}: no {v} example",
                task.id
            );
        }
    }
}

#[test]
fn agent_coding_uses_both_grading_forms_and_answer_regexes() {
    let suite = agent_coding();
    let share = suite
        .tasks
        .iter()
        .filter(|t| matches!(t.grading, Grading::Share { .. }));
    let lists = suite
        .tasks
        .iter()
        .filter(|t| matches!(t.grading, Grading::AllHold { .. }));
    assert!(share.count() >= 1);
    assert!(lists.count() >= 1);
    let regex_task = suite.task("write-regex").unwrap();
    let Grading::AllHold { pass, .. } = &regex_task.grading else {
        panic!("write-regex grading changed");
    };
    let shown: Vec<String> = pass.iter().map(ToString::to_string).collect();
    assert!(shown.iter().any(|c| c.starts_with("regex_accepts")));
    assert!(shown.iter().any(|c| c.starts_with("regex_rejects")));
}

#[test]
fn agent_coding_defaults_are_modest() {
    for task in agent_coding().tasks {
        assert!(task.max_tokens <= 512, "{}", task.id);
        assert_eq!(task.temperature, 0.0, "{}", task.id);
        assert!(!task.system.is_empty());
    }
}

#[test]
fn resolve_returns_builtin_text_and_rejects_unknown_names() {
    let (suite, text) = resolve("agent-coding").unwrap();
    assert_eq!(text, builtin_source("agent-coding").unwrap());
    assert_eq!(suite, agent_coding());
    // Workers re-parse the shipped text and must get the same suite.
    assert_eq!(Suite::parse(&text, "shipped").unwrap(), suite);
    assert_eq!(resolve("builtin:agent-coding").unwrap().0, suite);

    let err = resolve("no-such-suite").unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!(d.file, "no-such-suite");
    assert!(d.message.contains("agent-coding"), "{}", d.message);
    assert!(resolve("builtin:nope").is_err());
    assert!(Suite::builtin("nope").is_none());
    assert!(builtin_source("nope").is_none());
}

#[test]
fn resolve_and_load_read_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    let text = "name = \"mine\"\nversion = \"2\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ contains = \"x\" }]\n";
    std::fs::write(&path, text).unwrap();
    let (suite, source) = resolve(path.to_str().unwrap()).unwrap();
    assert_eq!(source, text);
    assert_eq!(suite.name, "mine");
    assert_eq!(Suite::load(&path).unwrap(), suite);

    let missing = dir.path().join("missing.toml");
    let err = Suite::load(&missing).unwrap_err();
    assert_eq!(err.diagnostics()[0].file, missing.display().to_string());
    assert!(err.to_string().starts_with(&missing.display().to_string()));

    std::fs::write(&path, "name = \"BAD\"\n").unwrap();
    let err = resolve(path.to_str().unwrap()).unwrap_err();
    assert!(err.to_string().contains("mine.toml:1:8"), "{err}");
}

/// The sample output shown in docs/suite-format.md ("Testing a suite").
#[test]
fn documented_grade_output_is_what_grade_prints() {
    let suite = agent_coding();
    let grade = suite
        .task("parse-json")
        .expect("parse-json exists")
        .grade("jq '.services[1].port' config.json");
    let shown = grade.to_string();
    let head: Vec<&str> = shown.lines().take(6).collect();
    assert_eq!(
        head,
        [
            "partial (score 0.5)",
            "  [held] pass: contains \"config.json\"",
            r"  [held] pass: any [regex '\bjq\b', regex 'json\.loads?\(', regex 'JSON\.parse']",
            r#"  [    ] pass: regex '["\x27]db\\?["\x27]'"#,
            "  [held] pass: icontains \"port\"",
            "  [held] partial: contains \"config.json\"",
        ]
    );
}
