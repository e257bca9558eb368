//! A local model as the teacher — how the trained GRM rewrites in step 5 (`model:<path>`).
//!
//! It is prompted with the GRM templates (no worked example): the locate prompt, and the
//! rewrite prompt with the prefill `Correct prediction:<prefix>` + newline; greedy, cut at
//! `Question`, `USER`, `ASSISTANT`, `Instruction`, `Response` (docs/method.md, "Exact strings").
//! Every question of a batch goes through the model together.
//!
//! One correction (`paper` fidelity keeps the public code's form): when the first step is
//! wrong the prefix is empty, and the public prefill `Correct prediction:\n` puts a newline
//! where the GRM was trained to start the fix (step 3's target follows `Correct prediction:`
//! with no separator). A large GRM shrugs this off; a small one, never having seen it, writes
//! the locate answer instead (measured on the math task: 3 correct fixes of 808 with the
//! newline). Corrected fidelity leaves the newline out for an empty prefix.

use super::prompts::{grm_locate, grm_rewrite};
use super::{Case, Teacher, TeacherError};
use crate::engine::Engine;
use crate::generate::{GenerateOptions, Request};
use crate::tasks::Fidelity;

pub const STOP_MARKERS: [&str; 5] = ["Question", "USER", "ASSISTANT", "Instruction", "Response"];

/// The GRM's rewrite prompt with the prediction's steps before the wrong one prefilled.
fn rewrite_prompt(case: &Case, prefix: &str, fidelity: Fidelity) -> String {
    let prompt = grm_rewrite(&case.problem, &case.solution, &case.prediction);
    if prefix.is_empty() && fidelity == Fidelity::Corrected {
        prompt
    } else {
        format!("{prompt}{prefix}\n")
    }
}

pub struct ModelTeacher<'a> {
    /// The GRM: loaded here, or behind a server.
    pub model: &'a dyn Engine,
    /// The paper allows 2048.
    pub max_new_tokens: usize,
    pub batch_size: usize,
    /// Whether an empty prefix is prefilled with the public code's newline.
    pub fidelity: Fidelity,
}

impl ModelTeacher<'_> {
    fn complete(&self, prompts: Vec<String>) -> Result<Vec<String>, TeacherError> {
        let failed = |message: String| TeacherError::Failed {
            teacher: self.name(),
            message,
        };
        let requests = prompts
            .iter()
            .map(|p| {
                Ok(Request {
                    prompt: self
                        .model
                        .tokenizer()
                        .encode(p)
                        .map_err(|e| failed(e.to_string()))?,
                    max_new_tokens: self.max_new_tokens,
                })
            })
            .collect::<Result<Vec<_>, TeacherError>>()?;
        let opts = GenerateOptions {
            stop: STOP_MARKERS.iter().map(|s| s.to_string()).collect(),
            batch_size: self.batch_size,
            ..GenerateOptions::default()
        };
        Ok(self
            .model
            .generate(&requests, &opts)
            .map_err(|e| failed(e.to_string()))?
            .into_iter()
            .map(|g| g.text)
            .collect())
    }
}

impl Teacher for ModelTeacher<'_> {
    fn locate(&self, case: &Case) -> Result<String, TeacherError> {
        Ok(self.locate_all(&[case])?.remove(0))
    }

    fn rewrite(&self, case: &Case, k: usize, prefix: &str) -> Result<String, TeacherError> {
        Ok(self.rewrite_all(&[(case, k, prefix)])?.remove(0))
    }

    fn name(&self) -> String {
        format!("model:{}", self.model.name())
    }

    fn locate_all(&self, cases: &[&Case]) -> Result<Vec<String>, TeacherError> {
        self.complete(
            cases
                .iter()
                .map(|c| grm_locate(&c.problem, &c.solution, &c.prediction))
                .collect(),
        )
    }

    fn rewrite_all(&self, asks: &[(&Case, usize, &str)]) -> Result<Vec<String>, TeacherError> {
        self.complete(
            asks.iter()
                .map(|(c, _, prefix)| rewrite_prompt(c, prefix, self.fidelity))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_prefix_continues_where_the_grm_was_trained_to_start() {
        let case = Case {
            problem: "P?".into(),
            solution: "s".into(),
            prediction: "p1\np2".into(),
        };
        let trained = grm_rewrite("P?", "s", "p1\np2");
        assert_eq!(rewrite_prompt(&case, "", Fidelity::Corrected), trained);
        assert_eq!(
            rewrite_prompt(&case, "", Fidelity::Paper),
            format!("{trained}\n")
        );
        for fidelity in [Fidelity::Corrected, Fidelity::Paper] {
            assert_eq!(
                rewrite_prompt(&case, "p1", fidelity),
                format!("{trained}p1\n")
            );
        }
    }
}
