//! The minimum-edit protocol (docs/method.md, steps 2 and 5): a correct prediction is recorded as
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

use super::solution::{prefix, steps};
use super::{Case, Teacher, TeacherError};
use crate::tasks::answer::{extract_answer, is_correct};
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

/// One prediction to judge, with its task's gold answer; read from a map with `problem` (or
/// `question`, as step 1 names it), `solution`, `prediction` and `answer` — taken from the
/// solution's answer line when absent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SampleFields")]
pub struct Sample {
    pub case: Case,
    pub answer: String,
}

#[derive(Deserialize)]
struct SampleFields {
    problem: Option<String>,
    question: Option<String>,
    solution: String,
    prediction: String,
    answer: Option<String>,
}

impl TryFrom<SampleFields> for Sample {
    type Error = String;

    fn try_from(f: SampleFields) -> Result<Self, String> {
        let problem = f.problem.or(f.question).ok_or("missing field `problem`")?;
        let answer = f
            .answer
            .or_else(|| extract_answer(&f.solution))
            .ok_or("no `answer` and no answer line in `solution`")?;
        Ok(Self {
            case: Case {
                problem,
                solution: f.solution,
                prediction: f.prediction,
            },
            answer,
        })
    }
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

/// The records of `outcomes` by `teacher` (its name), the dropped samples logged (`-v`).
pub fn records(teacher: &str, outcomes: Vec<Outcome>) -> Vec<EditRecord> {
    let mut records = Vec::new();
    let mut dropped = 0;
    for (i, o) in outcomes.into_iter().enumerate() {
        match o {
            Outcome::Record(r) => records.push(r),
            Outcome::Dropped { reply } => {
                dropped += 1;
                tracing::debug!(
                    "minimum_edit: sample {i} dropped: the teacher named no usable step twice (last reply {reply:?})"
                );
            }
        }
    }
    tracing::info!(
        "minimum_edit ({teacher}): {} records, {dropped} dropped (no usable step named twice; -v lists them)",
        records.len()
    );
    records
}

/// Run the protocol on one sample.
pub fn judge(
    teacher: &dyn Teacher,
    kind: TaskKind,
    sample: &Sample,
    fidelity: Fidelity,
) -> Result<Outcome, TeacherError> {
    Ok(
        judge_all(teacher, kind, std::slice::from_ref(sample), fidelity)?
            .pop()
            .expect("one outcome per sample"),
    )
}

/// Run the protocol on every sample, asking the teacher each question for all samples at
/// once (a model teacher batches them); outcomes in sample order.
pub fn judge_all(
    teacher: &dyn Teacher,
    kind: TaskKind,
    samples: &[Sample],
    fidelity: Fidelity,
) -> Result<Vec<Outcome>, TeacherError> {
    let record = |s: &Sample, error_step: i64, fix_pred: String, is_correct: bool| {
        Outcome::Record(EditRecord {
            question: s.case.problem.clone(),
            solution: s.case.solution.clone(),
            prediction: s.case.prediction.clone(),
            error_step,
            fix_pred,
            is_correct,
        })
    };
    let mut outcomes: Vec<Option<Outcome>> = samples.iter().map(|_| None).collect();
    let mut wrong = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if is_correct(kind, &s.case.prediction, &s.answer, fidelity) {
            outcomes[i] = Some(record(s, -1, s.case.prediction.clone(), true));
        } else {
            wrong.push(i);
        }
    }
    let n_steps = |i: usize| steps(&samples[i].case.prediction).len() as i64;
    let usable = |i: usize, step: Option<i64>| step.is_some_and(|k| (0..n_steps(i)).contains(&k));

    // Locate; in corrected fidelity, ask again once where no usable step came back.
    let locate = |which: &[usize]| -> Result<Vec<(String, Option<i64>)>, TeacherError> {
        let cases: Vec<&Case> = which.iter().map(|&i| &samples[i].case).collect();
        Ok(teacher
            .locate_all(&cases)?
            .into_iter()
            .map(|reply| {
                let step = parse_locate(&reply, fidelity);
                (reply, step)
            })
            .collect())
    };
    let mut located = locate(&wrong)?;
    if fidelity == Fidelity::Corrected {
        let again: Vec<usize> = (0..wrong.len())
            .filter(|&j| !usable(wrong[j], located[j].1))
            .collect();
        let retried = locate(&again.iter().map(|&j| wrong[j]).collect::<Vec<_>>())?;
        for (j, answer) in again.into_iter().zip(retried) {
            located[j] = answer;
        }
    }

    // Rewrite from the located step, with the steps before it pre-filled.
    let mut jobs = Vec::new();
    for (&i, (reply, step)) in wrong.iter().zip(&located) {
        if fidelity == Fidelity::Corrected && !usable(i, *step) {
            outcomes[i] = Some(Outcome::Dropped {
                reply: reply.clone(),
            });
            continue;
        }
        let step = step.expect("paper fidelity always names a step; corrected checked above");
        // Paper: −1 pre-fills all but the last step; past the end, the fix is empty.
        let k = if step < 0 { n_steps(i) - 1 } else { step };
        if k >= n_steps(i) {
            outcomes[i] = Some(record(&samples[i], step, String::new(), false));
            continue;
        }
        let k = k as usize;
        jobs.push((i, step, k, prefix(&samples[i].case.prediction, k)));
    }
    let asks: Vec<(&Case, usize, &str)> = jobs
        .iter()
        .map(|(i, _, k, p)| (&samples[*i].case, *k, p.as_str()))
        .collect();
    let continuations = teacher.rewrite_all(&asks)?;
    for ((i, step, _, prefix), continuation) in jobs.into_iter().zip(continuations) {
        let continuation = continuation.trim();
        let mut fix = if prefix.is_empty() {
            continuation.to_string()
        } else {
            format!("{prefix}\n{continuation}")
        };
        if kind == TaskKind::Qa && fix.ends_with('.') {
            fix.pop();
        }
        let correct = is_correct(kind, &fix, &samples[i].answer, fidelity);
        outcomes[i] = Some(record(&samples[i], step, fix, correct));
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every sample has an outcome"))
        .collect())
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
        // Wrong reasoning with right arithmetic, and a gold solution without equations to
        // line it up with: arith says "correct".
        let mut s = sample("He has 12 - 5 = 7 apples.\nThe answer is 7");
        s.case.solution = "He ends with seventeen.\nThe answer is 17".into();
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

    #[test]
    fn a_sample_reads_from_step_one_records_and_finds_its_answer() {
        let s: Sample = serde_json::from_value(serde_json::json!({
            "question": "Q", "solution": "s\nThe answer is 4", "prediction": "p", "extra": 1
        }))
        .unwrap();
        assert_eq!((s.case.problem.as_str(), s.answer.as_str()), ("Q", "4"));
        let e = serde_json::from_value::<Sample>(serde_json::json!({
            "problem": "Q", "solution": "no answer line", "prediction": "p"
        }))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no `answer` and no answer line in `solution`"
        );
        let e = serde_json::from_value::<Sample>(serde_json::json!({"problem": "Q"})).unwrap_err();
        assert_eq!(e.to_string(), "missing field `solution`");
    }
}
