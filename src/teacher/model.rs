//! A local model as the teacher — how the trained GRM rewrites in step 5 (`model:<path>`).
//!
//! It is prompted with the GRM templates (no worked example): the locate prompt, and the
//! rewrite prompt with the prefill `Correct prediction:<prefix>` + newline; greedy, cut at
//! `Question`, `USER`, `ASSISTANT`, `Instruction`, `Response` (RLMEC.md, "Exact strings").
//! Every question of a batch goes through the model together.

use super::prompts::{grm_locate, grm_rewrite};
use super::{Case, Teacher, TeacherError};
use crate::generate::{GenerateOptions, Request, generate};
use crate::model::Model;

pub const STOP_MARKERS: [&str; 5] = ["Question", "USER", "ASSISTANT", "Instruction", "Response"];

pub struct ModelTeacher<'a> {
    pub model: &'a Model,
    /// The paper allows 2048.
    pub max_new_tokens: usize,
    pub batch_size: usize,
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
                        .tokenizer
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
        Ok(generate(self.model, &requests, &opts)
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
        format!("model:{}", self.model.origin.display())
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
                .map(|(c, _, prefix)| {
                    format!(
                        "{}{prefix}\n",
                        grm_rewrite(&c.problem, &c.solution, &c.prediction)
                    )
                })
                .collect(),
        )
    }
}
