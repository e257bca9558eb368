//! What an HTTP teacher's answers cost ([`Price`], the `teacher_price` option) and how much
//! a stage's answers may cost ([`Budget`], `teacher_budget`).
//!
//! A budget bounds what the answers of one `minimum_edit` call (a stage) take in all, those
//! from the cache included: they were paid for when they were first asked. So a rerun at the
//! same budget sends nothing it did not send before, and one with a larger budget goes on
//! where the last stopped. A request is sent only while the answers, with it and those in
//! flight counted at an estimate, stay within the budget ([`crate::http`]'s limit).

use serde::{Deserialize, Serialize};

use crate::http::{Tally, Usage};
use crate::spend::dollars;

/// Dollars per million input and per million output tokens; both 0: unknown (no cost is
/// computed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a map #{input, output} of dollars per million tokens"
)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

impl Price {
    pub fn known(&self) -> bool {
        self.input > 0.0 || self.output > 0.0
    }

    /// The dollars `usage` costs.
    pub fn cost(&self, usage: Usage) -> f64 {
        (usage.input_tokens as f64 * self.input + usage.output_tokens as f64 * self.output) / 1e6
    }

    /// [`Price::cost`] when the price is known.
    pub fn cost_if_known(&self, usage: Usage) -> Option<f64> {
        self.known().then(|| self.cost(usage))
    }

    pub fn validate(&self) -> Result<(), String> {
        for (part, value) in [("input", self.input), ("output", self.output)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!(
                    "`teacher_price.{part}` must be a non-negative number of dollars per million tokens, got {value}"
                ));
            }
        }
        Ok(())
    }
}

/// The most a stage's answers may take: `requests` answers and `cost` dollars; 0 is no
/// limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a map #{requests, cost} (0: no limit)"
)]
pub struct Budget {
    pub requests: usize,
    pub cost: f64,
}

impl Budget {
    /// Whether either limit is set.
    pub fn limited(&self) -> bool {
        self.requests > 0 || self.cost > 0.0
    }

    /// A cost limit needs a price to count against.
    pub fn validate(&self, price: &Price) -> Result<(), String> {
        if !(self.cost.is_finite() && self.cost >= 0.0) {
            return Err(format!(
                "`teacher_budget.cost` must be a non-negative number of dollars, got {}",
                self.cost
            ));
        }
        if self.cost > 0.0 && !price.known() {
            return Err(
                "`teacher_budget.cost` needs the teacher's price: set `teacher_price` (dollars per million input and output tokens)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Whether answers that took `taken` are within the budget.
    pub fn allows(&self, taken: &Tally, price: &Price) -> bool {
        let requests = self.requests == 0 || taken.answers <= self.requests;
        let cost = self.cost <= 0.0 || price.cost(taken.usage) <= self.cost;
        requests && cost
    }

    /// Why the stage stops: `taken.answers` of the `asked` requests have an answer; names
    /// the limit to raise (`requests` when that one is spent, else `cost`).
    pub fn reached(&self, asked: usize, taken: &Tally, price: &Price) -> String {
        let mut said = Vec::new();
        if self.requests > 0 {
            said.push(format!("{} allowed", self.requests));
        }
        if let Some(cost) = price.cost_if_known(taken.usage) {
            said.push(if self.cost > 0.0 {
                format!("cost {} of {}", dollars(cost), dollars(self.cost))
            } else {
                format!("cost {}", dollars(cost))
            });
        }
        let knob = if self.requests > 0 && taken.answers >= self.requests {
            "requests"
        } else {
            "cost"
        };
        format!(
            "teacher budget reached: {} of {asked} requests answered ({}); the answers received are cached: raise teacher_budget.{knob} to continue",
            taken.answers,
            said.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(answers: usize, input_tokens: u64, output_tokens: u64) -> Tally {
        Tally {
            answers,
            usage: Usage {
                input_tokens,
                output_tokens,
            },
        }
    }

    const PRICE: Price = Price {
        input: 3.0,
        output: 15.0,
    };

    #[test]
    fn a_price_is_per_million_tokens_and_zero_is_unknown() {
        let usage = tally(1, 2_000_000, 100_000).usage;
        assert!((PRICE.cost(usage) - 7.5).abs() < 1e-12);
        assert_eq!(Price::default().cost_if_known(usage), None);
        let output_only = Price {
            input: 0.0,
            output: 1.0,
        };
        assert_eq!(output_only.cost_if_known(usage), Some(0.1));
        let bad = Price {
            input: -1.0,
            output: 0.0,
        };
        let e = bad.validate().unwrap_err();
        assert!(
            e.contains("`teacher_price.input`") && e.contains("-1"),
            "{e}"
        );
    }

    #[test]
    fn each_limit_binds_and_zero_is_none() {
        let none = Budget::default();
        assert!(!none.limited());
        assert!(none.allows(&tally(1_000_000, u64::MAX / 64, 0), &PRICE));
        let requests = Budget {
            requests: 3,
            cost: 0.0,
        };
        assert!(requests.allows(&tally(3, 0, 0), &PRICE));
        assert!(!requests.allows(&tally(4, 0, 0), &PRICE));
        // $3 + $1.5 = $4.5 per million each way.
        let cost = Budget {
            requests: 0,
            cost: 4.5,
        };
        assert!(cost.allows(&tally(9, 1_000_000, 100_000), &PRICE));
        assert!(!cost.allows(&tally(9, 1_000_001, 100_000), &PRICE));
    }

    #[test]
    fn a_cost_limit_needs_a_price() {
        let cost = Budget {
            requests: 0,
            cost: 1.0,
        };
        let e = cost.validate(&Price::default()).unwrap_err();
        assert!(e.contains("set `teacher_price`"), "{e}");
        assert!(cost.validate(&PRICE).is_ok());
    }

    #[test]
    fn the_message_says_how_far_it_got_and_names_the_limit_to_raise() {
        let requests = Budget {
            requests: 3,
            cost: 0.0,
        };
        assert_eq!(
            requests.reached(5, &tally(3, 0, 0), &Price::default()),
            "teacher budget reached: 3 of 5 requests answered (3 allowed); the answers \
             received are cached: raise teacher_budget.requests to continue"
        );
        let cost = Budget {
            requests: 10,
            cost: 0.01,
        };
        assert_eq!(
            cost.reached(5, &tally(2, 1000, 200), &PRICE),
            "teacher budget reached: 2 of 5 requests answered (10 allowed, cost $0.0060 of \
             $0.0100); the answers received are cached: raise teacher_budget.cost to continue"
        );
    }
}
