//! Finding the first wrong step: against the gold solution, lined up step by step (a step
//! is right when its arithmetic is, its operands are numbers it may use and its result is a
//! gold value not reached yet), or, without gold equations, the prediction checked alone.

use super::Case;
use super::parse::{Equation, answer_number, equation, numbers, same, values};
use crate::tasks::answer::ANSWER_MARKER;
use crate::teacher::solution::steps;

/// The problem's numbers and the results so far are what an operand may be; the first
/// operand of a later step that is neither contradicts what came before.
pub(super) fn from_nowhere(eq: &Equation, known: &[f64], results: &[f64]) -> bool {
    !results.is_empty()
        && !known
            .iter()
            .chain(results)
            .any(|&v| same(v, eq.first().value))
}

/// The gold solution as the teacher reads it: its equations in order, each with its line,
/// the answer, and its operands that no step computes (a step may use them: `* 2` for
/// "doubles"; a result only once the prediction has reached it).
pub(super) struct Gold<'a> {
    pub(super) steps: Vec<(&'a str, f64)>,
    pub(super) answer: f64,
    pub(super) answer_line: Option<&'a str>,
    givens: Vec<f64>,
}

impl<'a> Gold<'a> {
    /// `None` when the solution has no equation to line up with.
    pub(super) fn read(solution: &'a str) -> Option<Self> {
        let lines = steps(solution);
        let equations: Vec<(&str, Equation)> = lines
            .iter()
            .filter_map(|l| equation(l).map(|e| (l.trim(), e)))
            .collect();
        if equations.is_empty() {
            return None;
        }
        let steps: Vec<(&str, f64)> = equations.iter().map(|(l, e)| (*l, e.c.value)).collect();
        let givens = equations
            .iter()
            .flat_map(|(_, e)| e.values())
            .filter(|&v| !steps.iter().any(|&(_, c)| same(c, v)))
            .collect();
        let answer_line = lines.iter().rev().find(|l| l.contains(ANSWER_MARKER));
        let answer = answer_line
            .and_then(|l| answer_number(l))
            .map_or(steps[steps.len() - 1].1, |n| n.value);
        Some(Self {
            answer,
            answer_line: answer_line.map(|l| l.trim()),
            givens,
            steps,
        })
    }

    /// The gold step at or after `t` whose value `c` is, if any.
    fn reaches(&self, c: f64, t: usize) -> Option<usize> {
        (t..self.steps.len()).find(|&u| same(self.steps[u].1, c))
    }
}

/// What a prediction's steps may use, and how far along the gold solution they are.
pub(super) struct Walk<'a> {
    pub(super) gold: Gold<'a>,
    /// Numbers an operand may be: the problem's, the gold solution's givens, the gold
    /// results reached so far.
    known: Vec<f64>,
    /// The next gold step to reach.
    pub(super) next: usize,
}

impl<'a> Walk<'a> {
    pub(super) fn start(case: &'a Case) -> Option<Self> {
        let gold = Gold::read(&case.solution)?;
        let mut known = values(&numbers(&case.problem));
        known.extend(&gold.givens);
        Some(Self {
            gold,
            known,
            next: 0,
        })
    }

    /// The gold step that an equation with operand values `operands` and result `c` reaches,
    /// when it is right.
    pub(super) fn right(&self, eq: &Equation, operands: &[f64], c: f64) -> Option<usize> {
        let usable = operands
            .iter()
            .all(|&v| self.known.iter().any(|&k| same(k, v)));
        (usable && same(c, eq.eval(operands)))
            .then(|| self.gold.reaches(c, self.next))
            .flatten()
    }

    /// Gold step `t` is reached: its value may be used from now on.
    pub(super) fn reached(&mut self, t: usize) {
        self.known.push(self.gold.steps[t].1);
        self.next = t + 1;
    }

    /// The gold steps not reached yet, as lines.
    pub(super) fn missing(&self) -> impl Iterator<Item = String> + '_ {
        self.gold.steps[self.next..]
            .iter()
            .map(|(l, _)| l.to_string())
    }
}

