//! The `reference` teacher: offline, for multiple-choice QA, from the gold rationale
//! (docs/method.md, "Offline teachers"). The first wrong step is the first step naming a
//! wrong option, else the answer line; the fix keeps every step before it and finishes with
//! the gold rationale.

use super::solution::{locate_reply, steps};
use super::{Case, Teacher, TeacherError};
use crate::tasks::answer::{ANSWER_MARKER, extract_answer, is_correct};
use crate::tasks::{Fidelity, TaskKind};

/// The options listed one per line after `Options:` in the problem.
fn options(problem: &str) -> Vec<String> {
    problem
        .split_once("Options:")
        .map(|(_, list)| {
            list.lines()
                .map(|l| l.trim().to_lowercase())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `line` names `option` as a whole phrase.
fn names(line: &str, option: &str) -> bool {
    let line = line.to_lowercase();
    let bytes = line.as_bytes();
    line.match_indices(option).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + option.len()).copied();
        let boundary = |b: Option<u8>| b.is_none_or(|b| !b.is_ascii_alphanumeric());
        boundary(before) && boundary(after)
    })
}

fn first_error(case: &Case) -> Option<usize> {
    let gold = extract_answer(&case.solution)
        .unwrap_or_default()
        .to_lowercase();
    let wrong: Vec<String> = options(&case.problem)
        .into_iter()
        .filter(|o| *o != gold && !gold.contains(o.as_str()))
        .collect();
    let lines = steps(&case.prediction);
    if is_correct(TaskKind::Qa, &case.prediction, &gold, Fidelity::Corrected) {
        return None;
    }
    let answer_line = lines.iter().rposition(|l| l.contains(ANSWER_MARKER));
    lines
        .iter()
        .position(|l| wrong.iter().any(|o| names(l, o)))
        .or(answer_line)
        .or(Some(lines.len().saturating_sub(1)))
}

pub struct Reference;

impl Teacher for Reference {
    fn locate(&self, case: &Case) -> Result<String, TeacherError> {
        Ok(locate_reply(first_error(case)))
    }

    fn rewrite(&self, case: &Case, _k: usize, _prefix: &str) -> Result<String, TeacherError> {
        Ok(case.solution.trim().to_string())
    }

    fn name(&self) -> String {
        "reference".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(prediction: &str) -> Case {
        Case {
            problem: "Where do you keep milk cold?\nOptions:\nfridge\noven\ncupboard".into(),
            solution: "Milk must be kept cold.\nA fridge keeps things cold.\nThe answer is fridge"
                .into(),
            prediction: prediction.into(),
        }
    }

    #[test]
    fn the_first_step_naming_a_wrong_option() {
        let c = case("Milk is food.\nFood goes in the cupboard.\nThe answer is cupboard");
        assert_eq!(Reference.locate(&c).unwrap(), "[1]");
        assert_eq!(
            Reference.rewrite(&c, 1, "Milk is food.").unwrap(),
            "Milk must be kept cold.\nA fridge keeps things cold.\nThe answer is fridge"
        );
    }

    #[test]
    fn else_the_answer_line_and_correct_when_right() {
        let c = case("Milk is a liquid.\nThe answer is jug");
        assert_eq!(Reference.locate(&c).unwrap(), "[1]");
        assert_eq!(
            Reference
                .locate(&case("Cold.\nThe answer is Fridge."))
                .unwrap(),
            "correct"
        );
        assert!(!names("the ovenproof dish", "oven"), "whole phrases only");
    }
}
