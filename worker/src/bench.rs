//! `worker bench`: llama-bench's pp/tg measurements from this worker's own engine and build, on
//! one model file, printed in llama-bench's formats (see `benchfarm_engine::bench`).
//!
//! It runs in the calling thread, without the async runtime or a coordinator: it is the
//! measurement a farm job's figures are compared against, and the same one llama-bench makes.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use benchfarm_engine::bench::format::{Format, render};
use benchfarm_engine::bench::plan_tests;
use benchfarm_engine::{BenchOptions, LlamaEngine};

/// What `worker bench` was asked, as parsed from its command line.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchArgs {
    pub model: PathBuf,
    pub prompts: Vec<u32>,
    pub gens: Vec<u32>,
    pub pairs: Vec<(u32, u32)>,
    /// Empty: the machine's usable CPUs.
    pub threads: Vec<u32>,
    pub repetitions: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub format: Format,
}

/// Parses `--pg 512,128` into (n_prompt, n_gen).
pub fn parse_pair(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("expected --pg PROMPT,GEN (e.g. 512,128), got {text:?}");
    let (p, g) = text.split_once(',').ok_or_else(bad)?;
    Ok((
        p.trim().parse().map_err(|_| bad())?,
        g.trim().parse().map_err(|_| bad())?,
    ))
}

/// Runs the bench and returns its output text in the requested format.
pub fn run(args: &BenchArgs) -> Result<String> {
    let tests = plan_tests(&args.prompts, &args.gens, &args.pairs);
    if tests.is_empty() {
        bail!("nothing to run: every -p, -n and --pg size is 0");
    }
    if args.repetitions == 0 {
        bail!("-r must be at least 1");
    }
    let mut opts = BenchOptions {
        tests,
        repetitions: args.repetitions,
        n_batch: args.n_batch.max(1),
        n_ubatch: args.n_ubatch.max(1),
        ..BenchOptions::default()
    };
    if !args.threads.is_empty() {
        opts.threads = args.threads.iter().map(|&t| t.max(1)).collect();
    }
    let mut engine = LlamaEngine::new().context("initialising llama.cpp")?;
    let records = engine
        .bench(&args.model, &opts, |_| {})
        .with_context(|| format!("benchmarking {}", args.model.display()))?;
    Ok(render(&records, args.format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_like_llama_bench_pg() {
        assert_eq!(parse_pair("512,128"), Ok((512, 128)));
        assert_eq!(parse_pair(" 16 , 8 "), Ok((16, 8)));
        for bad in ["512", "a,b", "512,", ",128", "1,2,3"] {
            assert!(parse_pair(bad).is_err(), "{bad:?}");
        }
    }
}