/// Where the prediction first goes wrong against the gold solution; the last line when
/// every step is right but the answer line is missing.
fn first_error_against(case: &Case, mut walk: Walk) -> Option<usize> {
    let lines = steps(&case.prediction);
    for (k, line) in lines.iter().enumerate() {
        if let Some(eq) = equation(line) {
            match walk.right(&eq, &eq.values(), eq.c.value) {
                Some(t) => walk.reached(t),
                None => return Some(k),
            }
        } else if line.contains(ANSWER_MARKER) {
            let said = answer_number(line).map(|n| n.value);
            return (!said.is_some_and(|v| same(v, walk.gold.answer))).then_some(k);
        }
    }
    Some(lines.len() - 1)
}

/// Where the prediction first goes wrong, checked alone: a wrong result or first operand.
fn first_error_alone(case: &Case) -> Option<usize> {
    let known = values(&numbers(&case.problem));
    let mut results: Vec<f64> = Vec::new();
    for (k, line) in steps(&case.prediction).iter().enumerate() {
        if let Some(eq) = equation(line) {
            if from_nowhere(&eq, &known, &results) || !same(eq.c.value, eq.eval(&eq.values())) {
                return Some(k);
            }
            results.push(eq.c.value);
        } else if let (Some(said), Some(&last)) = (answer_number(line), results.last())
            && !same(said.value, last)
        {
            return Some(k);
        }
    }
    None
}

pub(super) fn first_error(case: &Case) -> Option<usize> {
    match Walk::start(case) {
        Some(walk) => first_error_against(case, walk),
        None => first_error_alone(case),
    }
}

/// The first step of `text`, a solution of `problem`, that the `arith` teacher would call
/// wrong without a gold solution; `None` when every calculation checks out. Judges a fix's
/// arithmetic, which a correct final answer does not guarantee.
pub fn first_wrong_step(problem: &str, text: &str) -> Option<usize> {
    first_error_alone(&Case {
        problem: problem.into(),
        solution: String::new(),
        prediction: text.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Arith;
    use super::super::tests::{against_gold, case, fixed};
    use crate::teacher::Teacher;

    #[test]
    fn an_operand_from_nowhere_and_a_wrong_answer_line() {
        let c = case(
            "Tom gets 5 more, so he has 12 + 5 = 17 apples.\nTom doubles them, so he has 19 * 2 = 38 apples.\nThe answer is 38",
        );
        assert_eq!(Arith.locate(&c).unwrap(), "[1]");
        assert_eq!(
            Arith.rewrite(&c, 1, "x").unwrap(),
            "Tom doubles them, so he has 17 * 2 = 34 apples.\nThe answer is 34"
        );
        let c = case("He has 12 + 5 = 17 apples.\nThe answer is 71");
        assert_eq!(Arith.locate(&c).unwrap(), "[1]");
        assert_eq!(Arith.rewrite(&c, 1, "x").unwrap(), "The answer is 17");
        let right = case("He has 12 + 5 = 17 apples.\nThe answer is 17");
        assert_eq!(Arith.locate(&right).unwrap(), "correct");
    }

    #[test]
    fn another_method_is_right_and_a_lucky_value_is_not() {
        let merged = against_gold("Ann has 15 * 3 + 12 = 57 pencils.\nThe answer is 57");
        assert_eq!(Arith.locate(&merged).unwrap(), "correct");
        let lucky = against_gold(
            "Ann triples them, so she has 40 + 5 = 45 pencils.\nAnn gets 12 more, so she has 45 + 12 = 57 pencils.\nThe answer is 57",
        );
        assert_eq!(Arith.locate(&lucky).unwrap(), "[0]");
        // 57 is a gold result, not yet reached: 57 - 12 = 45 is no way to get there.
        let ahead = against_gold(
            "Ann triples them, so she has 57 - 12 = 45 pencils.\nAnn gets 12 more, so she has 45 + 12 = 57 pencils.\nThe answer is 57",
        );
        assert_eq!(Arith.locate(&ahead).unwrap(), "[0]");
        let wrong_answer = against_gold(
            "Ann triples them, so she has 15 * 3 = 45 pencils.\nAnn gets 12 more, so she has 45 + 12 = 57 pencils.\nThe answer is 75",
        );
        assert_eq!(
            fixed(&wrong_answer),
            ("[2]".into(), against_gold("").solution)
        );
    }
}
