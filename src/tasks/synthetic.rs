//! A seeded generator of multi-step arithmetic word problems in the GSM8K style: one step per
//! solution line, each holding `a op b = c`, the last line `The answer is N` — small enough
//! for a tiny model to learn in minutes and to get wrong in ways the `arith` teacher can fix.

use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

use super::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
}

impl std::str::FromStr for Op {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "+" => Ok(Self::Add),
            "-" => Ok(Self::Sub),
            "*" => Ok(Self::Mul),
            other => Err(format!("unknown operation `{other}`: expected +, - or *")),
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
        })
    }
}

crate::serde_by_name!(Op);

/// Difficulty knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Difficulty {
    pub min_steps: usize,
    pub max_steps: usize,
    /// Operands of `+` and `-` and the start value are at most this.
    pub max_operand: i64,
    pub ops: Vec<Op>,
}

impl Default for Difficulty {
    fn default() -> Self {
        Self {
            min_steps: 2,
            max_steps: 4,
            max_operand: 50,
            ops: vec![Op::Add, Op::Sub, Op::Mul],
        }
    }
}

impl Difficulty {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_operand < 2 || self.min_steps > self.max_steps {
            return Err("need max_operand >= 2 and min_steps <= max_steps".into());
        }
        if self.ops.is_empty() {
            return Err("`ops` is empty: name at least one of +, - or *".into());
        }
        Ok(())
    }
}

/// The synthetic task as `task_synthetic` makes it: the split sizes, the seed that makes it
/// reproducible, and the difficulty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticOptions {
    pub n_train: usize,
    pub n_test: usize,
    pub seed: u64,
    #[serde(flatten)]
    pub difficulty: Difficulty,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        Self {
            n_train: 1000,
            n_test: 200,
            seed: 0,
            difficulty: Difficulty::default(),
        }
    }
}

const PEOPLE: [(&str, &str); 8] = [
    ("Tom", "he"),
    ("Ann", "she"),
    ("Ravi", "he"),
    ("Mia", "she"),
    ("Omar", "he"),
    ("Lena", "she"),
    ("Kenji", "he"),
    ("Sara", "she"),
];
const ITEMS: [&str; 8] = [
    "apples", "marbles", "stickers", "books", "coins", "shells", "pencils", "cards",
];
const TIMES: [&str; 3] = ["doubles", "triples", "quadruples"];

/// Results stay below this, so numbers stay short.
const CAP: i64 = 10_000;

fn one(rng: &mut ChaCha8Rng, d: &Difficulty) -> Problem {
    let (name, pronoun) = *PEOPLE.choose(rng).expect("non-empty");
    let item = *ITEMS.choose(rng).expect("non-empty");
    let mut value = rng.gen_range(2..=d.max_operand.max(2));
    let mut story = vec![format!("{name} has {value} {item}.")];
    let mut steps = Vec::new();
    let n = rng.gen_range(d.min_steps.max(1)..=d.max_steps.max(d.min_steps.max(1)));
    for _ in 0..n {
        let mut op = *d.ops.choose(rng).unwrap_or(&Op::Add);
        if op == Op::Sub && value < 2 || op == Op::Mul && value * 4 > CAP {
            op = Op::Add;
        }
        let (b, next, sentence, line) = match op {
            Op::Add => {
                let b = rng.gen_range(1..=d.max_operand.max(1));
                (
                    b,
                    value + b,
                    format!("Then {pronoun} gets {b} more {item}."),
                    format!(
                        "{name} gets {b} more, so {pronoun} has {value} + {b} = {} {item}.",
                        value + b
                    ),
                )
            }
            Op::Sub => {
                let b = rng.gen_range(1..value);
                (
                    b,
                    value - b,
                    format!("Then {pronoun} gives away {b} {item}."),
                    format!(
                        "{name} gives away {b}, so {pronoun} has {value} - {b} = {} {item}.",
                        value - b
                    ),
                )
            }
            Op::Mul => {
                let b = rng.gen_range(2..=4);
                let verb = TIMES[(b - 2) as usize];
                (
                    b,
                    value * b,
                    format!("Then {pronoun} {verb} the number of {item} {pronoun} has."),
                    format!(
                        "{name} {verb} them, so {pronoun} has {value} * {b} = {} {item}.",
                        value * b
                    ),
                )
            }
        };
        debug_assert!(b > 0);
        story.push(sentence);
        steps.push(line);
        value = next;
    }
    story.push(format!("How many {item} does {name} have now?"));
    steps.push(format!("The answer is {value}"));
    Problem {
        problem: story.join(" "),
        solution: steps.join("\n"),
        answer: value.to_string(),
    }
}

/// Draws in a row without a new problem after which a split's problem space counts as spent.
const GIVE_UP: usize = 10_000;

