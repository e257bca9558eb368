//! A training run's state beside the loop: its examples and their fingerprint, its
//! schedule, and what it reads from and writes to its checkpoints (resuming, recognising a
//! run that already finished, saving).

use std::path::PathBuf;

use serde_json::Value;

use super::TrainError;
use super::adamw::AdamW;
use super::checkpoint::{self, FileSum, Position, State};
use super::examples::Example;
use super::metrics::MetricsLog;
use super::objective::Objective;
use super::options::TrainOptions;
use super::schedule::LrSchedule;
use super::trainer::TrainReport;
use crate::model::Model;

/// CRC-32 over every example's tokens and values: the identity of the data in checkpoints.
pub(super) fn fingerprint(examples: &[Example]) -> FileSum {
    let mut h = crc32fast::Hasher::new();
    for e in examples {
        for ids in [&e.prompt, &e.seq] {
            h.update(&(ids.len() as u64).to_le_bytes());
            ids.iter().for_each(|id| h.update(&id.to_le_bytes()));
        }
        if let Some(rl) = &e.rl {
            for v in rl.reward.iter().chain(&rl.ref_logp) {
                h.update(&v.to_le_bytes());
            }
        }
        if let Some(reg) = &e.reg {
            reg.ids.iter().for_each(|id| h.update(&id.to_le_bytes()));
            reg.weight.iter().for_each(|v| h.update(&v.to_le_bytes()));
        }
    }
    FileSum {
        bytes: examples.len() as u64,
        crc32: h.finalize(),
    }
}

/// The options whose values differ between a checkpoint and this run.
fn changed(saved: &Value, now: &Value) -> Vec<String> {
    let (Some(saved), Some(now)) = (saved.as_object(), now.as_object()) else {
        return vec!["(all)".into()];
    };
    let shown = |v: Option<&Value>| v.map_or("unset".to_string(), Value::to_string);
    let keys: std::collections::BTreeSet<&String> = saved.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter(|k| saved.get(*k) != now.get(*k))
        .map(|k| {
            format!(
                "{k} (checkpoint {}, now {})",
                shown(saved.get(k)),
                shown(now.get(k))
            )
        })
        .collect()
}

pub(super) struct Run<'a> {
    pub model: &'a Model,
    pub opts: &'a TrainOptions,
    pub examples: Vec<Example>,
    pub lengths: Vec<usize>,
    pub batches_per_epoch: usize,
    pub total_steps: usize,
    pub schedule: LrSchedule,
    pub trajectory: Value,
    pub data: FileSum,
}

impl Run<'_> {
    fn checkpoints(&self) -> Option<PathBuf> {
        self.opts.out.as_ref().map(|o| o.join("checkpoints"))
    }

    pub(super) fn state(&self, position: Position) -> State {
        State {
            format: checkpoint::FORMAT,
            position,
            total_steps: self.total_steps,
            trajectory: self.trajectory.clone(),
            data: self.data,
            files: Default::default(),
        }
    }

    pub(super) fn save_checkpoint(
        &self,
        optimizer: &AdamW,
        position: Position,
    ) -> Result<(), TrainError> {
        if let Some(root) = self.checkpoints() {
            let dir = checkpoint::save(
                &root,
                self.model,
                optimizer,
                self.state(position),
                self.opts.keep_checkpoints,
            )?;
            tracing::info!("checkpoint {}", dir.display());
        }
        Ok(())
    }

    /// A report of the run as it ended, when `out` holds this very run finished (its final
    /// model is loaded into the model, as if trained again).
    pub(super) fn finished(
        &self,
        objective: &dyn Objective,
    ) -> Result<Option<TrainReport>, TrainError> {
        let Some(out) = self.opts.out.as_ref().filter(|_| self.opts.resume) else {
            return Ok(None);
        };
        let Some(state) = checkpoint::finished(out) else {
            return Ok(None);
        };
        if state.trajectory != self.trajectory
            || state.data != self.data
            || state.position.step != self.total_steps
        {
            return Ok(None);
        }
        checkpoint::load_weights(out, self.model)?;
        let (_, history) = MetricsLog::open(&out.join("metrics.jsonl"), state.position.step)?;
        tracing::info!(
            "{}: this training ({}) already finished; its final model is loaded",
            out.display(),
            objective.name()
        );
        Ok(Some(TrainReport {
            steps: state.position.step,
            total_steps: self.total_steps,
            history,
            skipped: 0,
            resumed_from: Some(state.position.step),
            halted: false,
            seconds: 0.0,
            tokens: 0,
            out: Some(out.clone()),
        }))
    }

    /// Load the newest checkpoint if resuming; the position to start from.
    pub(super) fn resume(&self, optimizer: &mut AdamW) -> Result<Option<Position>, TrainError> {
        let Some(root) = self.checkpoints().filter(|_| self.opts.resume) else {
            return Ok(None);
        };
        let Some((dir, state)) = checkpoint::newest(&root)? else {
            return Ok(None);
        };
        let differences = changed(&state.trajectory, &self.trajectory);
        if !differences.is_empty() {
            return Err(TrainError::Resume(format!(
                "{}: this run's options differ from the checkpoint's: {}; pass `resume: false` to start over, or another `out`",
                dir.display(),
                differences.join(", ")
            )));
        }
        if state.data != self.data {
            return Err(TrainError::Resume(format!(
                "{}: the checkpoint was trained on other records ({} examples, crc {:08x}; now {}, {:08x}); pass `resume: false` to start over, or another `out`",
                dir.display(),
                state.data.bytes,
                state.data.crc32,
                self.data.bytes,
                self.data.crc32
            )));
        }
        checkpoint::load(&dir, &state, self.model, optimizer)?;
        tracing::info!(
            "resuming from {} (step {} of {})",
            dir.display(),
            state.position.step,
            self.total_steps
        );
        Ok(Some(state.position))
    }
}
