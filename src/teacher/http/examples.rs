//! The worked example shown before each rewrite question (one per task kind, written for
//! this project in the shape docs/method.md, "Exact strings", gives): a wrong prediction and
//! its minimal correction.

use crate::tasks::TaskKind;

pub struct WorkedExample {
    pub problem: &'static str,
    pub solution: &'static str,
    pub prediction: &'static str,
    pub correction: &'static str,
}

pub fn worked_example(kind: TaskKind) -> WorkedExample {
    match kind {
        TaskKind::Qa => WorkedExample {
            problem: "Where would you put a plate after washing and drying it?\nOptions:\ncupboard\noven\nbed\ngarden\ncar",
            solution: "A clean plate is stored until it is used again.\nPlates are stored in a cupboard.\nThe answer is cupboard",
            prediction: "A clean plate is stored until it is used again.\nPlates are heated before meals, so they are kept in an oven.\nThe answer is oven",
            correction: "A clean plate is stored until it is used again.\nPlates are stored in a cupboard.\nThe answer is cupboard",
        },
        TaskKind::Math => WorkedExample {
            problem: "Ann has 5 boxes with 4 pens in each box. She gives away 6 pens. How many pens does she have left?",
            solution: "Ann has 5 * 4 = 20 pens.\nAfter giving away 6 pens, she has 20 - 6 = 14 pens.\nThe answer is 14",
            prediction: "Ann has 5 * 4 = 24 pens.\nAfter giving away 6 pens, she has 24 - 6 = 18 pens.\nThe answer is 18",
            correction: "Ann has 5 * 4 = 20 pens.\nAfter giving away 6 pens, she has 20 - 6 = 14 pens.\nThe answer is 14",
        },
    }
}
