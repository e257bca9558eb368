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
//!
//! The teacher is in three parts: reading a line's numbers and equation (`parse.rs`), finding
//! the first wrong step (`judge.rs`) and the minimal rewrite from there (`rewrite.rs`).

mod judge;
mod parse;
mod rewrite;

use super::solution::{locate_reply, steps};
use super::{Case, Teacher, TeacherError};
pub use judge::first_wrong_step;
use judge::{Walk, first_error};
use rewrite::{corrected_against, corrected_alone};

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

/// Cases the tests of every part share.
#[cfg(test)]
mod tests {
    use super::judge::Gold;
    use super::parse::format;
    use super::{Arith, Case};
    use crate::tasks::{Fidelity, TaskKind};
    use crate::teacher::minimum_edit::{Outcome, Sample, judge};

    pub(super) fn case(prediction: &str) -> Case {
        Case {
            problem: "Tom has 12 apples. Then he gets 5 more apples. Then he doubles them.".into(),
            solution: String::new(),
            prediction: prediction.into(),
        }
    }

    pub(super) fn against_gold(prediction: &str) -> Case {
        Case {
            problem: "Ann has 15 pencils. Then she triples the number of pencils she has. Then she gets 12 more pencils. How many pencils does Ann have now?".into(),
            solution: "Ann triples them, so she has 15 * 3 = 45 pencils.\nAnn gets 12 more, so she has 45 + 12 = 57 pencils.\nThe answer is 57".into(),
            prediction: prediction.into(),
        }
    }

    /// The located step and the whole fix of an [`against_gold`] case, through the
    /// minimum-edit protocol; the fix must reach that gold solution's answer.
    pub(super) fn fixed(c: &Case) -> (String, String) {
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
}
