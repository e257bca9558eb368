//! The minimum-edit protocol (RLMEC.md, steps 2 and 5): a correct prediction is recorded as
//! is; a wrong one gets two questions — *locate* the first wrong step, then *rewrite* from it
//! with the steps before it pre-filled — and becomes a `{question, solution, prediction,
//! error_step, fix_pred, is_correct}` record (the public code's field names).
//!
//! Corrected fidelity parses the whole step number of the locate reply (`[12]` → 12) and,
//! when the reply names no usable step, asks once more and then drops the record (logged).
//! `paper` fidelity reproduces the public code: any reply containing `correct` (also
//! `incorrect`) means −1, else the first digit; −1 pre-fills all but the last step, and a
//! step past the end gives an empty fix.

use serde::{Deserialize, Serialize};

use super::steps::{prefix, steps};
use super::{Case, Teacher, TeacherError};
use crate::tasks::answer::is_correct;
use crate::tasks::{Fidelity, TaskKind};

/// A teacher (or GRM) record, as the public code writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditRecord {
    pub question: String,
    pub solution: String,
    pub prediction: String,
    pub error_step: i64,
    pub fix_pred: String,
    pub is_correct: bool,
}

/// One prediction to judge, with its task's gold answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub case: Case,
    pub answer: String,
}

/// The step a locate reply names: `Some(-1)` for "correct", `None` when it names none.
pub fn parse_locate(reply: &str, fidelity: Fidelity) -> Option<i64> {
    match fidelity {
        Fidelity::Paper => {
            if reply.contains("correct") {
                return Some(-1);
            }
            reply
                .chars()
                .find(char::is_ascii_digit)
                .map(|d| i64::from(d.to_digit(10).expect("a digit")))
                .or(Some(-1))
        }
        Fidelity::Corrected => {
            let digits: String = reply
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            match digits.parse() {
                Ok(k) => Some(k),
                Err(_) if reply.trim().to_lowercase().trim_end_matches('.') == "correct" => {
                    Some(-1)
                }
                Err(_) => None,
            }
        }
    }
}

/// What became of a sample.
#[derive(Debug)]
pub enum Outcome {
    Record(EditRecord),
    /// Corrected fidelity: the teacher named no usable step twice.
    Dropped {
        reply: String,
    },
}

/// Run the protocol on one sample.
pub fn judge(
    teacher: &dyn Teacher,
    kind: TaskKind,
    sample: &Sample,
    fidelity: Fidelity,
) -> Result<Outcome, TeacherError> {
    let case = &sample.case;
    let record = |error_step: i64, fix_pred: String, is_correct: bool| {
        Outcome::Record(EditRecord {
            question: case.problem.clone(),
            solution: case.solution.clone(),
            prediction: case.prediction.clone(),
            error_step,
            fix_pred,
            is_correct,
        })
    };
    if is_correct(kind, &case.prediction, &sample.answer, fidelity) {
        return Ok(record(-1, case.prediction.clone(), true));
    }
    let n = steps(&case.prediction).len() as i64;
    let mut reply = teacher.locate(case)?;
    let mut step = parse_locate(&reply, fidelity);
    if fidelity == Fidelity::Corrected && !step.is_some_and(|k| (0..n).contains(&k)) {
        reply = teacher.locate(case)?;
        step = parse_locate(&reply, fidelity);
        if !step.is_some_and(|k| (0..n).contains(&k)) {
            return Ok(Outcome::Dropped { reply });
        }
    }
    let step = step.expect("paper fidelity always names a step; corrected checked above");
    // Paper: −1 pre-fills all but the last step; past the end, the fix is empty.
    let k = if step < 0 { n - 1 } else { step };
    let fix = if k >= n {
        String::new()
    } else {
        let k = k as usize;
        let prefix = prefix(&case.prediction, k);
        let continuation = teacher.rewrite(case, k, &prefix)?;
        let continuation = continuation.trim();
        let mut fix = if prefix.is_empty() {
            continuation.to_string()
        } else {
            format!("{prefix}\n{continuation}")
        };
        if kind == TaskKind::Qa && fix.ends_with('.') {
            fix.pop();
        }
        fix
    };
    let correct = is_correct(kind, &fix, &sample.answer, fidelity);
    Ok(record(step, fix, correct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teacher::arith::Arith;

    #[test]
    fn locate_replies_in_both_fidelities() {
        let c = Fidelity::Corrected;
        assert_eq!(parse_locate("[12]", c), Some(12));
        assert_eq!(parse_locate("The first error step is [3]", c), Some(3));
        assert_eq!(parse_locate("correct", c), Some(-1));
        assert_eq!(parse_locate("incorrect", c), None);
        assert_eq!(parse_locate("no idea", c), None);
        let p = Fidelity::Paper;
        assert_eq!(parse_locate("[12]", p), Some(1), "the first digit only");
        assert_eq!(parse_locate("step [2] is incorrect", p), Some(-1));
    }

    fn sample(prediction: &str) -> Sample {
        Sample {
            case: Case {
                problem: "Tom has 12 apples. Then he gets 5 more apples.".into(),
                solution: "Tom gets 5 more, so he has 12 + 5 = 17 apples.\nThe answer is 17".into(),
                prediction: prediction.into(),
            },
            answer: "17".into(),
        }
    }

    #[test]
    fn correct_predictions_short_circuit_and_wrong_ones_are_fixed() {
        let right = sample("He has 12 + 5 = 17 apples.\nThe answer is 17");
        let Outcome::Record(r) =
            judge(&Arith, TaskKind::Math, &right, Fidelity::Corrected).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r.error_step, r.is_correct, r.fix_pred.as_str()),
            (-1, true, right.case.prediction.as_str())
        );
        let wrong = sample("Tom starts with 12.\nHe has 12 + 5 = 18 apples.\nThe answer is 18");
        let Outcome::Record(r) =
            judge(&Arith, TaskKind::Math, &wrong, Fidelity::Corrected).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.error_step, 1);
        assert_eq!(
            r.fix_pred,
            "Tom starts with 12.\nHe has 12 + 5 = 17 apples.\nThe answer is 17"
        );
        assert!(r.is_correct);
    }

    #[test]
    fn an_unlocatable_error_is_dropped_or_kept_as_the_public_code() {
        // Wrong reasoning with right arithmetic: arith says "correct".
        let s = sample("He has 12 - 5 = 7 apples.\nThe answer is 7");
        assert!(matches!(
            judge(&Arith, TaskKind::Math, &s, Fidelity::Corrected).unwrap(),
            Outcome::Dropped { .. }
        ));
        let Outcome::Record(r) = judge(&Arith, TaskKind::Math, &s, Fidelity::Paper).unwrap() else {
            panic!()
        };
        assert_eq!(r.error_step, -1);
        assert!(!r.is_correct);
    }
}
