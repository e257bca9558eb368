//! Checkpoints: everything a run needs to continue exactly where it stopped — the model
//! (Hugging Face layout), the optimiser state, the step, the data position — and the
//! checks that a damaged one is never loaded.
//!
//! `out/checkpoints/step-00000040/` holds `model/` (Hugging Face layout) — or, for a LoRA
//! run, `adapter/` (PEFT's layout: the adapters only, megabytes) — `optimizer.safetensors`
//! (the state of what is trained) and `state.json`. It is written as a hidden
//! `.step-….partial-<pid>` directory and renamed into place once complete; `state.json`,
//! written last, records every file's size and CRC-32 (computed while the tensors stream
//! out, not by reading them back), so a truncated or altered file is detected before
//! anything is loaded. The batch order and the learning rate are functions of the seed, the
//! epoch and the step, so they are recomputed, not stored.
//!
//! A run that ends writes no checkpoint: its final model goes into `out` itself, followed by
//! `out/trained.json` (the same state, its files' sums), which tells a resume that the run is
//! done ([`finish`], [`finished`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::adamw::AdamW;
use crate::files;
pub use crate::model::safetensors_writer::FileSum;
use crate::model::{Model, hf, peft};

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

/// Where a model's trained weights go inside a checkpoint: the adapters alone for a LoRA
/// run, else the whole model.
fn weights_dir(model: &Model) -> &'static str {
    if model.lora().is_some() {
        "adapter"
    } else {
        "model"
    }
}

/// Write the trained weights into the existing directory `dir`: the whole model, or for a
/// LoRA run the adapter in PEFT's layout. Returns the weights file (relative) and its sum.
fn write_weights(model: &Model, dir: &Path) -> Result<(String, FileSum), String> {
    let result = if model.lora().is_some() {
        peft::write_adapter(model, dir).map(|sum| (peft::WEIGHTS_FILE, sum))
    } else {
        hf::write_model_files(model, dir).map(|sum| ("model.safetensors", sum))
    };
    result
        .map(|(file, sum)| (file.to_string(), sum))
        .map_err(|e| e.to_string())
}

/// Size and CRC-32 of every file under `dir`, taking those already known (`known`, by
/// relative path) instead of reading them again.
fn sums_under(
    dir: &Path,
    known: &BTreeMap<String, FileSum>,
) -> Result<BTreeMap<String, FileSum>, String> {
    let mut sums = BTreeMap::new();
    for rel in files_under(dir).map_err(|e| e.to_string())? {
        let sum = match known.get(&rel) {
            Some(sum) => *sum,
            None => sum_file(&dir.join(&rel)).map_err(|e| format!("{rel}: {e}"))?,
        };
        sums.insert(rel, sum);
    }
    Ok(sums)
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
        let weights = weights_dir(model);
        fs::create_dir_all(tmp.join(weights)).map_err(|e| write_err(e.to_string()))?;
        let mut known = BTreeMap::new();
        let (file, sum) = write_weights(model, &tmp.join(weights)).map_err(write_err)?;
        known.insert(format!("{weights}/{file}"), sum);
        let sum = hf::write_safetensors(&optimizer.state(), &tmp.join("optimizer.safetensors"))
            .map_err(|e| write_err(e.to_string()))?;
        known.insert("optimizer.safetensors".into(), sum);
        state.files = sums_under(&tmp, &known).map_err(write_err)?;
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

/// The record of a finished run, beside its final model in `out`.
const FINISHED: &str = "trained.json";

/// Write the final model into `out` (the whole model, or a LoRA run's adapter in PEFT's
/// layout, which `model_load(out)` loads onto its base), then `trained.json`.
pub fn finish(out: &Path, model: &Model, mut state: State) -> Result<(), CheckpointError> {
    let write_err = |message: String| CheckpointError::Write {
        path: out.to_path_buf(),
        message,
    };
    let mut weights = None;
    hf::write_into_dir(out, |tmp| {
        weights =
            Some(
                write_weights(model, tmp).map_err(|message| crate::model::ModelError::Save {
                    path: tmp.to_path_buf(),
                    message,
                })?,
            );
        Ok(())
    })
    .map_err(|e| write_err(e.to_string()))?;
    let (file, sum) = weights.expect("written above");
    // A full model and an adapter in one folder would be read as whichever a loader looks
    // for first: remove the other kind's files (an earlier run's).
    let other: &[&str] = if model.lora().is_some() {
        &[
            "config.json",
            "model.safetensors",
            "model.safetensors.index.json",
        ]
    } else {
        &[peft::CONFIG_FILE, peft::WEIGHTS_FILE]
    };
    for name in other {
        let _ = fs::remove_file(out.join(name));
    }
    state.files = BTreeMap::from([(file, sum)]);
    let json = serde_json::to_value(&state).expect("a checkpoint state serialises");
    files::write_json(&out.join(FINISHED), &json).map_err(|e| write_err(e.to_string()))
}

/// The state of a run that finished in `out`, if its record and final weights are whole.
pub fn finished(out: &Path) -> Option<State> {
    let path = out.join(FINISHED);
    if !path.is_file() {
        return None;
    }
    match verify_files(out, &path) {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::warn!("the finished run's record is unusable, resuming from checkpoints: {e}");
            None
        }
    }
}