/// `n_train` and `n_test` distinct problems for `seed`; no test problem is a train problem.
pub fn splits(
    n_train: usize,
    n_test: usize,
    seed: u64,
    d: &Difficulty,
) -> (Vec<Problem>, Vec<Problem>) {
    let mut seen = HashSet::new();
    let mut draw = |stream: u64, n: usize| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        // Not reserved up front: `n` is the user's, and an absurd one (1e15) would abort the
        // process on the spot; the list grows only with the problems really drawn.
        let mut out = Vec::new();
        // Bounded: a tiny difficulty may not have `n` distinct problems. Past 50 draws per
        // problem, or after `GIVE_UP` draws in a row found nothing new (the space is spent,
        // whatever `n` asked), it stops with what it has.
        let mut misses = 0;
        for _ in 0..n.saturating_mul(50).max(100) {
            if out.len() == n || misses == GIVE_UP {
                break;
            }
            let p = one(&mut rng, d);
            if seen.insert(p.problem.clone()) {
                out.push(p);
                misses = 0;
            } else {
                misses += 1;
            }
        }
        if out.len() < n {
            tracing::warn!(
                "synthetic task: {} distinct problems for a split of {n} (this difficulty has no more)",
                out.len()
            );
        }
        out
    };
    let train = draw(0, n_train);
    let test = draw(1, n_test);
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_problem_space_ends_a_huge_split_at_once() {
        // One step of `+` with operands up to 2: few problems, whatever n asks.
        let d = Difficulty {
            min_steps: 1,
            max_steps: 1,
            max_operand: 2,
            ops: vec![Op::Add],
        };
        let (train, test) = splits(1 << 50, 1 << 50, 0, &d);
        // Every distinct problem there is (the wording varies too), then it stops.
        assert!((1..1000).contains(&train.len()), "{}", train.len());
        assert!(test.len() < 1000);
        assert_eq!(splits(1 << 50, 0, 0, &d).0, train, "deterministic");
    }

    #[test]
    fn deterministic_distinct_and_well_formed() {
        let d = Difficulty::default();
        let (train, test) = splits(200, 50, 7, &d);
        assert_eq!((train.len(), test.len()), (200, 50));
        assert_eq!(splits(200, 50, 7, &d), (train.clone(), test.clone()));
        let train_set: HashSet<&str> = train.iter().map(|p| p.problem.as_str()).collect();
        assert!(test.iter().all(|p| !train_set.contains(p.problem.as_str())));
        for p in train.iter().chain(&test) {
            let lines: Vec<&str> = p.solution.lines().collect();
            assert_eq!(
                lines.last().unwrap(),
                &format!("The answer is {}", p.answer)
            );
            for step in &lines[..lines.len() - 1] {
                // a op b = c, and it is right.
                let (lhs, rhs) = step.split_once(" = ").unwrap();
                let words: Vec<&str> = lhs.split_whitespace().collect();
                let (a, op, b) = (
                    words[words.len() - 3],
                    words[words.len() - 2],
                    words[words.len() - 1],
                );
                let (a, b): (i64, i64) = (a.parse().unwrap(), b.parse().unwrap());
                let c: i64 = rhs.split_whitespace().next().unwrap().parse().unwrap();
                let want = match op {
                    "+" => a + b,
                    "-" => a - b,
                    "*" => a * b,
                    _ => panic!("{step}"),
                };
                assert_eq!(c, want, "{step}");
            }
        }
    }

    #[test]
    fn knobs_shape_the_problems() {
        let d = Difficulty {
            min_steps: 5,
            max_steps: 5,
            max_operand: 9,
            ops: vec![Op::Add],
        };
        let (train, _) = splits(20, 0, 1, &d);
        for p in &train {
            assert_eq!(p.solution.lines().count(), 6);
            assert!(p.solution.lines().take(5).all(|l| l.contains(" + ")));
        }
    }

    #[test]
    fn options_name_their_ops_and_an_empty_list_is_an_error() {
        let o: SyntheticOptions =
            serde_json::from_value(serde_json::json!({"n_train": 3, "ops": ["+", "*"]})).unwrap();
        assert_eq!((o.n_train, o.n_test), (3, 200));
        assert_eq!(o.difficulty.ops, [Op::Add, Op::Mul]);
        assert!(o.difficulty.validate().is_ok());
        let e = serde_json::from_value::<SyntheticOptions>(serde_json::json!({"ops": ["/"]}));
        assert_eq!(
            e.unwrap_err().to_string(),
            "unknown operation `/`: expected +, - or *"
        );
        let none = Difficulty {
            ops: vec![],
            ..Difficulty::default()
        };
        assert!(none.validate().unwrap_err().contains("`ops` is empty"));
    }
}
