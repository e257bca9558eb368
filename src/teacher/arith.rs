//! The `arith` teacher: exact, offline, for arithmetic word problems.
//!
//! It reads every `a op b = c` of a prediction's steps. The first wrong step is the first
//! whose result is not `a op b`, or whose first operand is a number that is neither in the
//! problem nor an earlier result (it contradicts what came before), else the answer line
//! when it disagrees with the last result. The rewrite is the smallest edit: that result
//! (or operand) corrected, the corrected values carried through the later steps and the
//! answer line, every other byte kept.

use std::collections::HashMap;

use super::steps::{locate_reply, steps};
use super::{Case, Teacher, TeacherError};
use crate::tasks::answer::ANSWER_MARKER;

/// A number in a line: its value and byte span.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Number {
    value: f64,
    start: usize,
    end: usize,
}

/// `a op b (op …) = c` found in a line.
#[derive(Debug, Clone, PartialEq)]
struct Equation {
    operands: Vec<Number>,
    ops: Vec<char>,
    c: Number,
}

impl Equation {
    fn first(&self) -> Number {
        self.operands[0]
    }

    /// The value of the left side with `values` for the operands (× and ÷ before + and −).
    fn eval(&self, values: &[f64]) -> f64 {
        let mut terms = vec![values[0]];
        let mut signs = vec![1.0];
        for (op, &v) in self.ops.iter().zip(&values[1..]) {
            match op {
                '+' => {
                    terms.push(v);
                    signs.push(1.0);
                }
                '-' => {
                    terms.push(v);
                    signs.push(-1.0);
                }
                '/' => *terms.last_mut().expect("a term") /= v,
                _ => *terms.last_mut().expect("a term") *= v,
            }
        }
        terms.iter().zip(&signs).map(|(t, s)| t * s).sum()
    }

    fn values(&self) -> Vec<f64> {
        self.operands.iter().map(|n| n.value).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Num(Number),
    Op(char),
    Eq,
    Other,
}

fn tokens(line: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len()
                && (chars[j].1.is_ascii_digit()
                    || (matches!(chars[j].1, ',' | '.')
                        && chars.get(j + 1).is_some_and(|n| n.1.is_ascii_digit())))
            {
                j += 1;
            }
            let end = chars.get(j).map_or(line.len(), |n| n.0);
            let text: String = line[at..end].chars().filter(|&c| c != ',').collect();
            out.push(Token::Num(Number {
                value: text.parse().unwrap_or(f64::NAN),
                start: at,
                end,
            }));
            i = j;
            continue;
        }
        out.push(match c {
            '+' | '-' | '*' | '/' | '×' | 'x' if is_operator(&chars, i) => Token::Op(c),
            '=' => Token::Eq,
            c if c.is_whitespace() || c == '$' => {
                i += 1;
                continue;
            }
            _ => Token::Other,
        });
        i += 1;
    }
    out
}

/// `x` is an operator only standing alone (`3 x 4`), not inside a word.
fn is_operator(chars: &[(usize, char)], i: usize) -> bool {
    if chars[i].1 != 'x' {
        return true;
    }
    let alone = |k: Option<&(usize, char)>| k.is_none_or(|c| c.1.is_whitespace());
    alone(i.checked_sub(1).and_then(|k| chars.get(k))) && alone(chars.get(i + 1))
}

fn equation(line: &str) -> Option<Equation> {
    let t = tokens(line);
    let eq = t.iter().position(|x| *x == Token::Eq)?;
    let Some(Token::Num(c)) = t.get(eq + 1) else {
        return None;
    };
    // The longest `num (op num)+` chain ending right before `=`.
    let mut operands = Vec::new();
    let mut ops = Vec::new();
    let mut i = eq;
    while i >= 1 {
        let Token::Num(n) = t[i - 1] else { break };
        operands.push(n);
        if i >= 3
            && let Token::Op(op) = t[i - 2]
            && matches!(t[i - 3], Token::Num(_))
        {
            ops.push(op);
            i -= 2;
        } else {
            break;
        }
    }
    if ops.is_empty() {
        return None;
    }
    operands.reverse();
    ops.reverse();
    Some(Equation {
        operands,
        ops,
        c: *c,
    })
}

fn same(x: f64, y: f64) -> bool {
    (x - y).abs() <= 1e-6 * (1.0 + y.abs())
}

fn format(x: f64) -> String {
    if x.fract().abs() < 1e-9 && x.abs() < 1e15 {
        format!("{}", x.round() as i64)
    } else {
        format!("{:.4}", x).trim_end_matches('0').to_string()
    }
}

