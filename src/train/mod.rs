//! Training: supervised fine-tuning (the GRM, SFT and RFT baselines) and RLMEC's token-level
//! objective (the policy), or any objective a script defines over the same per-token
//! tensors.
//!
//! - [`examples`]: records → token ids and per-token values (length checks per record);
//! - [`batching`]: the seeded, length-grouped order of micro-batches;
//! - [`tokens`]: a micro-batch through the model → per-token log-probabilities and data;
//! - [`objective`]: the built-in losses and the [`objective::Objective`] interface;
//! - [`adamw`], [`schedule`]: the optimiser and the learning-rate schedule;
//! - [`checkpoint`], [`metrics`]: what is written to the run directory;
//! - [`memory`]: what a run will need, said before it starts;
//! - [`trainer`]: the loop that ties them together; `session`: a run's state and its
//!   checkpoints (resume, finished, save); `out_of_memory`: the error a step that ran out
//!   of memory becomes.

pub mod adamw;
pub mod batching;
pub mod checkpoint;
pub mod examples;
pub mod memory;
pub mod metrics;
pub mod objective;
pub mod options;
mod out_of_memory;
pub mod schedule;
mod session;
pub mod tokens;
pub mod trainer;

pub use options::TrainOptions;
pub use trainer::{TrainReport, train, train_examples};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("train: {0}")]
    Options(String),
    #[error("train: {0}")]
    Record(#[from] examples::RecordError),
    #[error("train: step {}: objective: {message}", step + 1)]
    Objective { step: usize, message: String },
    #[error("train: resume: {0}")]
    Resume(String),
    #[error("train: {0}")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("train: {0}")]
    Metrics(#[from] crate::files::FileError),
    #[error("train: saving the model: {0}")]
    Save(String),
    #[error("train: step {}: {message}", step + 1)]
    OutOfMemory { step: usize, message: String },
}
