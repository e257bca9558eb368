//! What the paid APIs this process asked cost it ([`Spend`]: requests sent, answers taken
//! from the cache instead, tokens, and dollars where the price is known), and the
//! process-wide ledger they are added to ([`record`], [`total`]).
//!
//! The HTTP teachers record every batch; a run's stage reads the ledger's total before and
//! after its body and keeps the difference in its record ([`crate::run::stage`]), which the
//! report shows per stage. One ledger for the process, because a script runs its stages one
//! after the other: a stage nested in another counts in both.

use std::ops::Add;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Spend {
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Answers taken from the cache instead of asked again.
    pub cached: u64,
    /// The tokens of the answers to the requests sent.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Dollars, when the price of the tokens is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

impl Spend {
    /// Nothing spent.
    pub const NONE: Spend = Spend {
        requests: 0,
        cached: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost: None,
    };

    /// Whether anything was asked: a request sent or an answer taken from the cache.
    pub fn asked(&self) -> bool {
        self.requests > 0 || self.cached > 0
    }

    /// What was spent since the ledger stood at `before`.
    pub fn since(&self, before: &Spend) -> Spend {
        Spend {
            requests: self.requests - before.requests,
            cached: self.cached - before.cached,
            input_tokens: self.input_tokens - before.input_tokens,
            output_tokens: self.output_tokens - before.output_tokens,
            cost: self.cost.map(|c| c - before.cost.unwrap_or(0.0)),
        }
    }

    /// One line for a log: `5 requests (3 answers from the cache), 1200 input + 300 output
    /// tokens, $0.0042`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} requests ({} answers from the cache), {} input + {} output tokens",
            self.requests, self.cached, self.input_tokens, self.output_tokens
        );
        if let Some(cost) = self.cost {
            line.push_str(&format!(", {}", dollars(cost)));
        }
        line
    }
}

/// The spends together; the cost is that of the parts whose price is known, unknown when
/// none's is.
impl Add for Spend {
    type Output = Spend;

    fn add(self, other: Spend) -> Spend {
        let cost = match (self.cost, other.cost) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        Spend {
            requests: self.requests + other.requests,
            cached: self.cached + other.cached,
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            cost,
        }
    }
}

/// Dollars as logs and the report show them: `$0.0042`.
pub fn dollars(x: f64) -> String {
    format!("${x:.4}")
}

static LEDGER: Mutex<Spend> = Mutex::new(Spend::NONE);

/// Add `spend` to the process's ledger.
pub fn record(spend: &Spend) {
    let mut total = LEDGER.lock().unwrap_or_else(|e| e.into_inner());
    *total = *total + *spend;
}

/// Everything recorded in this process so far.
pub fn total() -> Spend {
    *LEDGER.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(requests: u64, cached: u64, tokens: u64, cost: Option<f64>) -> Spend {
        Spend {
            requests,
            cached,
            input_tokens: tokens,
            output_tokens: tokens / 10,
            cost,
        }
    }

    #[test]
    fn adds_and_takes_back_what_was_spent_between() {
        let before = spend(2, 1, 100, Some(0.5));
        let after = before + spend(3, 4, 1000, Some(0.25));
        assert_eq!(after, spend(5, 5, 1100, Some(0.75)));
        assert_eq!(after.since(&before), spend(3, 4, 1000, Some(0.25)));
        // A priced batch after unpriced ones: the cost is the priced part's.
        let unpriced = spend(1, 0, 10, None);
        let later = unpriced + spend(1, 0, 10, Some(0.1));
        assert_eq!(later.since(&unpriced).cost, Some(0.1));
        assert_eq!((unpriced + unpriced).cost, None);
    }

    #[test]
    fn only_a_stage_that_asked_has_spent() {
        assert!(!Spend::NONE.asked());
        assert!(spend(0, 3, 0, None).asked());
        assert!(spend(1, 0, 0, None).asked());
    }

    #[test]
    fn the_line_shows_the_cost_only_when_known() {
        assert_eq!(
            spend(5, 3, 1200, Some(0.00421)).line(),
            "5 requests (3 answers from the cache), 1200 input + 120 output tokens, $0.0042"
        );
        assert!(!spend(5, 3, 1200, None).line().contains('$'));
    }
}
