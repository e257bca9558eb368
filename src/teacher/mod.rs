//! Teachers: who locates the first wrong step of a prediction and rewrites it with the
//! fewest edits (docs/method.md, step 2; the trained GRM does the same in step 5).
//!
//! One trait, backends chosen by a string ([`spec`]): the offline rule teachers `arith`
//! (exact, for arithmetic) and `reference` (QA, from the gold rationale) answer without a
//! model or a network; `model:<path>` is a local model ([`model`]); `anthropic:<model>` and
//! `openai:<model>@<base_url>` are HTTP APIs ([`http`]). [`minimum_edit`] runs the
//! two-question protocol over any of them.

pub mod arith;
pub mod budget;
pub mod grm_data;
pub mod http;
pub mod minimum_edit;
pub mod model;
pub mod prompts;
pub mod reference;
pub mod solution;
pub mod spec;

pub use spec::{TeacherOptions, TeacherSpec};

/// What a teacher sees: the problem, its gold solution and the prediction to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub problem: String,
    pub solution: String,
    pub prediction: String,
}

/// The two questions of the protocol, as a teacher answers them: free text, parsed by the
/// protocol the same way for every backend.
pub trait Teacher {
    /// The reply to the locate question: the label of the first wrong step (`[k]`), or
    /// `correct`.
    fn locate(&self, case: &Case) -> Result<String, TeacherError>;

    /// The continuation after the prefill `Correct prediction: <prefix>`, where `prefix`
    /// is the prediction's steps before step `k` (model teachers see only the prefix): the
    /// corrected steps from the first wrong one on.
    fn rewrite(&self, case: &Case, k: usize, prefix: &str) -> Result<String, TeacherError>;

    /// The name that goes into records and caches.
    fn name(&self) -> String;

    /// A rule teacher's revision, raised whenever its answers change, so that a run's stage
    /// fingerprint sees a new rule (its name alone would not) and reruns the teacher.
    fn revision(&self) -> u32 {
        1
    }

    /// [`Teacher::locate`] for many cases (a model teacher answers them in one batch).
    fn locate_all(&self, cases: &[&Case]) -> Result<Vec<String>, TeacherError> {
        cases.iter().map(|c| self.locate(c)).collect()
    }

    /// [`Teacher::rewrite`] for many `(case, k, prefix)`.
    fn rewrite_all(&self, asks: &[(&Case, usize, &str)]) -> Result<Vec<String>, TeacherError> {
        asks.iter()
            .map(|(c, k, p)| self.rewrite(c, *k, p))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    #[error("unknown teacher `{0}`: expected {forms}", forms = spec::FORMS)]
    Unknown(String),
    #[error("{teacher}: {message}")]
    Failed { teacher: String, message: String },
}
