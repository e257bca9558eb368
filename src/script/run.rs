//! Run natives: a run directory whose stages run once. A finished stage's result is read
//! back on a re-run; a stage whose inputs changed runs again; a killed stage never looks
//! finished (its result is written atomically, with its fingerprint, only after it ends).

use rhai::plugin::*;

use super::engine::Domain;
use crate::run::RunDir;

pub const DOMAIN: Domain = Domain {
    name: "run",
    module: || exported_module!(run_api),
    extra: |_| {},
};

/// A run directory (`run_open`, `run_current`).
#[derive(Clone)]
pub struct RunHandle {
    dir: RunDir,
}

/// A stage-name check or a run-store error as a script error.
fn stage_error<E: std::fmt::Display>(e: crate::run::stage::StageError<E>) -> Box<EvalAltResult> {
    e.to_string().into()
}

/// Run directories: `run_current()` (the invocation's `--out`) or `run_open(dir)`, then
/// `run.stage(name, inputs, || ...)` runs a stage once — its result (any JSON value:
/// records, a path, a table) is kept in `dir/stages/<name>.json` with a fingerprint of
/// `inputs`, and read back while the inputs are the same. A stage's own files (models,
/// checkpoints) go in `run.stage_dir(name)`.
#[export_module]
pub mod run_api {
    use std::path::Path;

    use super::{RunHandle, stage_error};
    use crate::run::stage::{self as stages, StageError, check_name};
    use crate::run::{RunDir, fingerprint as json_fingerprint};
    use crate::script::ScriptContext;
    use crate::script::errors::closure_arity;
    use crate::script::json::to_json;

    /// A run directory.
    pub type Run = RunHandle;

