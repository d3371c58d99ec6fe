//! Compiling a model's *answer* as a regex, for `regex_accepts` / `regex_rejects`.
//!
//! The answer is untrusted text, so this never fails loudly: anything that does not
//! compile is simply "no regex" and the check fails. `fancy-regex` is used (not
//! `regex`) because models answer write-a-regex tasks in PCRE style, with
//! look-around and backreferences that the `regex` crate rejects.

/// Answers in `/pattern/flags` form: flags that mean something to a whole-string
/// match are applied inline; `g` (global) and `u` (Unicode, always on) are ignored.
const DELIMITER_FLAGS: &str = "imsxgu";

/// An answer longer than this is not taken as a regex: answers arrive from any worker, and
/// compiling and running them is grading work on the coordinator (no real answer to a
/// write-a-regex task comes near it).
const MAX_ANSWER_REGEX_BYTES: usize = 4_096;
/// The compiled size of the answer's regex (fancy-regex's delegate to the `regex` crate).
const ANSWER_REGEX_COMPILED_BYTES: usize = 1 << 20;
/// Backtracking steps per match before fancy-regex gives up (its default is 1,000,000): a
/// catastrophic pattern then costs a bounded time per string, and counts as no match.
const ANSWER_REGEX_BACKTRACK_STEPS: usize = 200_000;

/// Compiles `pattern` under the bounds above.
fn bounded(pattern: &str) -> Option<fancy_regex::Regex> {
    fancy_regex::RegexBuilder::new(pattern)
        .delegate_size_limit(ANSWER_REGEX_COMPILED_BYTES)
        .backtrack_limit(ANSWER_REGEX_BACKTRACK_STEPS)
        .build()
        .ok()
}

/// A regex compiled from an answer, matching whole strings only.
#[derive(Debug)]
pub(crate) struct AnswerRegex {
    whole: fancy_regex::Regex,
}

impl AnswerRegex {
    /// Compiles `text` (already extracted), or `None` if it is not a regex.
    pub(crate) fn compile(text: &str) -> Option<AnswerRegex> {
        if text.len() > MAX_ANSWER_REGEX_BYTES {
            return None;
        }
        let (pattern, flags) = strip_delimiters(text.trim());
        let inline = if flags.is_empty() {
            String::new()
        } else {
            format!("(?{flags})")
        };
        // Compile the pattern alone first: wrapping an unbalanced answer such as
        // "a)|(b" in a group would otherwise turn it into a different, valid regex
        // that matches far more than the author of the answer wrote.
        bounded(&format!("{inline}{pattern}"))?;
        // \A and \z (not ^ and $) so that an (?m) in the answer cannot turn the
        // whole-string anchors into line anchors.
        let whole = bounded(&format!(r"\A(?:{inline}{pattern})\z"))?;
        Some(AnswerRegex { whole })
    }

    /// Whether the regex matches all of `s`. A match that errors (fancy-regex's
    /// backtracking limit on a catastrophic pattern) counts as "no match".
    pub(crate) fn matches_whole(&self, s: &str) -> Option<bool> {
        self.whole.is_match(s).ok()
    }
}

/// Splits "/pat/flags" into ("pat", "flags" less g and u); other text is returned
/// unchanged with no flags. A slash-started text whose tail after the last slash is
/// not all known flags (e.g. "/usr/bin") is taken as a plain pattern.
fn strip_delimiters(text: &str) -> (&str, String) {
    // No let-chains: the workspace's rust-version (1.85) predates them.
    let Some((pattern, flags)) = text.strip_prefix('/').and_then(|r| r.rsplit_once('/')) else {
        return (text, String::new());
    };
    if !flags.chars().all(|c| DELIMITER_FLAGS.contains(c)) {
        return (text, String::new());
    }
    let kept = flags.chars().filter(|c| !matches!(c, 'g' | 'u')).collect();
    (pattern, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(re: &str, s: &str) -> Option<bool> {
        AnswerRegex::compile(re)?.matches_whole(s)
    }

    #[test]
    fn matches_whole_strings_only() {
        assert_eq!(accepts(r"\d{3}", "123"), Some(true));
        assert_eq!(accepts(r"\d{3}", "1234"), Some(false));
        assert_eq!(accepts(r"a|ab", "ab"), Some(true));
        assert_eq!(accepts(r"(?m)^a$", "a\nb"), Some(false));
    }

    #[test]
    fn delimiters_and_flags() {
        assert_eq!(accepts(r"/^\d+$/", "42"), Some(true));
        assert_eq!(accepts(r"/abc/i", "ABC"), Some(true));
        assert_eq!(accepts(r"/abc/g", "ABC"), Some(false));
        assert_eq!(accepts("/usr/bin", "/usr/bin"), Some(true));
        assert_eq!(strip_delimiters("/a/gi"), ("a", "i".to_owned()));
        assert_eq!(strip_delimiters("/"), ("/", String::new()));
    }

    #[test]
    fn pcre_features_compile() {
        assert_eq!(accepts(r"(?<!x)foo", "foo"), Some(true));
        assert_eq!(accepts(r"(a)\1", "aa"), Some(true));
    }

    #[test]
    fn non_regexes_and_injections_do_not_compile() {
        assert!(AnswerRegex::compile("a(b").is_none());
        assert!(AnswerRegex::compile("a)|(b").is_none());
        assert!(AnswerRegex::compile(&"(".repeat(500)).is_none());
    }
}
