//! [`Verdict`]: how one answer was judged. The suite's graders produce it, the store keeps it,
//! the wire carries it as an enum and the report counts it; defined here once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The grade of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Partial,
    Fail,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Pass, Verdict::Partial, Verdict::Fail];

    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Partial => "partial",
            Verdict::Fail => "fail",
        }
    }

    /// The job's score as the farm defines it: pass 1, partial ½, fail 0.
    pub fn score(&self) -> f64 {
        self.half_points() as f64 / 2.0
    }

    /// The score in half-points (pass 2, partial 1, fail 0): integers keep the bootstrap
    /// arithmetic exact, so identical scores compare equal instead of differing in the last bit.
    pub fn half_points(&self) -> u64 {
        match self {
            Verdict::Pass => 2,
            Verdict::Partial => 1,
            Verdict::Fail => 0,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict name other than "pass", "partial" or "fail".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown grade `{0}` (expected \"pass\", \"partial\" or \"fail\")")]
pub struct ParseVerdictError(pub String);

impl FromStr for Verdict {
    type Err = ParseVerdictError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| ParseVerdictError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_scores_and_parsing_agree() {
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
            assert_eq!(v.score() * 2.0, v.half_points() as f64);
        }
        assert_eq!(Verdict::Partial.score(), 0.5);
        assert!("PASS".parse::<Verdict>().is_err());
    }
}
