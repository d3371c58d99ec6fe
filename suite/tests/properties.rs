//! Properties over arbitrary answers: grading never panics, scores are always one
//! of 0, 0.5, 1 and match the verdict, and extraction is stable where it should be.

use benchfarm_suite::{Extract, Suite, Verdict, extract_code};
use proptest::prelude::*;
use std::sync::OnceLock;

/// Answers made of the pieces that trip extraction and answer-regex compilation.
fn tricky_answer() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("```".to_owned()),
        Just("````".to_owned()),
        Just("`".to_owned()),
        Just("``".to_owned()),
        Just("```bash\n".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just(" ".to_owned()),
        Just("/".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("(?=".to_owned()),
        Just("\\".to_owned()),
        Just("{\"a\": [1, ".to_owned()),
        Just("}".to_owned()),
        Just("é".to_owned()),
        "[a-z0-9.*+?|^$]{0,6}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// Parsed once: compiling every regex of a suite per generated case would make
/// these properties slow for no added coverage.
fn agent_coding() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(|| Suite::builtin("agent-coding").expect("agent-coding loads"))
}

/// A suite exercising every check kind and both grading forms.
fn every_kind() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(every_kind_uncached)
}

fn every_kind_uncached() -> Suite {
    let text = r#"
name = "every-kind"
version = "1"
[[tasks]]
id = "lists"
category = "c"
prompt = "p"
pass = [
  { contains = "a" }, { icontains = "B" }, { regex = '(?m)^x' }, { equals = "a b" },
  { json = true }, { json_pointer = "/a/0", json_equals = 1 },
]
partial = [
  { regex_accepts = ["ab", "a"] }, { regex_rejects = ["", "zz"] },
  { not = { any = [{ json = true }, { all = [{ contains = "(" }]}] } },
  { at_least = 1, of = [{ contains = "`" }, { equals = "" }] },
]
[[tasks]]
id = "share"
category = "c"
prompt = "p"
extract = "answer"
checks = [{ regex_accepts = ["x"] }, { json = true }, { contains = "```" }]
pass_at = 0.6
partial_at = 0.3
"#;
    Suite::parse(text, "every-kind").unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn grading_never_panics_and_scores_match_verdicts(answer in tricky_answer()) {
        for suite in [agent_coding(), every_kind()] {
            for task in &suite.tasks {
                let g = task.grade(&answer);
                prop_assert!([0.0, 0.5, 1.0].contains(&g.score));
                prop_assert_eq!(g.score, g.verdict.score());
                prop_assert_eq!(g.extracted.clone(), task.extract.apply(&answer));
                // Pass exactly when the checks say so (all-hold form in every_kind's
                // first task): the vector of outcomes and the verdict agree.
                if task.id == "lists" {
                    let pass_held = g.checks.iter().filter(|c| c.group == "pass").all(|c| c.held);
                    prop_assert_eq!(pass_held, g.verdict == Verdict::Pass);
                }
            }
        }
    }

    #[test]
    fn grading_arbitrary_unicode_never_panics(answer in any::<String>()) {
        for task in &every_kind().tasks {
            let g = task.grade(&answer);
            prop_assert_eq!(g.score, g.verdict.score());
        }
    }

    #[test]
    fn answer_extraction_is_idempotent(answer in tricky_answer()) {
        let once = Extract::Answer.apply(&answer);
        prop_assert_eq!(Extract::Answer.apply(&once), once);
    }

    #[test]
    fn code_extraction_is_idempotent_once_no_fence_is_left(answer in tricky_answer()) {
        let once = extract_code(&answer);
        prop_assume!(!once.contains("```"));
        prop_assert_eq!(extract_code(once), once);
    }

    #[test]
    fn code_in_a_fence_comes_back_out(
        body in "[a-zA-Z0-9 ._|'\"$-]{1,40}( *\n[a-zA-Z0-9 ._|'\"$-]{1,40}){0,3}",
        tag in prop_oneof![Just(""), Just("bash"), Just("python"), Just("sh")],
        before in prop_oneof![Just(""), Just("Here is the command:\n\n"), Just("Sure! ")],
        closed in any::<bool>(),
    ) {
        let close = if closed { "\n```\nHope this helps." } else { "" };
        let answer = format!("{before}```{tag}\n{body}{close}");
        prop_assert_eq!(extract_code(&answer), body.trim());
        let inline = format!("`{}`", body.trim());
        // A blank body would make "``", which is not inline code around nothing but an empty
        // double-backtick opener: extraction leaves it alone.
        if !body.contains('\n') && !body.trim().is_empty() {
            prop_assert_eq!(extract_code(&inline), body.trim());
        }
    }

    #[test]
    fn verdict_names_round_trip(v in prop_oneof![Just(Verdict::Pass), Just(Verdict::Partial), Just(Verdict::Fail)]) {
        prop_assert_eq!(v.as_str().parse::<Verdict>().ok(), Some(v));
        let json = serde_json::to_string(&v).unwrap();
        prop_assert_eq!(serde_json::from_str::<Verdict>(&json).ok(), Some(v));
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Suite::parse(&text, "fuzz");
    }

}

proptest! {
    // Each case re-parses (and re-compiles every regex of) the whole built-in suite.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn parsing_mangled_suites_never_panics(cut in 0usize..4000, insert in "[\\[\\]{}=\"',\n a-z]{0,4}") {
        // Truncate or splice the real suite: errors, never panics, and every
        // diagnostic has a real position.
        let src = benchfarm_suite::builtin_source("agent-coding").unwrap();
        let mut at = cut.min(src.len());
        while !src.is_char_boundary(at) { at -= 1; }
        let text = format!("{}{insert}{}", &src[..at], &src[at..]);
        if let Err(e) = Suite::parse(&text, "fuzz") {
            prop_assert!(!e.diagnostics().is_empty());
            for d in e.diagnostics() {
                prop_assert!(d.line >= 1 && d.column >= 1, "{}", d);
                prop_assert!(d.line <= text.lines().count() + 1, "{}", d);
            }
        }
    }
}