    /// Open (or create) the run directory `dir`; opening an existing one resumes it.
    ///
    /// ```rhai
    /// let run = run_open("/tmp/rlmec-doc/run-open");
    /// print(run.dir);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn run_open(dir: &str) -> Result<Run, Box<EvalAltResult>> {
        let dir = RunDir::create(Path::new(dir)).map_err(|e| format!("run_open: {e}"))?;
        Ok(RunHandle { dir })
    }

    /// This invocation's run directory: `--out DIR`, by default
    /// `runs/<script>-<UTC timestamp>`; `--out` of an existing run resumes it. The first call
    /// creates it, records the command line in `run.json`, saves the resolved config
    /// (`apply_overrides`) as `config.json` and starts appending the log to `log.txt`.
    ///
    /// ```rhai
    /// let run = run_current();
    /// print(`writing to ${run.dir}`);
    /// ```
    #[rhai_fn(return_raw)]
    pub fn run_current(ctx: NativeCallContext) -> Result<Run, Box<EvalAltResult>> {
        let sc = ScriptContext::of(&ctx)?;
        let dir = sc
            .run_dir()
            .ok_or("run_current: this engine has no run directory (only `rlmec SCRIPT` has one; use run_open(dir))")?
            .map_err(|e| format!("run_current: {e}"))?;
        Ok(RunHandle { dir })
    }

    /// The run's directory.
    ///
    /// ```rhai
    /// let run = run_open("/tmp/rlmec-doc/run-dir");
    /// let policy_dir = `${run.dir}/policy`;
    /// ```
    #[rhai_fn(get = "dir", pure)]
    pub fn dir(run: &mut Run) -> String {
        run.dir.path().to_string_lossy().into_owned()
    }

    /// The folder for stage `name`'s own files (`<run>/<name>`): emptied when the stage
    /// starts afresh, kept when a killed stage resumes with the same inputs.
    ///
    /// ```rhai
    /// let run = run_open("/tmp/rlmec-doc/run-stage-dir");
    /// let out = run.stage_dir("policy");   // ".../run-stage-dir/policy"
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn stage_dir(run: &mut Run, name: &str) -> Result<String, Box<EvalAltResult>> {
        check_name::<String>(name).map_err(stage_error)?;
        Ok(run.dir.work_dir(name).to_string_lossy().into_owned())
    }

    /// Run the stage `name` unless it finished before with the same `inputs` (anything
    /// JSON-representable: the config it uses, the records it reads), in this run or in a
    /// run given with `--reuse`; returns its result, computed by `body` or read back. The
    /// result is written atomically after `body` returns, so a killed stage runs again on
    /// the next run (a training stage resumes from its checkpoints in
    /// `run.stage_dir(name)`). A stage whose body asked an HTTP teacher records what that
    /// cost beside its result (`stages/<name>.json`, field `spend`: `#{requests, cached,
    /// input_tokens, output_tokens, cost}` — requests sent, answers taken from the cache,
    /// the tokens of the requests sent, and with `teacher_price` the cost in dollars; a
    /// failed attempt's spend is kept and added to), and the run's report shows it per stage
    /// and in total.
    ///
    /// ```rhai
    /// let run = run_open("/tmp/rlmec-doc/run-stage");
    /// let squares = run.stage("squares", #{n: 4}, || [0, 1, 2, 3].map(|i| i * i));
    /// let again = run.stage("squares", #{n: 4}, || throw "not run again");
    /// print(again);   // [0, 1, 4, 9]
    /// ```
    #[rhai_fn(return_raw)]
    pub fn stage(
        context: NativeCallContext,
        run: &mut Run,
        name: &str,
        inputs: Dynamic,
        body: rhai::FnPtr,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let inputs = to_json(&inputs, &format!("stage `{name}`: inputs"))?;
        let result = stages::run(&run.dir, name, &inputs, || {
            let result: Dynamic = body.call_within_context(&context, ()).map_err(|e| {
                closure_arity(e, &body, &format!("stage `{name}`: the body"), "`|| ...`")
            })?;
            to_json(&result, &format!("stage `{name}`: result"))
        });
        match result {
            Ok(value) => rhai::serde::to_dynamic(&value),
            Err(StageError::Body(e)) => Err(e),
            Err(e) => Err(stage_error(e)),
        }
    }

    /// The result of a stage that finished in this run; an error names the stage and the
    /// stages that did finish.
    ///
    /// ```rhai
    /// let run = run_open("/tmp/rlmec-doc/run-result");
    /// run.stage("answer", #{}, || 42);
    /// print(run.result("answer"));   // 42
    /// ```
    #[rhai_fn(pure, return_raw)]
    pub fn result(run: &mut Run, name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        check_name::<String>(name).map_err(stage_error)?;
        let value = run.dir.result(name).map_err(|e| e.to_string())?;
        rhai::serde::to_dynamic(&value)
    }

    /// SHA-256 (hex) of a value's JSON form, with the paths inside the run (or a run it
    /// reuses) taken relative to it: a compact stand-in for a stage's inputs in another
    /// stage's inputs (e.g. the stage that trained the model it loads) that stays the same
    /// when the run folder is moved.
    ///
    /// ```rhai
    /// let run = run_open("/tmp/rlmec-doc/run-fingerprint");
    /// let a = run.fingerprint(#{base: `${run.dir}/start`, lr: 1e-5});
    /// if a.len() != 64 { throw "not a fingerprint"; }
    /// ```
    #[rhai_fn(name = "fingerprint", pure, return_raw)]
    pub fn fingerprint_in(run: &mut Run, value: Dynamic) -> Result<String, Box<EvalAltResult>> {
        let value = to_json(&value, "fingerprint")?;
        Ok(stages::fingerprint_in(&run.dir, &value))
    }

    /// SHA-256 (hex) of a value's JSON form: a compact stand-in for a stage's inputs in
    /// another stage's inputs (e.g. the stage that trained the model it loads).
    ///
    /// ```rhai
    /// let a = fingerprint(#{lr: 1e-5, epochs: 2});
    /// if a.len() != 64 || a == fingerprint(#{lr: 2e-5, epochs: 2}) { throw "not a fingerprint"; }
    /// ```
    #[rhai_fn(return_raw)]
    pub fn fingerprint(value: Dynamic) -> Result<String, Box<EvalAltResult>> {
        let value = to_json(&value, "fingerprint")?;
        Ok(json_fingerprint(&value))
    }
}
