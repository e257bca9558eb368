//! The tokens an answer took, as the API's response body reports them (its `usage`), and
//! what a batch of answers took in all ([`Tally`]).

use std::ops::{Add, AddAssign, Mul};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Input (prompt) and output (completion) tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    /// The `usage` of a response body: OpenAI-compatible servers say `prompt_tokens` and
    /// `completion_tokens`, Anthropic `input_tokens` and `output_tokens`. A server that
    /// reports none (some local ones) used 0 as far as anyone can tell.
    pub fn of(body: &Value) -> Self {
        let usage = &body["usage"];
        let count = |names: [&str; 2]| names.iter().find_map(|n| usage[*n].as_u64()).unwrap_or(0);
        Self {
            input_tokens: count(["prompt_tokens", "input_tokens"]),
            output_tokens: count(["completion_tokens", "output_tokens"]),
        }
    }

    /// The larger of each count: a bound on either.
    pub fn max(self, other: Self) -> Self {
        Self {
            input_tokens: self.input_tokens.max(other.input_tokens),
            output_tokens: self.output_tokens.max(other.output_tokens),
        }
    }
}

impl Add for Usage {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

impl Mul<u64> for Usage {
    type Output = Self;

    fn mul(self, n: u64) -> Self {
        Self {
            input_tokens: self.input_tokens * n,
            output_tokens: self.output_tokens * n,
        }
    }
}

/// Answers and the tokens they took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub answers: usize,
    pub usage: Usage,
}

impl Add for Tally {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            answers: self.answers + other.answers,
            usage: self.usage + other.usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_both_conventions_and_none() {
        let openai =
            json!({"usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}});
        let anthropic = json!({"usage": {"input_tokens": 7, "output_tokens": 3}});
        assert_eq!(
            (Usage::of(&openai), Usage::of(&anthropic)),
            (
                Usage {
                    input_tokens: 12,
                    output_tokens: 5
                },
                Usage {
                    input_tokens: 7,
                    output_tokens: 3
                }
            )
        );
        assert_eq!(Usage::of(&json!({"choices": []})), Usage::default());
    }

    #[test]
    fn sums_scales_and_bounds() {
        let a = Usage {
            input_tokens: 10,
            output_tokens: 1,
        };
        let b = Usage {
            input_tokens: 2,
            output_tokens: 4,
        };
        assert_eq!(
            a + b,
            Usage {
                input_tokens: 12,
                output_tokens: 5
            }
        );
        assert_eq!(
            a.max(b) * 3,
            Usage {
                input_tokens: 30,
                output_tokens: 12
            }
        );
    }
}
