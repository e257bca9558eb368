//! Running a script file: compile, evaluate, and turn every way it can fail — a parse
//! error, a runtime error deep in an imported module, a panic in native code — into one
//! located error and a non-zero exit, never a bare Rust backtrace.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::context::RunTarget;
use super::errors::ScriptError;
use super::overrides::Override;
use super::{ScriptContext, build_engine};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Script(#[from] ScriptError),
    #[error(
        "{script}: internal error in native code: {message}\n    (please report this; RUST_BACKTRACE=1 shows where)"
    )]
    Panic { script: String, message: String },
    /// Where no native named it: libtorch could not allocate.
    #[error("{script}: {oom}; what helps: smaller batches, a smaller model or `dtype: \"bf16\"`")]
    OutOfMemory {
        script: String,
        oom: crate::oom::OutOfMemory,
    },
}

/// Run `script` with the given overrides; its run directory (opened when the script asks for
/// it) goes to `target`.
pub fn run_script(
    script: &Path,
    overrides: Vec<Override>,
    target: Option<RunTarget>,
) -> Result<(), RunError> {
    let name = script.display().to_string();
    let source = std::fs::read_to_string(script).map_err(|source| RunError::Read {
        path: script.to_path_buf(),
        source,
    })?;
    let ctx = match target {
        Some(target) => ScriptContext::with_run(overrides, target),
        None => ScriptContext::new(overrides),
    };
    let engine = build_engine(ctx.clone());
    let mut ast = engine
        .compile(&source)
        .map_err(|e| ScriptError::from_parse(&e, &name))?;
    ast.set_source(name.as_str());

    tracing::debug!(script = %name, "running");
    let outcome = catch_native_panics(|| engine.run_ast(&ast));
    // The report is written whether the script finished or failed: a failed run is the
    // one most worth looking at. It never turns a run's outcome into an error.
    if let Some(run) = ctx.opened_run_dir() {
        match catch_native_panics(|| crate::report::write(run.path())) {
            Ok(Ok(w)) => tracing::info!("report: {}", w.html.display()),
            Ok(Err(e)) => tracing::warn!("the run's report could not be written: {e}"),
            Err(panic) => tracing::warn!("the run's report could not be written: {panic}"),
        }
    }
    let outcome = outcome.map_err(|panic| match crate::oom::from_message(&panic.message) {
        Some(oom) => RunError::OutOfMemory {
            script: name.clone(),
            oom,
        },
        None => RunError::Panic {
            script: name.clone(),
            message: format!("{panic}"),
        },
    })?;
    if let Some(unread) = ctx.unread_overrides() {
        let given: Vec<_> = unread.iter().map(|o| o.raw.as_str()).collect();
        tracing::warn!(
            "the script never read its overrides ({}); call apply_overrides(defaults) to use them",
            given.join(", ")
        );
    }
    outcome.map_err(|e| ScriptError::from_rhai(&e, &name).into())
}

/// A panic in native code: what it said (libtorch's first line, not its C++ frames) and
/// where in our code it happened.
#[derive(Debug, Clone)]
struct NativePanic {
    message: String,
    at: String,
}

impl std::fmt::Display for NativePanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.message, self.at)
    }
}

static PANIC_MESSAGE: Mutex<Option<NativePanic>> = Mutex::new(None);

/// Run `f`, turning a panic into its message (with where it happened). The default hook
/// is silenced for the duration so the user sees our error, not a Rust backtrace, unless
/// `RUST_BACKTRACE` asks for one.
fn catch_native_panics<T>(f: impl FnOnce() -> T) -> Result<T, NativePanic> {
    let previous = panic::take_hook();
    let show_backtrace = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        let message = crate::oom::libtorch_first_line(&message);
        *PANIC_MESSAGE.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(NativePanic { message, at });
        if show_backtrace {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(previous);
    result.map_err(|_| {
        PANIC_MESSAGE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| NativePanic {
                message: "panic".into(),
                at: String::new(),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_native_code_becomes_an_error_naming_where() {
        let mut engine = rhai::Engine::new();
        engine.register_fn("explode", |n: i64| -> i64 { panic!("exploded with {n}") });
        let err = catch_native_panics(|| engine.run("let x = explode(3);"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("exploded with 3 (at src/script/runner.rs:"),
            "{err}"
        );
        // The hook is restored: later panics are caught and reported afresh.
        let err = catch_native_panics(|| panic!("second"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("second (at "), "{err}");
        // libtorch's message keeps its first line only, the location stays.
        let err = catch_native_panics(|| {
            panic!(
                "called `Result::unwrap()` on an `Err` value: Torch(\"bad shape\\nframe #0: c10\")"
            )
        })
        .unwrap_err();
        assert_eq!(err.message, "bad shape");
        assert!(
            err.at.starts_with(" (at src/script/runner.rs:"),
            "{}",
            err.at
        );
    }

    #[test]
    fn a_script_error_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.rhai");
        std::fs::write(&path, "let a = [1];\nlet b = a[5];\n").unwrap();
        let err = run_script(&path, vec![], None).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:2:11: ", path.display())),
            "{err}"
        );
    }
}
