//! Run natives: a run directory whose stages run once. A finished stage's result is read
//! back on a re-run; a stage whose inputs changed runs again; a killed stage never looks
//! finished (its result is written atomically, with its fingerprint, only after it ends).

use rhai::plugin::*;

use super::engine::Domain;

pub const DOMAIN: Domain = Domain {
    name: "run",
    module: || exported_module!(run_api),
    extra: |_| {},
};

/// A run directory (`run_open`).
#[derive(Clone)]
pub struct RunHandle {
    dir: std::path::PathBuf,
}

/// SHA-256 of a value's JSON form: what a stage's result depends on.
fn fingerprint(value: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(value.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run directories: `run_open(dir)`, then `run.stage(name, inputs, || ...)` runs a stage
/// once — its result (any JSON value: records, a path, a table) is kept in
/// `dir/stages/<name>.json` with a fingerprint of `inputs`, and read back while the inputs
/// are the same.
#[export_module]
pub mod run_api {
    use std::path::Path;

    use super::{RunHandle, fingerprint};
    use crate::files;

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
        std::fs::create_dir_all(Path::new(dir).join("stages"))
            .map_err(|e| format!("run_open: {dir}: {e}"))?;
        Ok(RunHandle { dir: dir.into() })
    }

    /// The run's directory.
    ///
    /// ```rhai
    /// let run = run_open("/tmp/rlmec-doc/run-dir");
    /// let policy_dir = `${run.dir}/policy`;
    /// ```
    #[rhai_fn(get = "dir", pure)]
    pub fn dir(run: &mut Run) -> String {
        run.dir.to_string_lossy().into_owned()
    }

    /// Run the stage `name` unless it finished before with the same `inputs` (anything
    /// JSON-representable: the config it uses, the records it reads); returns its result,
    /// computed by `body` or read back. The result is written atomically after `body`
    /// returns, so a killed stage runs again on the next run.
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
        let what = format!("stage `{name}`");
        let inputs = serde_json::to_value(&inputs)
            .map_err(|e| format!("{what}: inputs not representable as JSON: {e}"))?;
        let print = fingerprint(&serde_json::json!({"stage": name, "inputs": inputs}));
        let path = run.dir.join("stages").join(format!("{name}.json"));
        if path.is_file() {
            let saved = files::read_json(&path).map_err(|e| format!("{what}: {e}"))?;
            if saved["fingerprint"].as_str() == Some(print.as_str()) {
                tracing::info!("{what}: done before, reusing {}", path.display());
                return rhai::serde::to_dynamic(&saved["result"]);
            }
            tracing::info!("{what}: its inputs changed; running it again");
        }
        let started = std::time::Instant::now();
        let result: Dynamic = body.call_within_context(&context, ())?;
        let value = serde_json::to_value(&result)
            .map_err(|e| format!("{what}: result not representable as JSON: {e}"))?;
        files::write_json(
            &path,
            &serde_json::json!({"fingerprint": print, "seconds": started.elapsed().as_secs_f64(), "result": value}),
        )
        .map_err(|e| format!("{what}: {e}"))?;
        tracing::info!("{what}: done in {:.1}s", started.elapsed().as_secs_f64());
        Ok(result)
    }
}
