//! A run directory on disk: its files (see [`super`]), the stages' results and markers,
//! and the runs under a folder.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::paths;
use crate::files::{self, FileError};
use crate::spend::Spend;

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "stage `{name}` has no output in {dir}: it has not finished in this run (finished: {finished})"
    )]
    NotFinished {
        name: String,
        dir: PathBuf,
        finished: String,
    },
    #[error("{0}: not a run directory (no stages/ folder)")]
    NotARun(PathBuf),
    #[error("the run folder's path is empty")]
    EmptyPath,
    #[error("{path}: {message}")]
    Damaged { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Seconds since the Unix epoch, as stored in run files.
pub(super) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The default run directory of a script: `runs/<script stem>-<UTC yyyymmdd-hhmmss>`.
pub fn default_dir(script: &Path) -> PathBuf {
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    let stamp = time::OffsetDateTime::now_utc()
        .format(format)
        .unwrap_or_else(|_| "now".into());
    Path::new("runs").join(format!("{stem}-{stamp}"))
}

/// How a stage starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Nothing to keep: its work folder is emptied.
    Fresh,
    /// The same stage with the same inputs was killed: its work folder is kept.
    Resume,
}

/// A finished stage as stored.
#[derive(Debug, Clone)]
pub struct Finished {
    pub fingerprint: String,
    /// Fingerprints of the inputs one by one ([`super::input_parts`]).
    pub parts: serde_json::Map<String, Value>,
    pub seconds: f64,
    pub finished_at: f64,
    pub result: Value,
    /// The run whose stage this is, when this run reused it.
    pub reused_from: Option<String>,
}

/// A stage's state as `rlmec status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum StageState {
    Done {
        seconds: f64,
        finished_at: f64,
        /// The run that computed it, when this run reused it (`seconds` are that run's).
        reused_from: Option<String>,
    },
    Running {
        pid: u32,
        since: f64,
    },
    /// Started, and its process is gone without finishing it.
    Interrupted {
        since: f64,
    },
}

