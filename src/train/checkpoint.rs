//! Checkpoints: everything a run needs to continue exactly where it stopped — the model
//! (Hugging Face layout), the optimiser state, the step, the data position — and the
//! checks that a damaged one is never loaded.
//!
//! `out/checkpoints/step-00000040/` holds `model/`, `optimizer.safetensors` and
//! `state.json`. It is written as a hidden `.step-….partial-<pid>` directory and renamed
//! into place once complete; `state.json`, written last, records every file's size and
//! CRC-32, so a truncated or altered file is detected before anything is loaded. The
//! batch order and the learning rate are functions of the seed, the epoch and the step,
//! so they are recomputed, not stored.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::adamw::AdamW;
use crate::files;
use crate::model::{Model, hf};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    Unusable { path: PathBuf, message: String },
    #[error("{path}: cannot write checkpoint: {message}")]
    Write { path: PathBuf, message: String },
}

/// The `state.json` layout this build writes and reads.
pub const FORMAT: u32 = 1;

/// Where a run stands after `step` optimiser steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub step: usize,
    pub epoch: usize,
    /// The next micro-batch of `epoch`.
    pub batch: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    pub crc32: u32,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub position: Position,
    pub total_steps: usize,
    /// [`super::options::TrainOptions::trajectory`] of the run.
    pub trajectory: Value,
    /// Examples and a CRC-32 of their tokens and values.
    pub data: FileSum,
    pub files: BTreeMap<String, FileSum>,
}

fn sum_file(path: &Path) -> std::io::Result<FileSum> {
    let mut file = fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileSum {
        bytes,
        crc32: hasher.finalize(),
    })
}

/// Every file under `dir`, by path relative to it ('/'-separated).
fn files_under(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                stack.push(rel);
            } else {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn step_dir(root: &Path, step: usize) -> PathBuf {
    root.join(format!("step-{step:08}"))
}

/// Write a checkpoint under `root` (`out/checkpoints`) and keep only the newest `keep`.
pub fn save(
    root: &Path,
    model: &Model,
    optimizer: &AdamW,
    mut state: State,
    keep: usize,
) -> Result<PathBuf, CheckpointError> {
    let step = state.position.step;
    let dir = step_dir(root, step);
    let write_err = |message: String| CheckpointError::Write {
        path: dir.clone(),
        message,
    };
    let tmp = root.join(format!(".step-{step:08}.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| write_err(e.to_string()))?;
    let written = (|| {
        hf::save(model, &tmp.join("model")).map_err(|e| write_err(e.to_string()))?;
        hf::write_safetensors(&optimizer.state(), &tmp.join("optimizer.safetensors"))
            .map_err(|e| write_err(e.to_string()))?;
        state.files = BTreeMap::new();
        for rel in files_under(&tmp).map_err(|e| write_err(e.to_string()))? {
            let sum = sum_file(&tmp.join(&rel)).map_err(|e| write_err(format!("{rel}: {e}")))?;
            state.files.insert(rel, sum);
        }
        let json = serde_json::to_value(&state).expect("a checkpoint state serialises");
        files::write_json(&tmp.join("state.json"), &json).map_err(|e| write_err(e.to_string()))?;
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| write_err(e.to_string()))?;
        }
        fs::rename(&tmp, &dir).map_err(|e| write_err(e.to_string()))
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    written?;
    prune(root, keep);
    Ok(dir)
}

/// Checkpoint directories under `root`, newest first.
fn listed(root: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
}

fn prune(root: &Path, keep: usize) {
    for (_, dir) in listed(root).into_iter().skip(keep) {
        if let Err(e) = fs::remove_dir_all(&dir) {
            tracing::warn!("{}: cannot remove old checkpoint: {e}", dir.display());
        }
    }
}

/// Checks a checkpoint directory: its state parses and every recorded file has its size
/// and checksum.
pub fn verify(dir: &Path) -> Result<State, CheckpointError> {
    let unusable = |message: String| CheckpointError::Unusable {
        path: dir.to_path_buf(),
        message,
    };
    let state_path = dir.join("state.json");
    if !state_path.is_file() {
        return Err(unusable("incomplete: no state.json".into()));
    }
    let value = files::read_json(&state_path).map_err(|e| unusable(e.to_string()))?;
    let state: State =
        serde_json::from_value(value).map_err(|e| unusable(format!("state.json: {e}")))?;
    if state.format != FORMAT {
        return Err(unusable(format!(
            "state.json: format {} (this build reads {FORMAT})",
            state.format
        )));
    }
    for required in ["model/model.safetensors", "optimizer.safetensors"] {
        if !state.files.contains_key(required) {
            return Err(unusable(format!("state.json does not list {required}")));
        }
    }
    for (rel, want) in &state.files {
        let got = sum_file(&dir.join(rel)).map_err(|e| unusable(format!("{rel}: {e}")))?;
        if got.bytes != want.bytes {
            return Err(unusable(format!(
                "{rel}: {} bytes, {} recorded (truncated or replaced)",
                got.bytes, want.bytes
            )));
        }
        if got.crc32 != want.crc32 {
            return Err(unusable(format!("{rel}: checksum mismatch (corrupt)")));
        }
    }
    Ok(state)
}

/// The newest usable checkpoint under `root`. A damaged one is reported and skipped for
/// the one before it; when checkpoints exist but none is usable, that is an error.
pub fn newest(root: &Path) -> Result<Option<(PathBuf, State)>, CheckpointError> {
    let mut failures = Vec::new();
    for (_, dir) in listed(root) {
        match verify(&dir) {
            Ok(state) => {
                for failure in &failures {
                    tracing::warn!("skipping unusable checkpoint: {failure}");
                }
                return Ok(Some((dir, state)));
            }
            Err(e) => failures.push(e),
        }
    }
    match failures.into_iter().next() {
        None => Ok(None),
        Some(first) => Err(first),
    }
}

/// Load a verified checkpoint's weights and optimiser state.
pub fn load(
    dir: &Path,
    state: &State,
    model: &Model,
    optimizer: &mut AdamW,
) -> Result<(), CheckpointError> {
    let unusable = |message: String| CheckpointError::Unusable {
        path: dir.to_path_buf(),
        message,
    };
    hf::reload_weights(model, &dir.join("model")).map_err(|e| unusable(e.to_string()))?;
    let mut saved = std::collections::HashMap::new();
    hf::read_safetensors(&dir.join("optimizer.safetensors"), |name, t| {
        saved.insert(name.to_string(), t.to_device(model.device()));
        Ok(())
    })
    .map_err(|e| unusable(e.to_string()))?;
    optimizer
        .load_state(state.position.step as i64, saved)
        .map_err(|e| unusable(format!("optimizer.safetensors: {e}")))
}
