//! The `arith` teacher: exact, offline, for arithmetic word problems.
//!
//! It reads every `a op b = c` of a prediction's steps and, like a teacher shown the gold
//! solution, lines them up with the gold solution's equations. A step is right when its
//! arithmetic is, its operands are numbers it may use (the problem's, the gold solution's
//! operands that no gold step computes, and the gold results reached so far) and its result
//! is the gold solution's next value (or a later one: another method that merges steps is
//! right too); the answer line is right when it gives the gold answer. The first step that is
//! not is the first wrong step.
//!
//! The rewrite keeps every byte it can: from that step on, a step whose operands (with the
//! corrected values carried in) reach the gold value gets only its numbers corrected; a step
//! that misreads the problem (a wrong number or operation) becomes the gold step; steps the
//! prediction skipped are inserted before the answer line and steps past the gold solution
//! are dropped. A gold solution without equations leaves only the prediction to check: its
//! results and its first operands, as [`first_wrong_step`] does.

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

/// The number an answer line gives, with its span in `line`.
fn answer_number(line: &str) -> Option<Number> {
    let at = line.rfind(ANSWER_MARKER)?;
    let said = *numbers(&line[at..]).first()?;
    Some(Number {
        start: at + said.start,
        end: at + said.end,
        ..said
    })
}

/// The gold solution as the teacher reads it: its equations in order, each with its line,
/// the answer, and its operands that no step computes (a step may use them: `* 2` for
/// "doubles"; a result only once the prediction has reached it).
struct Gold<'a> {
    steps: Vec<(&'a str, f64)>,
    answer: f64,
    answer_line: Option<&'a str>,
    givens: Vec<f64>,
}

impl<'a> Gold<'a> {
    /// `None` when the solution has no equation to line up with.
    fn read(solution: &'a str) -> Option<Self> {
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
struct Walk<'a> {
    gold: Gold<'a>,
    /// Numbers an operand may be: the problem's, the gold solution's givens, the gold
    /// results reached so far.
    known: Vec<f64>,
    /// The next gold step to reach.
    next: usize,
}

impl<'a> Walk<'a> {
    fn start(case: &'a Case) -> Option<Self> {
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
    fn right(&self, eq: &Equation, operands: &[f64], c: f64) -> Option<usize> {
        let usable = operands
            .iter()
            .all(|&v| self.known.iter().any(|&k| same(k, v)));
        (usable && same(c, eq.eval(operands)))
            .then(|| self.gold.reaches(c, self.next))
            .flatten()
    }

    /// Gold step `t` is reached: its value may be used from now on.
    fn reached(&mut self, t: usize) {
        self.known.push(self.gold.steps[t].1);
        self.next = t + 1;
    }

    /// The gold steps not reached yet, as lines.
    fn missing(&self) -> impl Iterator<Item = String> + '_ {
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

fn first_error(case: &Case) -> Option<usize> {
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
fn corrected_against(case: &Case, k: usize, mut walk: Walk) -> String {
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
fn corrected_alone(case: &Case, k: usize) -> String {
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

pub struct Arith;

impl Teacher for Arith {
    fn locate(&self, case: &Case) -> Result<String, TeacherError> {
        Ok(locate_reply(first_error(case)))
    }

    fn rewrite(&self, case: &Case, k: usize, _prefix: &str) -> Result<String, TeacherError> {
        if k >= steps(&case.prediction).len() {
            return Ok(String::new());
        }
        Ok(match Walk::start(case) {
            Some(walk) => corrected_against(case, k, walk),
            None => corrected_alone(case, k),
        })
    }

    fn name(&self) -> String {
        "arith".into()
    }

    /// 2: steps lined up with the gold solution (1 checked the prediction alone).
    fn revision(&self) -> u32 {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{Fidelity, TaskKind};
    use crate::teacher::minimum_edit::{Outcome, Sample, judge};

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

    fn against_gold(prediction: &str) -> Case {
        Case {
            problem: "Ann has 15 pencils. Then she triples the number of pencils she has. Then she gets 12 more pencils. How many pencils does Ann have now?".into(),
            solution: "Ann triples them, so she has 15 * 3 = 45 pencils.\nAnn gets 12 more, so she has 45 + 12 = 57 pencils.\nThe answer is 57".into(),
            prediction: prediction.into(),
        }
    }

    /// The located step and the whole fix of an [`against_gold`] case, through the
    /// minimum-edit protocol; the fix must reach that gold solution's answer.
    fn fixed(c: &Case) -> (String, String) {
        let sample = Sample {
            case: c.clone(),
            answer: format(Gold::read(&c.solution).expect("a gold solution").answer),
        };
        let Outcome::Record(r) =
            judge(&Arith, TaskKind::Math, &sample, Fidelity::Corrected).unwrap()
        else {
            panic!("dropped: {}", c.prediction)
        };
        assert!(r.is_correct, "{}", r.fix_pred);
        (format!("[{}]", r.error_step), r.fix_pred)
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
