//! Extraction: which part of a raw model answer the checks see.
//!
//! Small models wrap answers inconsistently (fences with or without a language
//! tag, inline backticks, a sentence before the fence, a fence left unclosed when
//! `max_tokens` cut them off). Extraction normalises those so a check is written
//! once against the answer itself, not against every way of formatting it.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the text that checks see is taken from the raw answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Extract {
    /// The whole answer, trimmed.
    Answer,
    /// The body of the first fenced code block, else the whole answer; trimmed,
    /// and one pair of surrounding backticks removed.
    #[default]
    Code,
}

impl Extract {
    pub const ALL: [Extract; 2] = [Extract::Answer, Extract::Code];

    pub fn as_str(&self) -> &'static str {
        match self {
            Extract::Answer => "answer",
            Extract::Code => "code",
        }
    }

    /// The text the checks see for `raw`.
    pub fn apply(&self, raw: &str) -> String {
        match self {
            Extract::Answer => raw.trim().to_owned(),
            Extract::Code => extract_code(raw).to_owned(),
        }
    }
}

impl fmt::Display for Extract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `extract` value other than "answer" or "code".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown extract `{0}` (expected \"answer\" or \"code\")")]
pub struct ParseExtractError(pub String);

impl FromStr for Extract {
    type Err = ParseExtractError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Extract::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| ParseExtractError(s.to_owned()))
    }
}

/// `extract = "code"`: the first fenced block's body (or the whole answer),
/// trimmed, then one surrounding backtick pair removed.
pub fn extract_code(raw: &str) -> &str {
    let text = first_fenced_block(raw).unwrap_or(raw);
    strip_backtick_pair(text.trim()).trim()
}

/// The body of the first fenced code block in `raw`, if any.
///
/// The readings (documented in docs/suite-format.md):
/// - a fence is a run of 3 or more backticks anywhere, not only at a line start,
///   because models write "Here it is: ```bash" on one line;
/// - the rest of the opening line is a language tag and dropped only if it looks
///   like one (a single word such as `bash`, `c++`, `objective-c`); otherwise it is
///   the first line of the body (models write "```jq .a f.json" too);
/// - "```ls -la```" on one line is a block whose body is "ls -la";
/// - the block ends at the next run of at least as many backticks; a block never
///   closed (the answer was cut off) runs to the end of the answer.
pub fn first_fenced_block(raw: &str) -> Option<&str> {
    let (open, width) = find_backtick_run(raw, 3)?;
    let after = open + width;
    let rest = &raw[after..];
    let line_len = rest.find('\n').unwrap_or(rest.len());
    let line = &rest[..line_len];
    if let Some((close, _)) = find_backtick_run(line, width) {
        return Some(&line[..close]);
    }
    let body = if is_language_tag(line.trim()) {
        // Skip the tag and its newline; at the end of input the body is empty.
        rest.get(line_len + 1..).unwrap_or("")
    } else {
        rest
    };
    Some(match find_backtick_run(body, width) {
        Some((close, _)) => &body[..close],
        None => body,
    })
}

/// Byte offset and length of the first run of at least `min` backticks.
fn find_backtick_run(s: &str, min: usize) -> Option<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let len = bytes[i..].iter().take_while(|&&b| b == b'`').count();
            if len >= min {
                return Some((i, len));
            }
            i += len;
        } else {
            i += 1;
        }
    }
    None
}

/// An info string that is a bare language name (possibly empty).
fn is_language_tag(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '+' | '-' | '_' | '.' | '#'))
}

/// Removes one surrounding pair of single or double backticks (`x` or ``x``)
/// when the text is exactly one inline code span. "`ls` and `pwd`" is left alone:
/// it starts and ends with backticks but is two spans, not one wrapped answer.
fn strip_backtick_pair(s: &str) -> &str {
    let lead = s.bytes().take_while(|&b| b == b'`').count();
    let trail = s.bytes().rev().take_while(|&b| b == b'`').count();
    if (lead == 1 || lead == 2) && lead == trail && s.len() > 2 * lead {
        let inner = &s[lead..s.len() - lead];
        if !inner.contains('`') {
            return inner;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> &str {
        extract_code(raw)
    }

    #[test]
    fn fenced_block_with_and_without_tag() {
        assert_eq!(code("```bash\nls -la\n```"), "ls -la");
        assert_eq!(code("```\nls -la\n```"), "ls -la");
        assert_eq!(code("```c++\nint x;\n```"), "int x;");
        assert_eq!(code("```bash\r\nls -la\r\n```\r\n"), "ls -la");
    }

    #[test]
    fn first_block_wins_and_prose_around_it_is_dropped() {
        let raw = "Sure! Here is the command:\n\n```sh\njq .a f.json\n```\n\nOr:\n```\ncat f\n```";
        assert_eq!(code(raw), "jq .a f.json");
    }

    #[test]
    fn fence_opened_mid_line() {
        assert_eq!(
            code("Run this: ```bash\ngrep -rn foo .\n```"),
            "grep -rn foo ."
        );
    }

    #[test]
    fn unclosed_fence_runs_to_end() {
        assert_eq!(
            code("```python\nimport json\nprint(1)"),
            "import json\nprint(1)"
        );
        assert_eq!(code("```"), "");
        assert_eq!(code("```bash"), "");
    }

    #[test]
    fn one_line_fence_and_command_on_the_fence_line() {
        assert_eq!(code("```ls -la```"), "ls -la");
        assert_eq!(code("```jq '.a' f.json\n```"), "jq '.a' f.json");
    }

    #[test]
    fn longer_fences_contain_shorter_runs() {
        assert_eq!(code("````md\n```\nx\n```\n````"), "```\nx\n```");
    }

    #[test]
    fn inline_backticks_are_removed_once() {
        assert_eq!(code("`ls -la`"), "ls -la");
        assert_eq!(code("  ``ls -la``  "), "ls -la");
        assert_eq!(code("```\n`ls -la`\n```"), "ls -la");
        assert_eq!(code("`ls` and `pwd`"), "`ls` and `pwd`");
        assert_eq!(code("`"), "`");
        assert_eq!(code("``"), "``");
    }

    #[test]
    fn no_fence_is_whole_answer_trimmed() {
        assert_eq!(code("  The answer is `ls`.\n"), "The answer is `ls`.");
        assert_eq!(Extract::Answer.apply("  ```\nx\n```  "), "```\nx\n```");
    }

    #[test]
    fn extract_names_round_trip() {
        for e in Extract::ALL {
            assert_eq!(e.as_str().parse::<Extract>(), Ok(e));
        }
        assert!("Code".parse::<Extract>().is_err());
        assert_eq!(Extract::default(), Extract::Code);
    }
}
