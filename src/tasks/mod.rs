//! Tasks: the problems RLMEC trains and evaluates on, in one shape `{problem, solution,
//! answer}` (docs/method.md, "Data shapes").
//!
//! - [`load`]: the shipped datasets (ECQA, OpenBookQA, GSM8K, SVAMP) and a user's own JSONL,
//!   with GSM8K's annotations and `#### N` normalised away;
//! - [`synthetic`]: a seeded generator of multi-step arithmetic word problems;
//! - [`prompt`], [`answer`]: the policy prompt, answer extraction and scoring, in the
//!   corrected and the public code's (`paper`) fidelity.

pub mod answer;
pub mod load;
pub mod prompt;
pub mod sample;
pub mod synthetic;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A problem, its gold solution (one step per line, the last `The answer is <answer>`) and
/// its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub problem: String,
    pub solution: String,
    pub answer: String,
}

/// Question answering (answers compared as text) or math (compared as numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    Qa,
    Math,
}

impl FromStr for TaskKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "qa" => Ok(Self::Qa),
            "math" => Ok(Self::Math),
            other => Err(format!(
                "unknown task kind `{other}`: expected \"qa\" or \"math\""
            )),
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Qa => "qa",
            Self::Math => "math",
        })
    }
}

crate::serde_by_name!(TaskKind);

/// Whether to reproduce the public code's quirks (the quirks table of docs/method.md) or
/// correct them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fidelity {
    #[default]
    Corrected,
    Paper,
}

impl FromStr for Fidelity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "corrected" => Ok(Self::Corrected),
            "paper" => Ok(Self::Paper),
            other => Err(format!(
                "unknown fidelity `{other}`: expected \"corrected\" or \"paper\""
            )),
        }
    }
}

impl fmt::Display for Fidelity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Corrected => "corrected",
            Self::Paper => "paper",
        })
    }
}

crate::serde_by_name!(Fidelity);

/// The options of a call whose one knob is the fidelity: `#{fidelity: "paper"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FidelityOption {
    pub fidelity: Fidelity,
}
