//! `coordinator suite check` and `coordinator suite grade`: test a suite's graders offline, before
//! spending farm time on it.

use std::io::{Read, Write};

use anyhow::Result;

/// `suite check FILE|NAME`: every load error with file, line and column, then every example graded;
/// exit 1 on any error or disagreement. The last line is always `N of M examples agree` when the suite
/// loaded.
pub fn check(target: &str, out: &mut impl Write) -> Result<i32> {
    let suite = match benchfarm_suite::resolve(target) {
        Ok((suite, _)) => suite,
        Err(err) => {
            writeln!(out, "{err}")?;
            return Ok(1);
        }
    };
    let report = benchfarm_suite::check_examples(&suite);
    writeln!(
        out,
        "suite {} v{}: {} tasks",
        suite.name,
        suite.version,
        suite.tasks.len()
    )?;
    write!(out, "{report}")?;
    Ok(if report.disagreements.is_empty() {
        0
    } else {
        1
    })
}

/// `suite grade FILE|NAME TASK [--answer TEXT]` (stdin when no answer is given): the grade and, check
/// by check, which held.
pub fn grade(
    target: &str,
    task_id: &str,
    answer: Option<String>,
    out: &mut impl Write,
) -> Result<i32> {
    let suite = match benchfarm_suite::resolve(target) {
        Ok((suite, _)) => suite,
        Err(err) => {
            writeln!(out, "{err}")?;
            return Ok(2);
        }
    };
    let Some(task) = suite.task(task_id) else {
        let ids: Vec<&str> = suite.tasks.iter().map(|t| t.id.as_str()).collect();
        writeln!(
            out,
            "error: suite {} has no task {task_id:?}; its tasks: {}",
            suite.name,
            ids.join(", ")
        )?;
        return Ok(2);
    };
    let answer = match answer {
        Some(a) => a,
        None => {
            let mut buf = String::new();
            std::io::stdin().read_to_string(&mut buf)?;
            buf
        }
    };
    let grade = task.grade(&answer);
    writeln!(out, "{grade}")?;
    writeln!(out, "extracted text:\n{}", grade.extracted)?;
    Ok(0)
}
