//! The minimal rewrite from the first wrong step on: every byte kept that can be, corrected
//! values carried into every later number, misread steps replaced by the gold step, skipped
//! gold steps inserted before the answer line and steps past the gold solution dropped.

use std::collections::HashMap;

use super::Case;
use super::judge::{Walk, from_nowhere};
use super::parse::{Equation, Number, answer_number, equation, format, numbers, same, values};
use crate::tasks::answer::ANSWER_MARKER;
use crate::teacher::solution::steps;

/// `line` with each number of `edits` replaced by its new value (unchanged values kept
/// byte for byte).
fn rewrite_numbers(line: &str, mut edits: Vec<(Number, f64)>) -> String {
    edits.sort_by_key(|(n, _)| std::cmp::Reverse(n.start));
    let mut out = line.to_string();
    for (n, v) in edits {
        if !same(n.value, v) {
            out.replace_range(n.start..n.end, &format(v));
        }
    }
    out
}

/// Wrong values (bits) → corrected values, carried into every later number.
#[derive(Default)]
struct Carried(HashMap<u64, f64>);

impl Carried {
    fn value(&self, n: Number) -> f64 {
        self.0.get(&n.value.to_bits()).copied().unwrap_or(n.value)
    }

    fn correct(&mut self, wrong: f64, right: f64) {
        if !same(wrong, right) {
            self.0.insert(wrong.to_bits(), right);
        }
    }

    /// `line` with the carried values, and with `edits` (which come first).
    fn rewrite(&self, line: &str, mut edits: Vec<(Number, f64)>) -> String {
        let others: Vec<(Number, f64)> = numbers(line)
            .into_iter()
            .filter(|n| !edits.iter().any(|(e, _)| e.start == n.start))
            .map(|n| (n, self.value(n)))
            .collect();
        edits.extend(others);
        rewrite_numbers(line, edits)
    }

    /// An equation's line with operand values `operands` and their result `c`.
    fn rewrite_equation(&self, line: &str, eq: &Equation, operands: Vec<f64>, c: f64) -> String {
        let mut edits: Vec<(Number, f64)> = eq.operands.iter().copied().zip(operands).collect();
        edits.push((eq.c, c));
        self.rewrite(line, edits)
    }
}

/// The prediction's steps from `k` on, corrected against the gold solution.
pub(super) fn corrected_against(case: &Case, k: usize, mut walk: Walk) -> String {
    let lines = steps(&case.prediction);
    // The steps before `k` are right: where they got to along the gold solution.
    for eq in lines[..k].iter().filter_map(|l| equation(l)) {
        if let Some(t) = walk.right(&eq, &eq.values(), eq.c.value) {
            walk.reached(t);
        }
    }
    let mut carried = Carried::default();
    let mut out = Vec::new();
    let mut answered = false;
    for line in &lines[k..] {
        if let Some(eq) = equation(line) {
            if walk.next == walk.gold.steps.len() {
                continue; // a step past the gold solution
            }
            let operands: Vec<f64> = eq.operands.iter().map(|&n| carried.value(n)).collect();
            let c = eq.eval(&operands);
            let t = match walk.right(&eq, &operands, c) {
                Some(t) => {
                    out.push(carried.rewrite_equation(line, &eq, operands, c));
                    t
                }
                // A misread: the gold step instead.
                None => {
                    out.push(walk.gold.steps[walk.next].0.to_string());
                    walk.next
                }
            };
            carried.correct(eq.c.value, walk.gold.steps[t].1);
            walk.reached(t);
        } else if let Some(said) = answer_number(line) {
            out.extend(walk.missing());
            walk.next = walk.gold.steps.len();
            out.push(carried.rewrite(line, vec![(said, walk.gold.answer)]));
            answered = true;
        } else {
            out.push(carried.rewrite(line, Vec::new()));
        }
    }
    if !answered {
        out.extend(walk.missing());
        out.push(walk.gold.answer_line.map_or_else(
            || format!("{ANSWER_MARKER} {}", format(walk.gold.answer)),
            str::to_string,
        ));
    }
    out.join("\n")
}

