//! The real default model in tests: where to find it, and the small two-task suite and plan the
//! real-model tests run. Shared by the in-process harness ([`crate::in_process`]) and the process
//! harness ([`crate::process`]), which re-export it.

use std::path::{Path, PathBuf};

/// The default model (`models/SmolLM2-135M-Instruct.Q4_1.gguf`, or `$BENCHFARM_TEST_MODEL`), or
/// `None` (test skipped) when it is absent outside CI. In CI a missing model is a failure: the test
/// command fetches it first.
pub fn default_model() -> Option<PathBuf> {
    let path = std::env::var_os("BENCHFARM_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing; run scripts/fetch-models.sh (the test command does)",
            path.display()
        );
    }
    eprintln!(
        "skipping: {} is missing (run scripts/fetch-models.sh)",
        path.display()
    );
    None
}

/// The second real model (`models/gemma-3-270m-q4_k_m.gguf`, fetched by `scripts/fetch-models.sh
/// --gemma`), or `None` (test skipped) when it is absent outside CI; in CI a missing model fails.
pub fn gemma_model() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/gemma-3-270m-q4_k_m.gguf");
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing; run scripts/fetch-models.sh --gemma (the test command does)",
            path.display()
        );
    }
    eprintln!(
        "skipping: {} is missing (run scripts/fetch-models.sh --gemma)",
        path.display()
    );
    None
}

/// A plan of `smoke.toml` (written beside it) × the model the coordinator has registered as
/// `registered` (a name or sha256 prefix) × 1.
pub fn registered_plan(registered: &str) -> String {
    format!("suite = \"smoke.toml\"\nrepetitions = 1\n[[models]]\nregistered = \"{registered}\"\n")
}

/// Two short shell tasks with a small token limit: quick on the real model, and graded.
pub fn smoke_suite(max_tokens: u32) -> String {
    format!(
        r#"
name = "smoke"
version = "1"

[defaults]
system = "You are a coding assistant working in a Linux shell. Answer with only what is asked."
max_tokens = {max_tokens}

[[tasks]]
id = "list-files"
category = "shell"
prompt = "Write a shell command that lists all files in the current directory, including hidden ones. Reply with only the command."
pass = [{{ regex = '\bls\b' }}, {{ contains = "-a" }}]
partial = [{{ regex = '\bls\b' }}]

[[tasks]]
id = "count-lines"
category = "shell"
prompt = "Write a shell command that counts the lines of the file notes.txt. Reply with only the command."
pass = [{{ contains = "wc" }}, {{ contains = "notes.txt" }}]
partial = [{{ contains = "wc" }}]
"#
    )
}

/// A plan of `smoke.toml` (written beside it) × the GGUF at `model` (named SmolLM2-135M) × 1.
pub fn smoke_plan(model: &Path) -> String {
    format!(
        "suite = \"smoke.toml\"\nrepetitions = 1\n[[models]]\npath = \"{}\"\nname = \"SmolLM2-135M\"\n",
        model.display()
    )
}
