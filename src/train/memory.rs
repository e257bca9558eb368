//! What a training run will need in memory, said in one log line before it starts: the
//! weights, the gradients and optimiser state of what is trained, and an estimate of the
//! activations one micro-batch keeps for the backward pass.
//!
//! The activation figure counts the tensors a llama layer saves for its backward (the
//! normalised inputs, q/k/v and the attention output, the MLP's gate, up and product, the
//! f32 normalisation temporaries) and the output head's f32 logits; it is an estimate —
//! allocator slack and the attention kernel's workspace come on top.

use std::fmt;

use tch::Kind;

use super::options::TrainOptions;
use crate::model::Model;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub weights: u64,
    pub trainable_params: u64,
    pub gradients: u64,
    pub optimizer: u64,
    pub activations: u64,
    /// Rows × tokens of the largest micro-batch the estimate assumes.
    pub rows: usize,
    pub tokens: usize,
    pub checkpointing: bool,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.weights + self.gradients + self.optimizer + self.activations
    }
}

fn elem_bytes(kind: Kind) -> u64 {
    match kind {
        Kind::BFloat16 | Kind::Half => 2,
        Kind::Double => 8,
        _ => 4,
    }
}

/// The estimate for training `model` with `opts` on examples of `lengths` tokens.
pub fn estimate(model: &Model, opts: &TrainOptions, lengths: &[usize]) -> Estimate {
    let weights = model
        .var_store()
        .variables()
        .values()
        .map(|t| t.numel() as u64 * elem_bytes(t.kind()))
        .sum::<u64>()
        + model.lora().map_or(0, |a| a.num_parameters() as u64 * 4);
    let (mut trainable_params, mut gradients, mut optimizer) = (0, 0, 0);
    for t in model.trainable().values() {
        let n = t.numel() as u64;
        trainable_params += n;
        gradients += n * elem_bytes(t.kind());
        // Two f32 moments, and an f32 master copy of a reduced-precision parameter.
        optimizer += n * if t.kind() == Kind::Float { 8 } else { 12 };
    }
    let c = &model.config;
    let (h, i, v) = (
        c.hidden_size as u64,
        c.intermediate_size as u64,
        c.vocab_size as u64,
    );
    let layers = c.num_hidden_layers as u64;
    let e = elem_bytes(model.dtype.kind());
    let rows = opts.batch_size.min(lengths.len().max(1));
    let longest = lengths.iter().copied().max().unwrap_or(0).min(opts.max_len);
    let tokens = (rows * longest) as u64;
    let per_layer_token = e * (10 * h + 4 * i) + 8 * h;
    let layer_activations = if opts.grad_checkpoint {
        layers * tokens * h * e + tokens * per_layer_token
    } else {
        layers * tokens * per_layer_token
    };
    let head = tokens * v * (e + 8);
    Estimate {
        weights,
        trainable_params,
        gradients,
        optimizer,
        activations: layer_activations + head,
        rows,
        tokens: longest,
        checkpointing: opts.grad_checkpoint,
    }
}

/// Bytes as GB (or MB below one GB).
fn size(bytes: u64) -> String {
    let gb = bytes as f64 / 1e9;
    if gb >= 1.0 {
        format!("{gb:.2} GB")
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory: weights {}, gradients {} and optimiser state {} ({} trained parameters), activations ≈ {} ({} × {} tokens{}): ≈ {} in all",
            size(self.weights),
            size(self.gradients),
            size(self.optimizer),
            self.trainable_params,
            size(self.activations),
            self.rows,
            self.tokens,
            if self.checkpointing {
                ", layers recomputed"
            } else {
                ""
            },
            size(self.total())
        )
    }
}
