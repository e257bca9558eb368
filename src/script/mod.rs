//! The Rhai runtime: one engine with every domain's native functions, the module resolver
//! behind `import`, and the three things the CLI does with a script — run it, check it
//! without running it, and document the API it can call.
//!
//! The runtime is `engine.rs`, `runner.rs`, `check.rs`, `api.rs` (with `defaults.rs`: the
//! option defaults the docs show, from the option structs), `resolver.rs`, `stdlib.rs`,
//! `context.rs`, `overrides.rs` (`--set`) and `errors.rs` (script errors with their location
//! and call stack). Every other file is an adapter: a domain's natives as an
//! `#[export_module]` plugin module, so the `///` comment of a native function *is* its API
//! documentation (`rlmec api`, `docs/api.md`). An adapter converts script values to the
//! domain's types and back — options maps through serde (`options.rs`, read into the option
//! structs of `crate::model`, `crate::train`, ...), closures, tensors and model handles by
//! hand — and calls the domain, where the logic and its tests live.

pub mod api;
pub mod check;
pub mod context;
pub mod defaults;
pub mod engine;
pub mod errors;
pub mod overrides;
pub mod resolver;
pub mod runner;
pub mod stdlib;

mod align;
mod config;
mod generate;
pub(crate) mod io;
mod json;
pub mod model;
mod options;
mod progress;
mod rewards;
mod run;
mod serve;
mod tasks;
mod teacher;
pub mod tensor;
mod torch;
mod train;

pub use context::ScriptContext;
pub use engine::{DOMAINS, Domain, build_engine};
