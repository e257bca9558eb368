//! The teacher and the GRM side by side on the same samples (RLMEC steps 2 and 5): does the
//! GRM name the teacher's first wrong step, how many of its rewrites are correct, and how
//! far its fixes are from the predictions compared with the teacher's.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::align::{Mode, align};
use crate::teacher::arith::first_wrong_step;
use crate::tokenize::TextTokenizer;

/// Counts over the GRM's records, matched to the teacher's by problem and prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct EditComparison {
    /// Records each side judged (the teacher may have seen more samples than the GRM).
    pub teacher_records: usize,
    pub grm_records: usize,
    /// Wrong predictions the teacher located and fixed correctly.
    pub teacher_fixed: usize,
    /// Wrong predictions the GRM located and fixed correctly.
    pub grm_fixed: usize,
    /// GRM records whose prediction the teacher fixed (the base of `same_first_error`).
    pub compared: usize,
    /// Of those, how many the GRM located at the teacher's first wrong step.
    pub same_first_error: usize,
    /// Edit distance of each correct fix from its prediction, teacher's and GRM's.
    pub teacher_distances: Vec<usize>,
    pub grm_distances: Vec<usize>,
    /// What the distances count: `tokens` (the run's tokenizer) or `words`.
    pub unit: &'static str,
    /// Math runs: correct fixes (teacher's, GRM's) in which the `arith` checker still finds
    /// a wrong calculation — right final answer, wrong arithmetic on the way.
    pub wrong_arithmetic: Option<(usize, usize)>,
    /// One row per GRM record: both verdicts and distances (the report's `edits.jsonl`).
    pub rows: Vec<Value>,
}

/// A record's field as text ("" when missing).
fn text<'a>(r: &'a Value, key: &str) -> &'a str {
    r[key].as_str().unwrap_or("")
}

/// Whether a record is a wrong prediction with a correct fix.
fn fixed(r: &Value) -> bool {
    r["is_correct"].as_bool() == Some(true) && r["error_step"].as_i64().is_some_and(|s| s != -1)
}

/// Compare `teacher` and `grm` edit records (`{question, prediction, error_step, fix_pred,
/// is_correct}`); distances count tokens of `tokenizer`, or words without one; `math`
/// also checks each correct fix's arithmetic.
pub fn compare_edits(
    teacher: &[Value],
    grm: &[Value],
    tokenizer: Option<&TextTokenizer>,
    math: bool,
) -> EditComparison {
    let wrong_arithmetic = |records: &[Value]| {
        records
            .iter()
            .filter(|r| fixed(r))
            .filter(|r| first_wrong_step(text(r, "question"), text(r, "fix_pred")).is_some())
            .count()
    };
    let units = |s: &str| -> Vec<i64> {
        match tokenizer.and_then(|t| t.encode(s).ok()) {
            Some(ids) => ids,
            // Words as ids: equal words compare equal, which is all the alignment needs.
            None => s
                .split_whitespace()
                .map(|w| {
                    w.bytes()
                        .fold(0i64, |h, b| h.wrapping_mul(131).wrapping_add(b as i64))
                })
                .collect(),
        }
    };
    let distance = |r: &Value| {
        fixed(r).then(|| {
            align(
                &units(text(r, "prediction")),
                &units(text(r, "fix_pred")),
                Mode::Optimal,
            )
            .distance
        })
    };
    let key = |r: &'_ Value| {
        (
            text(r, "question").to_owned(),
            text(r, "prediction").to_owned(),
        )
    };
    // Each teacher record with its distance, aligned once.
    let teacher_judged: Vec<(&Value, Option<usize>)> =
        teacher.iter().map(|t| (t, distance(t))).collect();
    let by_sample: HashMap<_, _> = teacher_judged
        .iter()
        .map(|&(t, d)| (key(t), (t, d)))
        .collect();
    let (mut compared, mut same_first_error) = (0, 0);
    let mut grm_distances = Vec::new();
    let mut rows = Vec::with_capacity(grm.len());
    for g in grm {
        let (t, teacher_distance) = by_sample.get(&key(g)).copied().unzip();
        let step = |r: Option<&Value>| r.and_then(|r| r["error_step"].as_i64());
        if t.is_some_and(fixed) {
            compared += 1;
            same_first_error += usize::from(step(t) == step(Some(g)));
        }
        let grm_distance = distance(g);
        grm_distances.extend(grm_distance);
        rows.push(json!({
            "question": text(g, "question"),
            "prediction": text(g, "prediction"),
            "teacher_step": step(t),
            "grm_step": step(Some(g)),
            "teacher_fixed": t.is_some_and(fixed),
            "grm_fixed": fixed(g),
            "teacher_distance": teacher_distance.flatten(),
            "grm_distance": grm_distance,
        }));
    }
    EditComparison {
        teacher_records: teacher.len(),
        grm_records: grm.len(),
        teacher_fixed: teacher.iter().filter(|r| fixed(r)).count(),
        grm_fixed: grm.iter().filter(|r| fixed(r)).count(),
        compared,
        same_first_error,
        teacher_distances: teacher_judged.iter().filter_map(|&(_, d)| d).collect(),
        grm_distances,
        unit: if tokenizer.is_some() {
            "tokens"
        } else {
            "words"
        },
        wrong_arithmetic: math.then(|| (wrong_arithmetic(teacher), wrong_arithmetic(grm))),
        rows,
    }
}

