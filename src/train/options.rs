//! Everything that shapes a training run, with the paper's defaults where it has them.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::adamw::AdamWConfig;
use super::objective::RlmecParams;
use super::schedule::Schedule;
use crate::model::lora::LoraConfig;

/// `m.train`'s options (besides the objective), by the names scripts give them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Examples per micro-batch (one forward/backward); losses are normalised per
    /// micro-batch, as in the public trainer.
    pub batch_size: usize,
    /// Micro-batches per optimiser step (effective batch = batch_size × grad_accum).
    pub grad_accum: usize,
    pub warmup_ratio: f64,
    pub schedule: Schedule,
    #[serde(flatten)]
    pub adamw: AdamWConfig,
    /// Clip the global gradient norm to this (0: no clipping).
    pub max_grad_norm: f64,
    /// Prompt + sequence tokens per row; longer sequences are cut.
    pub max_len: usize,
    #[serde(flatten)]
    pub rlmec: RlmecParams,
    pub seed: u64,
    /// Run directory: the final model (Hugging Face layout), `metrics.jsonl`, `checkpoints/`.
    pub out: Option<PathBuf>,
    /// Optimiser steps between checkpoints (0: only at the end).
    pub checkpoint_every: usize,
    /// Checkpoints kept (the newest ones).
    pub keep_checkpoints: usize,
    /// Continue from the newest checkpoint in `out` when there is one.
    pub resume: bool,
    /// Stop after this many optimiser steps of the run as if killed (no final save): to
    /// study resumption, or to spend a fixed budget and continue later.
    pub halt_at_step: Option<usize>,
    /// Train LoRA adapters on the frozen model instead of every weight (a rank of 0 means
    /// none).
    #[serde(deserialize_with = "lora_unless_rank_0")]
    pub lora: Option<LoraConfig>,
    /// Recompute each decoder layer in the backward pass instead of keeping its activations.
    pub grad_checkpoint: bool,
}

fn lora_unless_rank_0<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LoraConfig>, D::Error> {
    Option::<LoraConfig>::deserialize(d).map(|lora| lora.filter(|l| l.r > 0))
}

impl Default for TrainOptions {
    /// The settings of docs/method.md, step 7, with the effective batch of 128 as 8 × 16.
    fn default() -> Self {
        Self {
            epochs: 3,
            lr: 5e-6,
            batch_size: 8,
            grad_accum: 16,
            warmup_ratio: 0.03,
            schedule: Schedule::Cosine,
            adamw: AdamWConfig::default(),
            max_grad_norm: 1.0,
            max_len: 2048,
            rlmec: RlmecParams::default(),
            seed: 0,
            out: None,
            checkpoint_every: 100,
            keep_checkpoints: 2,
            resume: true,
            halt_at_step: None,
            lora: None,
            grad_checkpoint: false,
        }
    }
}

impl TrainOptions {
    /// The options that decide the trajectory, as recorded in checkpoints: resuming with
    /// any of them changed would not continue the same run.
    pub fn trajectory(&self, objective: &str) -> Value {
        let mut trajectory = json!({
            "objective": objective,
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "warmup_ratio": self.warmup_ratio,
            "schedule": self.schedule.as_str(),
            "weight_decay": self.adamw.weight_decay,
            "adam_beta1": self.adamw.beta1,
            "adam_beta2": self.adamw.beta2,
            "adam_eps": self.adamw.eps,
            "max_grad_norm": self.max_grad_norm,
            "max_len": self.max_len,
            "clip_eps": self.rlmec.clip_eps,
            "reg_weight": self.rlmec.reg_weight,
            "seed": self.seed,
        });
        // Only when set, so that full fine-tuning's checkpoints keep their record.
        // (`grad_checkpoint` recomputes the same values: a resume may switch it.)
        if let Some(lora) = &self.lora {
            trajectory["lora"] = serde_json::to_value(lora).expect("a LoRA config serialises");
        }
        trajectory
    }

    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("grad_accum", self.grad_accum),
            ("max_len", self.max_len),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(format!(
                "`lr` must be a non-negative number, got {}",
                self.lr
            ));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(format!(
                "`warmup_ratio` must be within [0, 1], got {}",
                self.warmup_ratio
            ));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return Err(format!(
                "`max_grad_norm` must be a non-negative number (0: no clipping), got {:?}",
                self.max_grad_norm
            ));
        }
        self.adamw.validate()?;
        self.rlmec.validate()?;
        if self
            .out
            .as_ref()
            .is_some_and(|out| out.as_os_str().is_empty())
        {
            return Err("`out` is empty: give a folder, or leave it unset to keep nothing".into());
        }
        if self.keep_checkpoints == 0 {
            return Err("`keep_checkpoints` must be at least 1".into());
        }
        if let Some(lora) = &self.lora {
            lora.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_by_the_names_scripts_give_them() {
        let o: TrainOptions = serde_json::from_value(json!({
            "adam_beta2": 0.95, "clip_eps": 0.2, "schedule": "linear", "lora": {"r": 0}
        }))
        .unwrap();
        assert_eq!(
            (o.adamw.beta2, o.rlmec.clip_eps, o.schedule, o.lora),
            (0.95, 0.2, Schedule::Linear, None)
        );
        assert_eq!(o.epochs, TrainOptions::default().epochs);
        let e = serde_json::from_value::<TrainOptions>(json!({"lrr": 1})).unwrap_err();
        assert_eq!(e.to_string(), "unknown field `lrr`");
    }
}
