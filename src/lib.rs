//! rlmec — fine-grained reinforcement learning of language models with minimum-edit token
//! rewards (RLMEC, Chen et al., Findings of ACL 2024), as a Rust runtime driven by Rhai scripts.
//!
//! The heavy work (models, sampling, teachers, alignment, training) is native code exposed to
//! scripts through [`script`]; the paper's procedure lives in `stdlib/` and `scripts/` as Rhai.
//! The `rlmec` binary (`src/main.rs`) is only the command line over this library.

pub mod align;
pub mod device;
pub mod engine;
pub mod files;
pub mod generate;
pub mod gguf;
pub mod grad;
pub mod heap;
pub mod http;
pub mod logging;
pub mod model;
pub mod oom;
pub mod options;
pub mod progress;
pub mod report;
pub mod rewards;
pub mod run;
pub mod script;
pub mod serve;
pub mod shipped;
pub mod spend;
pub mod tasks;
pub mod teacher;
pub mod testing;
pub mod threads;
pub mod tokenize;
pub mod train;

/// The libtorch this binary was built against (from `.deps/libtorch/build-version`).
pub const LIBTORCH_VERSION: &str = env!("RLMEC_LIBTORCH_VERSION");
/// `cpu` (the lean default) or `cuda` (`make setup TORCH=cuda`).
pub const LIBTORCH_VARIANT: &str = env!("RLMEC_LIBTORCH_VARIANT");
