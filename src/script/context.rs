//! What a running script knows about its invocation: the `--set` overrides (with
//! `--device` and `--seed` folded in), whether the script has read them, and its run
//! directory (`--out`), opened the first time the script asks for it.
//!
//! The context rides in the engine's default tag so natives reach it through their
//! `NativeCallContext` and several engines (tests) never share state.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rhai::{EvalAltResult, NativeCallContext};

use super::overrides::Override;
use crate::run::{RunDir, RunDirError};

/// Where this invocation's run directory goes, and what to record about the invocation.
#[derive(Debug, Clone)]
pub struct RunTarget {
    pub dir: PathBuf,
    pub script: PathBuf,
    /// The command line, as given.
    pub args: Vec<String>,
    /// Runs whose finished stages with the same inputs this one takes (`--reuse`).
    pub reuse: Vec<PathBuf>,
}

#[derive(Clone, Default)]
pub struct ScriptContext {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    overrides: Vec<Override>,
    overrides_read: AtomicBool,
    target: Option<RunTarget>,
    /// The run directory once opened, and the resolved config once known: whichever comes
    /// second writes `config.json`.
    run: Mutex<(Option<RunDir>, Option<serde_json::Value>)>,
}

impl ScriptContext {
    pub fn new(overrides: Vec<Override>) -> Self {
        Self {
            inner: Arc::new(Inner {
                overrides,
                overrides_read: AtomicBool::new(false),
                target: None,
                run: Mutex::default(),
            }),
        }
    }

    /// A context whose script writes its run directory to `target`.
    pub fn with_run(overrides: Vec<Override>, target: RunTarget) -> Self {
        Self {
            inner: Arc::new(Inner {
                overrides,
                overrides_read: AtomicBool::new(false),
                target: Some(target),
                run: Mutex::default(),
            }),
        }
    }

    /// This invocation's run directory, created (and its start recorded, its log file
    /// opened) on first use. `None` when the engine was not started by `rlmec SCRIPT`.
    pub fn run_dir(&self) -> Option<Result<RunDir, RunDirError>> {
        let target = self.inner.target.as_ref()?;
        let mut run = self.inner.run.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = &run.0 {
            return Some(Ok(open.clone()));
        }
        let opened = (|| {
            let dir = RunDir::create(&target.dir)?.reusing(&target.reuse)?;
            dir.record_start(&target.script, &target.args)?;
            if let Some(config) = &run.1 {
                dir.write_config(config)?;
            }
            crate::logging::log_to_file(&dir.path().join("log.txt"));
            tracing::info!("run directory: {}", dir.path().display());
            Ok(dir)
        })();
        if let Ok(dir) = &opened {
            run.0 = Some(dir.clone());
        }
        Some(opened)
    }

    /// The run directory if the script opened one (without opening it).
    pub fn opened_run_dir(&self) -> Option<RunDir> {
        let run = self.inner.run.lock().unwrap_or_else(|e| e.into_inner());
        run.0.clone()
    }

    /// Remember the script's resolved config; saved as the run's `config.json`.
    pub fn set_config(&self, config: serde_json::Value) -> Result<(), RunDirError> {
        let mut run = self.inner.run.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = &run.0 {
            dir.write_config(&config)?;
        }
        run.1 = Some(config);
        Ok(())
    }

    /// The script this invocation runs, when started by `rlmec SCRIPT`.
    pub fn script(&self) -> Option<&std::path::Path> {
        self.inner.target.as_ref().map(|t| t.script.as_path())
    }

    /// The overrides in command-line order; reading them marks them as used.
    pub fn overrides(&self) -> &[Override] {
        self.inner.overrides_read.store(true, Ordering::Relaxed);
        &self.inner.overrides
    }

    /// Overrides were given but the script never looked at them: worth a warning, since a
    /// researcher would otherwise believe their `--set` took effect.
    pub fn unread_overrides(&self) -> Option<&[Override]> {
        let read = self.inner.overrides_read.load(Ordering::Relaxed);
        (!read && !self.inner.overrides.is_empty()).then_some(&self.inner.overrides[..])
    }

    /// The context of the engine running the calling native function.
    pub fn of(ctx: &NativeCallContext) -> Result<Self, Box<EvalAltResult>> {
        ctx.tag()
            .and_then(|tag| tag.clone().try_cast::<Self>())
            .ok_or_else(|| "internal error: the engine was built without a script context".into())
    }
}
