//! llama-bench's tests as the farm names them: [`ThroughputTest`] (`pp<N>`, `tg<N>`,
//! `pp<P>+tg<G>`), which a plan's `throughput = [...]` lists, the coordinator schedules as jobs,
//! the worker's engine runs (and `worker bench` runs on its own) and the report groups by.

use serde::{Deserialize, Serialize};

/// The largest `N` of a `pp<N>` test: well past any small model's context, far below a size that
/// would make one job run for hours on a board.
pub const MAX_PROMPT_TOKENS: u32 = 16_384;
/// The largest `N` of a `tg<N>` test: tokens decoded one at a time, so it bounds the job's time.
pub const MAX_GEN_TOKENS: u32 = 4_096;

/// One llama-bench test: `pp512` (prompt processing, `n_prompt` 512), `tg128` (text generation,
/// `n_gen` 128) or `pp512+tg128` (both in one repetition; `pg512,128` in a plan, as llama-bench's
/// `-pg 512,128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ThroughputTest {
    pub n_prompt: u32,
    pub n_gen: u32,
}

/// Why a throughput entry was refused; the plan reader adds the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThroughputTestError {
    #[error(
        "{0:?} is not a throughput test; expected pp<N> (e.g. \"pp512\"), tg<N> (e.g. \"tg128\") or pg<P>,<G> (e.g. \"pg512,128\")"
    )]
    Syntax(String),
    #[error("{entry:?}: {what} must be 1 to {max} tokens")]
    OutOfRange {
        entry: String,
        what: &'static str,
        max: u32,
    },
}

impl ThroughputTest {
    /// Parses a plan entry: `pp<N>`, `tg<N>` or `pg<P>,<G>`, N within the limits above.
    pub fn parse(entry: &str) -> Result<Self, ThroughputTestError> {
        let syntax = || ThroughputTestError::Syntax(entry.to_string());
        let number = |digits: &str| -> Result<u32, ThroughputTestError> {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            // Too many digits for u32 is out of range, not a syntax error.
            Ok(digits.parse::<u32>().unwrap_or(u32::MAX))
        };
        let range = |n: u32, what: &'static str, max: u32| {
            if n == 0 || n > max {
                Err(ThroughputTestError::OutOfRange {
                    entry: entry.to_string(),
                    what,
                    max,
                })
            } else {
                Ok(n)
            }
        };
        let (kind, rest) = entry.split_at_checked(2).ok_or_else(syntax)?;
        match kind {
            "pp" => Ok(Self {
                n_prompt: range(number(rest)?, "the prompt", MAX_PROMPT_TOKENS)?,
                n_gen: 0,
            }),
            "tg" => Ok(Self {
                n_prompt: 0,
                n_gen: range(number(rest)?, "the generation", MAX_GEN_TOKENS)?,
            }),
            "pg" => {
                let (p, g) = rest.split_once(',').ok_or_else(syntax)?;
                Ok(Self {
                    n_prompt: range(number(p.trim())?, "the prompt", MAX_PROMPT_TOKENS)?,
                    n_gen: range(number(g.trim())?, "the generation", MAX_GEN_TOKENS)?,
                })
            }
            _ => Err(syntax()),
        }
    }

    /// llama-bench's name for the test, as its table's `test` column shows it.
    pub fn name(&self) -> String {
        match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        }
    }

    /// Tokens one repetition processes: what t/s counts (llama-bench's `n_prompt + n_gen`).
    pub fn n_tokens(&self) -> u32 {
        self.n_prompt.saturating_add(self.n_gen)
    }
}

impl std::fmt::Display for ThroughputTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llama_bench_names() {
        assert_eq!(
            ThroughputTest::parse("pp512").unwrap(),
            ThroughputTest {
                n_prompt: 512,
                n_gen: 0
            }
        );
        assert_eq!(ThroughputTest::parse("tg128").unwrap().name(), "tg128");
        let pg = ThroughputTest::parse("pg512,128").unwrap();
        assert_eq!((pg.name().as_str(), pg.n_tokens()), ("pp512+tg128", 640));
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in [
            "", "pp", "p512", "tg-1", "tg1.5", "pp 16", "xx16", "pg512", "pg,8", "é",
        ] {
            assert!(
                matches!(
                    ThroughputTest::parse(bad),
                    Err(ThroughputTestError::Syntax(_))
                ),
                "{bad:?}"
            );
        }
        for bad in ["pp0", "tg0", "pp16385", "tg4097", "tg99999999999", "pg0,8"] {
            assert!(
                matches!(
                    ThroughputTest::parse(bad),
                    Err(ThroughputTestError::OutOfRange { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(ThroughputTest::parse("pp16384").is_ok());
        assert!(ThroughputTest::parse("tg4096").is_ok());
    }
}