fn numbers(line: &str) -> Vec<Number> {
    tokens(line)
        .into_iter()
        .filter_map(|t| match t {
            Token::Num(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// The problem's numbers and the results so far are what an operand may be; the first
/// operand of a later step that is neither contradicts what came before.
fn from_nowhere(eq: &Equation, known: &[f64], results: &[f64]) -> bool {
    !results.is_empty()
        && !known
            .iter()
            .chain(results)
            .any(|&v| same(v, eq.first().value))
}

fn values(numbers: &[Number]) -> Vec<f64> {
    numbers.iter().map(|n| n.value).collect()
}

/// Where the prediction first goes wrong.
fn first_error(case: &Case) -> Option<usize> {
    let known = values(&numbers(&case.problem));
    let mut results: Vec<f64> = Vec::new();
    for (k, line) in steps(&case.prediction).iter().enumerate() {
        if let Some(eq) = equation(line) {
            if from_nowhere(&eq, &known, &results) || !same(eq.c.value, eq.eval(&eq.values())) {
                return Some(k);
            }
            results.push(eq.c.value);
        } else if let Some(at) = line.rfind(ANSWER_MARKER) {
            let said = numbers(&line[at..]).first().map(|n| n.value);
            if let (Some(said), Some(&last)) = (said, results.last())
                && !same(said, last)
            {
                return Some(k);
            }
        }
    }
    None
}

/// The first step of `text`, a solution of `problem`, that the `arith` teacher would call
/// wrong; `None` when every calculation checks out. Judges a fix's arithmetic, which a
/// correct final answer does not guarantee.
pub fn first_wrong_step(problem: &str, text: &str) -> Option<usize> {
    first_error(&Case {
        problem: problem.into(),
        solution: String::new(),
        prediction: text.into(),
    })
}

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

/// The prediction's steps from `k` on, corrected.
fn corrected_from(case: &Case, k: usize) -> String {
    let lines = steps(&case.prediction);
    let known = values(&numbers(&case.problem));
    let results: Vec<f64> = lines[..k]
        .iter()
        .filter_map(|l| equation(l))
        .map(|e| e.c.value)
        .collect();
    let mut last_result = results.last().copied();
    // Wrong value (bits) → corrected value, carried into every later number.
    let mut corrected: HashMap<u64, f64> = HashMap::new();
    let carried = |n: Number, corrected: &HashMap<u64, f64>| {
        corrected.get(&n.value.to_bits()).map(|&v| (n, v))
    };
    let mut out = Vec::new();
    for (j, line) in lines.iter().enumerate().skip(k) {
        let Some(eq) = equation(line) else {
            // Non-equation lines (the answer line too) carry corrected values.
            let mut edits: Vec<(Number, f64)> = numbers(line)
                .into_iter()
                .filter_map(|n| carried(n, &corrected))
                .collect();
            if let (Some(at), Some(last)) = (line.rfind(ANSWER_MARKER), last_result)
                && let Some(said) = numbers(&line[at..]).first()
            {
                let said = Number {
                    start: at + said.start,
                    end: at + said.end,
                    ..*said
                };
                edits.retain(|(n, _)| n.start != said.start);
                edits.push((said, last));
            }
            out.push(rewrite_numbers(line, edits));
            continue;
        };
        let mut values: Vec<f64> = eq
            .operands
            .iter()
            .map(|&n| carried(n, &corrected).map_or(n.value, |(_, v)| v))
            .collect();
        if j == k
            && let Some(prev) = last_result
            && from_nowhere(&eq, &known, &results)
        {
            values[0] = prev;
        }
        let c = eq.eval(&values);
        // The equation's numbers, then the line's other numbers carried.
        let mut edits: Vec<(Number, f64)> = eq.operands.iter().copied().zip(values).collect();
        edits.push((eq.c, c));
        let others: Vec<(Number, f64)> = numbers(line)
            .into_iter()
            .filter(|n| !edits.iter().any(|(e, _)| e.start == n.start))
            .filter_map(|n| carried(n, &corrected))
            .collect();
        edits.extend(others);
        out.push(rewrite_numbers(line, edits));
        if !same(eq.c.value, c) {
            corrected.insert(eq.c.value.to_bits(), c);
        }
        last_result = Some(c);
    }
    out.join("\n")
}

pub struct Arith;

impl Teacher for Arith {
    fn locate(&self, case: &Case) -> Result<String, TeacherError> {
        Ok(locate_reply(first_error(case)))
    }

    fn rewrite(&self, case: &Case, k: usize, _prefix: &str) -> Result<String, TeacherError> {
        if k >= steps(&case.prediction).len() {
            return Ok(String::new());
        }
        Ok(corrected_from(case, k))
    }

    fn name(&self) -> String {
        "arith".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(prediction: &str) -> Case {
        Case {
            problem: "Tom has 12 apples. Then he gets 5 more apples. Then he doubles them.".into(),
            solution: String::new(),
            prediction: prediction.into(),
        }
    }

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
    fn reads_money_commas_and_x() {
        let eq = equation("She makes 9 x $2 = $1,8 a day").unwrap();
        assert_eq!((eq.values(), eq.ops.clone()), (vec![9.0, 2.0], vec!['x']));
        let chain = equation("In all 41 + 13 * 2 - 4 = 63 shells").unwrap();
        assert_eq!(chain.values(), vec![41.0, 13.0, 2.0, 4.0]);
        assert_eq!(chain.eval(&chain.values()), 63.0);
        assert!(equation("extra 3 = 3").is_none());
        assert_eq!(format(2.5), "2.5");
        assert_eq!(format(34.0), "34");
    }
}
