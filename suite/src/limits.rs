//! How big a suite may be: tasks, checks, regex pattern length and compiled regex size.
//!
//! A suite arrives from any submitter and every worker and the coordinator parse it and run its
//! checks over every answer, so its size is bounded at load, with an error naming the limit and
//! where it was exceeded. The coordinator sets these from `coordinator serve` flags
//! (`--max-suite-tasks`, `--max-suite-checks`, `--max-regex-bytes`, `--max-regex-compiled-bytes`);
//! [`Suite::parse`](crate::Suite::parse) uses the defaults, which no real suite comes near.

/// The size limits a suite is loaded under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteLimits {
    /// Tasks in one suite.
    pub tasks: usize,
    /// Checks in one suite, all tasks together, nested checks (`not`, `any`, `all`, `of`) each
    /// counted.
    pub checks: usize,
    /// Bytes of one `regex` check's pattern.
    pub regex_bytes: usize,
    /// The compiled size of one `regex` check (the `regex` crate's `size_limit`): a short
    /// pattern such as `\w{1000}{1000}` compiles to gigabytes.
    pub regex_compiled_bytes: usize,
}

impl SuiteLimits {
    pub const DEFAULT: SuiteLimits = SuiteLimits {
        tasks: 1_000,
        checks: 20_000,
        regex_bytes: 4_096,
        regex_compiled_bytes: 1 << 20,
    };
}

impl Default for SuiteLimits {
    fn default() -> Self {
        SuiteLimits::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Suite;

    fn suite(tasks: usize, checks_per_task: usize, regex: &str) -> String {
        let mut s = String::from("name = \"l\"\nversion = \"1\"\n");
        for t in 0..tasks {
            let checks: Vec<String> = (0..checks_per_task)
                .map(|_| format!("{{ regex = {regex:?} }}"))
                .collect();
            s.push_str(&format!(
                "[[tasks]]\nid = \"t{t}\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{}]\n",
                checks.join(", ")
            ));
        }
        s
    }

    fn error(text: &str, limits: SuiteLimits) -> String {
        Suite::parse_with_limits(text, "s.toml", limits)
            .expect_err("over a limit")
            .to_string()
    }

    #[test]
    fn each_limit_is_named_where_it_is_exceeded() {
        let limits = SuiteLimits {
            tasks: 2,
            checks: 3,
            regex_bytes: 8,
            regex_compiled_bytes: 10_000,
        };
        assert!(Suite::parse_with_limits(&suite(2, 1, "a"), "s.toml", limits).is_ok());
        let e = error(&suite(3, 1, "a"), limits);
        assert!(
            e.contains("field `tasks`: 3 tasks, over the limit max_suite_tasks = 2"),
            "{e}"
        );
        let e = error(&suite(2, 2, "a"), limits);
        assert!(
            e.contains("field `tasks[t1].pass[1]`: more than 3 checks in the suite, over the limit max_suite_checks = 3"),
            "{e}"
        );
        let e = error(&suite(1, 1, "abcdefghi"), limits);
        assert!(
            e.contains("regex of 9 bytes, over the limit max_regex_bytes = 8"),
            "{e}"
        );
        let e = error(&suite(1, 1, r"\w{500}"), limits);
        assert!(
            e.contains(
                "compiles to more than 10000 bytes, over the limit max_regex_compiled_bytes = 10000"
            ),
            "{e}"
        );
        assert!(e.starts_with("s.toml:"), "{e}");
    }

    #[test]
    fn nested_checks_count() {
        let limits = SuiteLimits {
            checks: 2,
            ..SuiteLimits::DEFAULT
        };
        let text = "name = \"l\"\nversion = \"1\"\n[[tasks]]\nid = \"t\"\ncategory = \"c\"\nprompt = \"p\"\npass = [{ not = { not = { contains = \"x\" } } }]\n";
        let e = error(text, limits);
        assert!(e.contains("over the limit max_suite_checks = 2"), "{e}");
        assert!(Suite::parse(text, "s.toml").is_ok());
    }
}
