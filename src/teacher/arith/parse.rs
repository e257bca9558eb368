//! Reading a line as the `arith` teacher does: its numbers (with their byte spans, so a
//! rewrite can replace them in place), the `a op b (op …) = c` equation it states, and the
//! number an answer line gives; with the tolerance two values count as the same under and
//! the way a corrected value is written back.

use crate::tasks::answer::ANSWER_MARKER;

/// A number in a line: its value and byte span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Number {
    pub(super) value: f64,
    pub(super) start: usize,
    pub(super) end: usize,
}

/// `a op b (op …) = c` found in a line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Equation {
    pub(super) operands: Vec<Number>,
    pub(super) ops: Vec<char>,
    pub(super) c: Number,
}

impl Equation {
    pub(super) fn first(&self) -> Number {
        self.operands[0]
    }

    /// The value of the left side with `values` for the operands (× and ÷ before + and −).
    pub(super) fn eval(&self, values: &[f64]) -> f64 {
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

    pub(super) fn values(&self) -> Vec<f64> {
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

pub(super) fn equation(line: &str) -> Option<Equation> {
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

pub(super) fn same(x: f64, y: f64) -> bool {
    (x - y).abs() <= 1e-6 * (1.0 + y.abs())
}

pub(super) fn format(x: f64) -> String {
    if x.fract().abs() < 1e-9 && x.abs() < 1e15 {
        format!("{}", x.round() as i64)
    } else {
        format!("{:.4}", x).trim_end_matches('0').to_string()
    }
}

pub(super) fn numbers(line: &str) -> Vec<Number> {
    tokens(line)
        .into_iter()
        .filter_map(|t| match t {
            Token::Num(n) => Some(n),
            _ => None,
        })
        .collect()
}

pub(super) fn values(numbers: &[Number]) -> Vec<f64> {
    numbers.iter().map(|n| n.value).collect()
}

/// The number an answer line gives, with its span in `line`.
pub(super) fn answer_number(line: &str) -> Option<Number> {
    let at = line.rfind(ANSWER_MARKER)?;
    let said = *numbers(&line[at..]).first()?;
    Some(Number {
        start: at + said.start,
        end: at + said.end,
        ..said
    })
}

#[cfg(test)]
mod tests {
    use super::{equation, format};

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
