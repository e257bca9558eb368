//! The exact strings of the protocol (docs/method.md, "Exact strings"): the teacher's locate and
//! rewrite questions and the GRM template of steps 3–6.

use super::solution::numbered;

/// The locate question's first paragraph (the GRM's locate instruction).
pub const LOCATE_INSTRUCTION: &str = "Given the problem, correct solution and the prediction from language models. The method in prediction might be different with correct solution, but it is also correct. You need to identify which step of the prediction is the first wrong step, and write down the label of the first wrong step.";

/// The rewrite instruction.
pub const REWRITE_INSTRUCTION: &str = "Given the problem and the correct solution, you need to correct the mistakes in prediction to get the correct answer. You should make minimal modifications.";

const GRM_HEADER: &str = "Below is an instruction that describes a task. Write a response that appropriately completes the request.";

/// The GRM template.
pub fn grm(instruction: &str, input: &str, response: &str) -> String {
    format!(
        "{GRM_HEADER}\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{response}"
    )
}

/// The GRM's locate prompt: numbered solution and prediction, empty response, the whole
/// text stripped and ended with a newline.
pub fn grm_locate(problem: &str, solution: &str, prediction: &str) -> String {
    let input = format!(
        "Problem: {problem}\nCorrect solution: {}\nPrediction: {}",
        numbered(solution),
        numbered(prediction)
    );
    format!("{}\n", grm(LOCATE_INSTRUCTION, &input, "").trim())
}

/// The GRM's rewrite prompt, its response opened with `Correct prediction:` (no space).
pub fn grm_rewrite(problem: &str, solution: &str, prediction: &str) -> String {
    let input =
        format!("Problem: {problem}\nCorrect solution: {solution}\nPrediction: {prediction}");
    grm(REWRITE_INSTRUCTION, &input, "Correct prediction:")
}

/// The GRM's locate target.
pub fn grm_locate_target(step: i64) -> String {
    format!("The first error step is [{step}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grm_prompts_are_exact() {
        let l = grm_locate("P?", "s1\ns2", "p1");
        assert!(l.starts_with("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n### Instruction:\nGiven the problem, correct solution"));
        assert!(l.ends_with("label of the first wrong step.\n\n### Input:\nProblem: P?\nCorrect solution: [0] s1\n[1] s2\nPrediction: [0] p1\n\n### Response:\n"));
        let r = grm_rewrite("P?", "s", "p");
        assert!(r.ends_with("You should make minimal modifications.\n\n### Input:\nProblem: P?\nCorrect solution: s\nPrediction: p\n\n### Response:\nCorrect prediction:"));
    }
}