/// The prediction's steps from `k` on, corrected alone: results and an impossible first
/// operand, carried through.
pub(super) fn corrected_alone(case: &Case, k: usize) -> String {
    let lines = steps(&case.prediction);
    let known = values(&numbers(&case.problem));
    let results: Vec<f64> = lines[..k]
        .iter()
        .filter_map(|l| equation(l))
        .map(|e| e.c.value)
        .collect();
    let mut last_result = results.last().copied();
    let mut carried = Carried::default();
    let mut out = Vec::new();
    for (j, line) in lines.iter().enumerate().skip(k) {
        let Some(eq) = equation(line) else {
            let edits = match (answer_number(line), last_result) {
                (Some(said), Some(last)) => vec![(said, last)],
                _ => Vec::new(),
            };
            out.push(carried.rewrite(line, edits));
            continue;
        };
        let mut operands: Vec<f64> = eq.operands.iter().map(|&n| carried.value(n)).collect();
        if j == k
            && let Some(prev) = last_result
            && from_nowhere(&eq, &known, &results)
        {
            operands[0] = prev;
        }
        let c = eq.eval(&operands);
        out.push(carried.rewrite_equation(line, &eq, operands, c));
        carried.correct(eq.c.value, c);
        last_result = Some(c);
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::super::Arith;
    use super::super::tests::{against_gold, case, fixed};
    use crate::teacher::Teacher;

    #[test]
    fn finds_the_first_wrong_result_and_carries_the_fix() {
        let c = case(
            "Tom gets 5 more, so he has 12 + 5 = 18 apples.\nTom doubles them, so he has 18 * 2 = 36 apples.\nThe answer is 36",
        );
        assert_eq!(Arith.locate(&c).unwrap(), "[0]");
        assert_eq!(
            Arith.rewrite(&c, 0, "").unwrap(),
            "Tom gets 5 more, so he has 12 + 5 = 17 apples.\nTom doubles them, so he has 17 * 2 = 34 apples.\nThe answer is 34"
        );
    }

    #[test]
    fn a_later_wrong_step_keeps_the_prefix() {
        let c = case(
            "Tom gets 5 more, so he has 12 + 5 = 17 apples.\nTom doubles them, so he has 17 * 2 = 35 apples.\nThe answer is 35",
        );
        assert_eq!(Arith.locate(&c).unwrap(), "[1]");
        assert_eq!(
            Arith
                .rewrite(&c, 1, "Tom gets 5 more, so he has 12 + 5 = 17 apples.")
                .unwrap(),
            "Tom doubles them, so he has 17 * 2 = 34 apples.\nThe answer is 34"
        );
    }

    #[test]
    fn chains_are_evaluated_whole_and_other_numbers_carried() {
        let c = case(
            "He has 12 + 5 + 3 = 21 apples.\nHe had 21 apples, so 21 * 2 = 42.\nThe answer is 42",
        );
        assert_eq!(Arith.locate(&c).unwrap(), "[0]");
        assert_eq!(
            Arith.rewrite(&c, 0, "").unwrap(),
            "He has 12 + 5 + 3 = 20 apples.\nHe had 20 apples, so 20 * 2 = 40.\nThe answer is 40"
        );
    }

    #[test]
    fn a_misread_step_becomes_the_gold_step_and_the_rest_is_carried() {
        // A wrong operation ("quadruples", * 4): its arithmetic is right, but 4 is no number
        // of the problem or the gold solution.
        let c = against_gold(
            "Ann quadruples them, so she has 15 * 4 = 60 stickers.\nLena gets 12 more, so she has 60 + 12 = 72 marbles.\nThe answer is 72",
        );
        assert_eq!(
            fixed(&c),
            (
                "[0]".into(),
                "Ann triples them, so she has 15 * 3 = 45 pencils.\nLena gets 12 more, so she has 45 + 12 = 57 marbles.\nThe answer is 57".into()
            )
        );
        // A wrong result, then an operand from nowhere (21: neither the corrected 45 nor a
        // number of the problem or the gold solution).
        let c = against_gold(
            "Ann triples them, so she has 15 * 3 = 46 pencils.\nAnn gets 12 more, so she has 21 + 12 = 33 pencils.\nThe answer is 33",
        );
        assert_eq!(
            fixed(&c),
            (
                "[0]".into(),
                "Ann triples them, so she has 15 * 3 = 45 pencils.\nAnn gets 12 more, so she has 45 + 12 = 57 pencils.\nThe answer is 57".into()
            )
        );
    }

    #[test]
    fn skipped_steps_are_inserted_and_extra_ones_dropped() {
        let short =
            against_gold("Ann triples them, so she has 15 * 3 = 45 pencils.\nThe answer is 45");
        assert_eq!(fixed(&short), ("[1]".into(), against_gold("").solution));
        let long = against_gold(
            "Ann triples them, so she has 15 * 3 = 45 pencils.\nAnn gets 12 more, so she has 45 + 12 = 57 pencils.\nAnn doubles them, so she has 57 * 2 = 114 pencils.\nThe answer is 114",
        );
        assert_eq!(fixed(&long), ("[2]".into(), against_gold("").solution));
        // No answer line: the last step is where it goes wrong; the answer is added.
        let unfinished = against_gold(
            "Ann triples them, so she has 15 * 3 = 45 pencils.\nAnn gets 12 more, so she has 45 + 12 = 57 pencils.",
        );
        assert_eq!(
            fixed(&unfinished),
            ("[1]".into(), against_gold("").solution)
        );
    }
}