impl StageState {
    /// `done`, `reused`, `running` or `interrupted`.
    pub fn label(&self) -> &'static str {
        match self {
            StageState::Done {
                reused_from: Some(_),
                ..
            } => "reused",
            StageState::Done { .. } => "done",
            StageState::Running { .. } => "running",
            StageState::Interrupted { .. } => "interrupted",
        }
    }

    /// When the stage finished, or when it started if it has not.
    pub fn last_event(&self) -> f64 {
        match self {
            StageState::Done { finished_at, .. } => *finished_at,
            StageState::Running { since, .. } | StageState::Interrupted { since } => *since,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunDir {
    dir: PathBuf,
    /// Runs whose finished stages this one takes instead of recomputing them.
    reuses: Vec<RunDir>,
}

impl RunDir {
    /// Open `dir`, creating it (and `stages/`) if needed.
    pub fn create(dir: &Path) -> Result<Self, RunDirError> {
        // An empty path would make the working directory the run folder.
        if dir.as_os_str().is_empty() {
            return Err(RunDirError::EmptyPath);
        }
        let stages = dir.join("stages");
        std::fs::create_dir_all(&stages).map_err(io(&stages))?;
        Ok(Self {
            dir: dir.into(),
            reuses: Vec::new(),
        })
    }

    /// This run, taking finished stages from `others` (each an existing run directory) when
    /// their inputs are the same; the first run that has one wins.
    pub fn reusing(mut self, others: &[PathBuf]) -> Result<Self, RunDirError> {
        self.reuses = others
            .iter()
            .map(|dir| RunDir::existing(dir))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Open an existing run directory without writing anything.
    pub fn existing(dir: &Path) -> Result<Self, RunDirError> {
        if !dir.join("stages").is_dir() {
            return Err(RunDirError::NotARun(dir.into()));
        }
        Ok(Self {
            dir: dir.into(),
            reuses: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// This run's folder and those of the runs it reuses: where the files its stages take
    /// as inputs live.
    pub fn roots(&self) -> Vec<&Path> {
        std::iter::once(self.dir.as_path())
            .chain(self.reuses.iter().map(|r| r.dir.as_path()))
            .collect()
    }

    fn result_file(&self, name: &str) -> PathBuf {
        self.dir.join("stages").join(format!("{name}.json"))
    }

    fn marker_file(&self, name: &str) -> PathBuf {
        self.dir.join("stages").join(format!("{name}.running"))
    }

    /// The folder of a stage's own files.
    pub fn work_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Record how this invocation started (appended to `run.json`'s list of starts).
    pub fn record_start(&self, script: &Path, args: &[String]) -> Result<(), RunDirError> {
        let path = self.dir.join("run.json");
        let mut info = if path.is_file() {
            files::read_json(&path)?
        } else {
            json!({"script": script.display().to_string(), "created": now(), "starts": []})
        };
        let start = json!({
            "at": now(),
            "args": args,
            "pid": std::process::id(),
            "rlmec": env!("CARGO_PKG_VERSION"),
            "libtorch": crate::LIBTORCH_VERSION,
        });
        match info["starts"].as_array_mut() {
            Some(starts) => starts.push(start),
            None => info["starts"] = json!([start]),
        }
        Ok(files::write_json(&path, &info)?)
    }

    pub fn write_config(&self, config: &Value) -> Result<(), RunDirError> {
        Ok(files::write_json(&self.dir.join("config.json"), config)?)
    }

    /// The stage's stored result, if it finished.
    pub fn finished(&self, name: &str) -> Result<Option<Finished>, RunDirError> {
        let path = self.result_file(name);
        if !path.is_file() {
            return Ok(None);
        }
        let saved = files::read_json(&path)?;
        let reused_from = saved["reused_from"].as_str().map(String::from);
        let pointers: Vec<String> = saved["run_paths"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        // Paths are relative to the run that made the files: this one, or the reused one.
        let home = reused_from.as_deref().map_or(self.dir.as_path(), Path::new);
        let result = paths::resolve(saved["result"].clone(), &pointers, home)
            .map_err(|message| RunDirError::Damaged { path, message })?;
        Ok(Some(Finished {
            fingerprint: saved["fingerprint"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            parts: saved["input_parts"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            seconds: saved["seconds"].as_f64().unwrap_or(0.0),
            finished_at: saved["finished_at"].as_f64().unwrap_or(0.0),
            result,
            reused_from,
        }))
    }

    /// Stage `name` as finished with inputs `fingerprint` in one of the runs this one reuses
    /// ([`RunDir::reusing`]): the run (where it was computed, if it had reused it in turn)
    /// and the stage.
    pub fn reusable(
        &self,
        name: &str,
        fingerprint: &str,
    ) -> Result<Option<(String, Finished)>, RunDirError> {
        for other in &self.reuses {
            if let Some(done) = other.finished(name)?
                && done.fingerprint == fingerprint
            {
                let origin = done
                    .reused_from
                    .clone()
                    .unwrap_or_else(|| other.dir.display().to_string());
                return Ok(Some((origin, done)));
            }
        }
        Ok(None)
    }

    /// Record another run's finished stage as this run's, reused from `origin`: its result
    /// is written here (atomically), a marker or folder of an earlier attempt here removed.
    pub fn adopt(&self, name: &str, origin: &str, done: &Finished) -> Result<(), RunDirError> {
        let (result, run_paths) = paths::relativize(&done.result, &[Path::new(origin)]);
        files::write_json(
            &self.result_file(name),
            &json!({"fingerprint": done.fingerprint, "input_parts": done.parts,
                    "seconds": done.seconds, "finished_at": done.finished_at,
                    "reused_from": origin, "result": result, "run_paths": run_paths}),
        )?;
        let work = self.work_dir(name);
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(io(&work))?;
        }
        let marker = self.marker_file(name);
        if marker.is_file() {
            std::fs::remove_file(&marker).map_err(io(&marker))?;
        }
        Ok(())
    }

    /// The result of a finished stage, or an error naming it and the stages that did finish.
    pub fn result(&self, name: &str) -> Result<Value, RunDirError> {
        match self.finished(name)? {
            Some(f) => Ok(f.result),
            None => Err(RunDirError::NotFinished {
                name: name.into(),
                dir: self.dir.join("stages"),
                finished: {
                    let done: Vec<String> = self
                        .stages()?
                        .into_iter()
                        .filter(|(_, s)| matches!(s, StageState::Done { .. }))
                        .map(|(n, _)| n)
                        .collect();
                    if done.is_empty() {
                        "none".into()
                    } else {
                        done.join(", ")
                    }
                },
            }),
        }
    }

    /// Mark stage `name` as under way with inputs `fingerprint`; its work folder, and what
    /// the attempt spent ([`RunDir::spend`]), are kept only when the same stage with the same
    /// inputs was interrupted before.
    pub fn begin(&self, name: &str, fingerprint: &str) -> Result<Start, RunDirError> {
        let marker = self.marker_file(name);
        let earlier = files::read_json(&marker)
            .ok()
            .filter(|m| m["fingerprint"].as_str() == Some(fingerprint));
        let resumable = earlier.is_some();
        // The old result goes first: from here on the stage must not look finished.
        let result = self.result_file(name);
        if result.is_file() {
            std::fs::remove_file(&result).map_err(io(&result))?;
        }
        let work = self.work_dir(name);
        let start = if resumable {
            Start::Resume
        } else {
            if work.exists() {
                std::fs::remove_dir_all(&work).map_err(io(&work))?;
            }
            Start::Fresh
        };
        let mut started =
            json!({"fingerprint": fingerprint, "pid": std::process::id(), "since": now()});
        if let Some(spend) = earlier.as_ref().and_then(|m| m.get("spend")) {
            started["spend"] = spend.clone();
        }
        files::write_json(&marker, &started)?;
        Ok(start)
    }

    /// Store a stage's result (atomically, paths inside the run relative to it) with what it
    /// spent when it asked a paid API, then clear its marker.
    pub fn finish(
        &self,
        name: &str,
        fingerprint: &str,
        parts: &serde_json::Map<String, Value>,
        seconds: f64,
        result: &Value,
        spend: Option<&Spend>,
    ) -> Result<(), RunDirError> {
        let (result, run_paths) = paths::relativize(result, &[&self.dir]);
        let mut record = json!({"fingerprint": fingerprint, "input_parts": parts,
                                "seconds": seconds, "finished_at": now(), "result": result,
                                "run_paths": run_paths});
        if let Some(spend) = spend {
            record["spend"] = json!(spend);
        }
        files::write_json(&self.result_file(name), &record)?;
        let marker = self.marker_file(name);
        std::fs::remove_file(&marker).map_err(io(&marker))
    }

    /// Keep what an unfinished attempt at stage `name` spent in its marker (its body failed:
    /// the report shows it, and a resumed attempt adds to it).
    pub fn keep_spend(&self, name: &str, spend: &Spend) -> Result<(), RunDirError> {
        let marker = self.marker_file(name);
        let mut started = files::read_json(&marker)?;
        started["spend"] = json!(spend);
        Ok(files::write_json(&marker, &started)?)
    }

    /// What stage `name` spent in this run: a finished stage's (not one reused from another
    /// run: that run spent it), else an unfinished attempt's; `None` when it asked no paid
    /// API.
    pub fn spend(&self, name: &str) -> Result<Option<Spend>, RunDirError> {
        let saved = [self.result_file(name), self.marker_file(name)]
            .into_iter()
            .find(|p| p.is_file());
        let Some(path) = saved else {
            return Ok(None);
        };
        let saved = files::read_json(&path)?;
        match saved
            .get("spend")
            .filter(|_| saved.get("reused_from").is_none())
        {
            None => Ok(None),
            Some(spend) => serde_json::from_value(spend.clone())
                .map(Some)
                .map_err(|e| RunDirError::Damaged {
                    path,
                    message: format!("`spend`: {e}"),
                }),
        }
    }

    /// Every stage that finished or started, in the order they started.
    pub fn stages(&self) -> Result<Vec<(String, StageState)>, RunDirError> {
        let dir = self.dir.join("stages");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
                continue;
            };
            let name = stem.to_string_lossy().into_owned();
            let state = match ext.to_str() {
                Some("json") => {
                    let Some(f) = self.finished(&name)? else {
                        continue;
                    };
                    StageState::Done {
                        seconds: f.seconds,
                        finished_at: f.finished_at,
                        reused_from: f.reused_from,
                    }
                }
                Some("running") => {
                    let marker = files::read_json(&path)?;
                    let since = marker["since"].as_f64().unwrap_or(0.0);
                    let pid = marker["pid"].as_u64().unwrap_or(0) as u32;
                    if process_alive(pid) {
                        StageState::Running { pid, since }
                    } else {
                        StageState::Interrupted { since }
                    }
                }
                _ => continue,
            };
            found.push((name, state));
        }
        let started = |s: &StageState| match s {
            StageState::Done {
                seconds,
                finished_at,
                ..
            } => finished_at - seconds,
            StageState::Running { since, .. } | StageState::Interrupted { since } => *since,
        };
        found.sort_by(|a, b| started(&a.1).total_cmp(&started(&b.1)));
        Ok(found)
    }

    /// The script that made this run, from `run.json`.
    pub fn script(&self) -> Option<String> {
        let info = files::read_json(&self.dir.join("run.json")).ok()?;
        info["script"].as_str().map(String::from)
    }
}

/// Whether the run at `dir` has stage `name` finished with inputs `fingerprint`.
pub fn finished_in(dir: &str, name: &str, fingerprint: &str) -> bool {
    RunDir::existing(Path::new(dir))
        .and_then(|run| run.finished(name))
        .is_ok_and(|done| done.is_some_and(|d| d.fingerprint == fingerprint))
}

/// Whether a process with this id exists (Linux: `/proc/PID`) and is not us: markers are
/// read by other processes (`rlmec status`) or by this one after its script ended (the
/// run's report), when none of our stages can still be running.
fn process_alive(pid: u32) -> bool {
    pid != 0 && pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
}

/// The run directories under `parent` (those with a `stages/` folder), oldest first.
pub fn list(parent: &Path) -> Result<Vec<RunDir>, RunDirError> {
    let mut runs = Vec::new();
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(runs),
        Err(e) => return Err(io(parent)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io(parent))?.path();
        if let Ok(run) = RunDir::existing(&path) {
            runs.push(run);
        }
    }
    runs.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(runs)
}

#[cfg(test)]
mod tests;