impl EditComparison {
    /// Share of teacher-fixed predictions the GRM located at the same step.
    pub fn same_share(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.same_first_error as f64 / self.compared as f64)
    }

    /// The median of `distances` as text (`-` when there are none).
    pub fn median_text(distances: &[usize]) -> String {
        if distances.is_empty() {
            return "-".into();
        }
        let mut d = distances.to_vec();
        d.sort_unstable();
        let mid = d.len() / 2;
        let median = if d.len() % 2 == 1 {
            d[mid] as f64
        } else {
            (d[mid - 1] + d[mid]) as f64 / 2.0
        };
        median.to_string()
    }

    /// The counts as one line (printed at the end of the procedure scripts).
    pub fn line(&self) -> String {
        let share = self
            .same_share()
            .map(|s| format!("{:.1}%", s * 100.0))
            .unwrap_or_else(|| "-".into());
        format!(
            "GRM vs teacher: same first wrong step on {} of {} teacher-fixed predictions ({share}); \
             correct fixes: teacher {}, GRM {}",
            self.same_first_error, self.compared, self.teacher_fixed, self.grm_fixed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(q: &str, pred: &str, step: i64, fix: &str, ok: bool) -> Value {
        json!({"question": q, "prediction": pred, "error_step": step, "fix_pred": fix,
               "is_correct": ok, "solution": "s"})
    }

    #[test]
    fn counts_same_steps_fixes_and_word_distances() {
        let teacher = [
            record("q1", "a b c", 1, "a x c", true),
            record("q2", "d e", 0, "f e", true),
            record("q3", "g h", -1, "g h", true),
            record("q4", "i j", 0, "", false),
        ];
        let grm = [
            record("q1", "a b c", 1, "a y c", true), // same step, fixed, distance 1
            record("q2", "d e", 1, "d e z w", true), // other step, fixed, distance 2
            record("q3", "g h", -1, "g h", true),    // correct prediction: not a fix
            record("q4", "i j", 0, "k", false),      // teacher failed: not compared
        ];
        let c = compare_edits(&teacher, &grm, None, false);
        assert_eq!((c.teacher_fixed, c.grm_fixed), (2, 2));
        assert_eq!(c.wrong_arithmetic, None);
        assert_eq!((c.compared, c.same_first_error), (2, 1));
        assert_eq!(c.teacher_distances, [1, 1]);
        assert_eq!(c.grm_distances, [1, 2]);
        assert_eq!(c.same_share(), Some(0.5));
        assert_eq!(c.rows.len(), 4);
        assert_eq!(c.rows[1]["teacher_step"], 0);
        assert_eq!(c.rows[1]["grm_step"], 1);
        assert_eq!(c.rows[3]["grm_distance"], Value::Null);
        assert_eq!(EditComparison::median_text(&[3, 1, 2, 10]), "2.5");
        assert_eq!(EditComparison::median_text(&[4]), "4");
        assert_eq!(EditComparison::median_text(&[]), "-");
        assert_eq!((c.teacher_records, c.grm_records), (4, 4));
        assert_eq!(c.rows[0]["teacher_distance"], 1);
        assert!(c.line().contains("same first wrong step on 1 of 2"));
    }

    #[test]
    fn math_fixes_with_the_right_answer_but_wrong_arithmetic_are_counted() {
        let q = "Lena has 15 apples. Then she triples them. Then she doubles them.";
        let pred = "She has 15 * 3 = 51 apples.\nShe has 51 * 2 = 102 apples.\nThe answer is 102";
        let good = "She has 15 * 3 = 45 apples.\nShe has 45 * 2 = 90 apples.\nThe answer is 90";
        // What the GRM wrote in a real run: the gold answer, reached through 15 * 3 = 55.
        let bad = "She has 15 * 3 = 55 apples.\nShe has 55 * 2 = 90 apples.\nThe answer is 90";
        let teacher = [record(q, pred, 0, good, true)];
        let grm = [record(q, pred, 0, bad, true)];
        let c = compare_edits(&teacher, &grm, None, true);
        assert_eq!(c.wrong_arithmetic, Some((0, 1)));
    }
}
