//! Runs: what `rlmec SCRIPT --out DIR` writes, what a rerun reads back, and what
//! `rlmec runs` / `rlmec status` show.
//!
//! ```text
//! DIR/run.json                 script, command line, rlmec version, when it (re)started
//! DIR/config.json              the resolved config (defaults + --set), as the script used it
//! DIR/log.txt                  every log line and print of every invocation, appended
//! DIR/stages/NAME.json         a finished stage: fingerprint of its inputs, seconds, result
//!                              (and `reused_from`, when another run had finished it)
//! DIR/stages/NAME.running      a stage under way (pid, fingerprint); left behind if killed
//! DIR/NAME/                    the stage's own files (models, checkpoints, metrics)
//! ```
//!
//! A stage runs once ([`stage::run`]): a finished stage whose inputs have the same
//! fingerprint is read back; one whose inputs changed runs again; a killed one resumes with
//! its work folder when its inputs are the same. Its result file is written atomically after
//! its body returns and its marker removed after that, so a killed process never leaves a
//! stage looking finished.
//!
//! A run may *reuse* others (`--reuse OTHER`): a stage that finished there with the same
//! fingerprint is not run again but recorded here as reused, its result (which names the
//! other run's files, e.g. a trained GRM) taken as it is. An ablation that changes only the
//! RL loss thus reruns step 7 alone. The other run's files must stay where they are.
//!
//! A run folder can be moved: paths inside it are stored relative to it, in results and in
//! the inputs a fingerprint is taken of ([`paths`]).

mod dir;
mod fingerprint;
pub mod paths;
pub mod stage;
pub mod status;

pub use dir::{Finished, RunDir, RunDirError, StageState, Start, default_dir, finished_in, list};
pub use fingerprint::{changed_parts, fingerprint, input_parts};