/// Remove `out`'s record of a finished run, if any: a run starting there replaces it.
pub fn forget_finished(out: &Path) {
    let _ = fs::remove_file(out.join(FINISHED));
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
    let state = verify_files(dir, &dir.join("state.json"))?;
    let unusable = |message: String| CheckpointError::Unusable {
        path: dir.to_path_buf(),
        message,
    };
    let weights = [
        "model/model.safetensors",
        "adapter/adapter_model.safetensors",
    ];
    if !weights.iter().any(|w| state.files.contains_key(*w)) {
        return Err(unusable(format!(
            "state.json lists neither {}",
            weights.join(" nor ")
        )));
    }
    if !state.files.contains_key("optimizer.safetensors") {
        return Err(unusable(
            "state.json does not list optimizer.safetensors".into(),
        ));
    }
    Ok(state)
}

/// Reads the state at `state_path` and checks every file it lists (relative to `dir`).
fn verify_files(dir: &Path, state_path: &Path) -> Result<State, CheckpointError> {
    let unusable = |message: String| CheckpointError::Unusable {
        path: dir.to_path_buf(),
        message,
    };
    let name = state_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !state_path.is_file() {
        return Err(unusable(format!("incomplete: no {name}")));
    }
    let value = files::read_json(state_path).map_err(|e| unusable(e.to_string()))?;
    let state: State =
        serde_json::from_value(value).map_err(|e| unusable(format!("{name}: {e}")))?;
    if state.format != FORMAT {
        return Err(unusable(format!(
            "{name}: format {} (this build reads {FORMAT})",
            state.format
        )));
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
    load_weights(&dir.join(weights_dir(model)), model)?;
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

/// Overwrite what `model` trains with the weights saved in `dir` (a checkpoint's, or a finished
/// run's `out`): the attached adapters from a PEFT adapter, else every parameter from a Hugging
/// Face model.
pub fn load_weights(dir: &Path, model: &Model) -> Result<(), CheckpointError> {
    let unusable = |message: String| CheckpointError::Unusable {
        path: dir.to_path_buf(),
        message,
    };
    if model.lora().is_some() {
        let files = peft::read_adapter(dir).map_err(|e| unusable(e.to_string()))?;
        if Some(&files.config) != model.lora().map(|a| &a.config) {
            return Err(unusable(format!(
                "the saved adapter is {:?}, the run's {:?}",
                files.config,
                model.lora().map(|a| &a.config)
            )));
        }
        model
            .fill_lora(&dir.join(peft::WEIGHTS_FILE), files.tensors)
            .map_err(|e| unusable(e.to_string()))
    } else {
        hf::reload_weights(model, dir).map_err(|e| unusable(e.to_string()))
    }
}
