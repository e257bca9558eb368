//! One micro-batch through the model: the per-token quantities objectives are written in.
//!
//! Every example contributes a row `prompt ++ seq` and, for RLMEC, a row `prompt ++ reg`;
//! all rows go through the model in one right-padded forward. Only the positions that
//! predict a scored token go through the output head (a prompt's own positions never do),
//! and log-probabilities are taken as `logit[target] − logsumexp(logits)`, which keeps no
//! [N, vocab] log-softmax for the backward pass.

use tch::{Kind, Tensor};

use super::examples::{Example, RlTargets};
use crate::model::Model;
use crate::model::batch::Batch;
use crate::model::llama::{Replay, TrainPass, target_logprobs};

/// [B, T] tensors, row `i` for example `i`, zero past each row's length. `logp` and
/// `reg_logp` carry gradients; everything else is data.
pub struct TokenBatch {
    /// log π(seq[t] | prompt, seq[..t]).
    pub logp: Tensor,
    /// 1 on the tokens of `seq`.
    pub mask: Tensor,
    /// RLMEC records only: per-token reward and reference log-probability.
    pub reward: Option<Tensor>,
    pub ref_logp: Option<Tensor>,
    /// RLMEC records only: log π of the imitation sequence, its weights and mask.
    pub reg_logp: Option<Tensor>,
    pub reg_weight: Option<Tensor>,
    pub reg_mask: Option<Tensor>,
    /// Real (non-padding) tokens that went through the model.
    pub tokens: usize,
    /// A checkpointed forward's layer inputs, for the backward pass through the layers.
    pub replay: Option<Replay>,
}

/// One group of rows: each example's prompt followed by one of its sequences.
struct Rows<'a> {
    prompts: Vec<&'a [i64]>,
    seqs: Vec<&'a [i64]>,
    /// Padded width of the per-token tensors.
    width: usize,
}

impl<'a> Rows<'a> {
    fn new(examples: &[&'a Example], seq: impl Fn(&'a Example) -> &'a [i64]) -> Self {
        let seqs: Vec<&[i64]> = examples.iter().map(|e| seq(e)).collect();
        Self {
            prompts: examples.iter().map(|e| e.prompt.as_slice()).collect(),
            width: seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1),
            seqs,
        }
    }

    /// A [B, width] tensor of per-token values (zero-padded).
    fn values(&self, values: impl Fn(usize) -> &'a [f32]) -> Tensor {
        let mut flat = vec![0f32; self.seqs.len() * self.width];
        for i in 0..self.seqs.len() {
            let v = values(i);
            flat[i * self.width..i * self.width + v.len()].copy_from_slice(v);
        }
        Tensor::from_slice(&flat).view([self.seqs.len() as i64, self.width as i64])
    }
}

/// Where each scored token is predicted from and where its value goes.
#[derive(Default)]
struct Targets {
    rows: Vec<i64>,
    cols: Vec<i64>,
    ids: Vec<i64>,
    /// Flat index into the group's [B, width] tensor.
    slots: Vec<i64>,
}

impl Targets {
    /// The position before each sequence token predicts it; a sequence's first token after
    /// an empty prompt has no such position and is not scored.
    fn collect(rows: &Rows, first_row: usize) -> Self {
        let mut t = Self::default();
        for (i, (prompt, seq)) in rows.prompts.iter().zip(&rows.seqs).enumerate() {
            for (j, &id) in seq.iter().enumerate() {
                let Some(col) = (prompt.len() + j).checked_sub(1) else {
                    continue;
                };
                t.rows.push((first_row + i) as i64);
                t.cols.push(col as i64);
                t.ids.push(id);
                t.slots.push((i * rows.width + j) as i64);
            }
        }
        t
    }

    fn mask(&self, rows: &Rows) -> Tensor {
        let mut flat = vec![0f32; rows.seqs.len() * rows.width];
        for &s in &self.slots {
            flat[s as usize] = 1.0;
        }
        Tensor::from_slice(&flat).view([rows.seqs.len() as i64, rows.width as i64])
    }
}

/// Run `examples` through `model` (with gradients, unless called under `no_grad`).
pub fn forward(model: &Model, examples: &[&Example]) -> TokenBatch {
    forward_with(model, examples, TrainPass::default())
}

/// [`forward`] with gradient checkpointing or seeded dropout: a checkpointed batch's
/// [`TokenBatch::replay`] must be run after the loss's `backward`.
pub fn forward_with<'a>(model: &Model, examples: &[&'a Example], pass: TrainPass) -> TokenBatch {
    let device = model.device();
    let main = Rows::new(examples, |e| e.seq.as_slice());
    let reg_of = |e: &'a Example| e.reg.as_ref().expect("checked: every example has one");
    let reg = examples
        .iter()
        .all(|e| e.reg.is_some())
        .then(|| Rows::new(examples, |e| reg_of(e).ids.as_slice()));

    let groups: Vec<&Rows> = std::iter::once(&main).chain(reg.as_ref()).collect();
    let mut sequences = Vec::new();
    let mut targets = Vec::new();
    for g in &groups {
        targets.push(Targets::collect(g, sequences.len()));
        sequences.extend(
            g.prompts
                .iter()
                .zip(&g.seqs)
                .map(|(p, s)| [*p, *s].concat()),
        );
    }
    let tokens = sequences.iter().map(Vec::len).sum();
    let batch = Batch::right_padded(&sequences, model.pad_id(), device);
    let (hidden, replay) = model.hidden_train(&batch, pass);

    let cat = |f: fn(&Targets) -> &Vec<i64>| -> Tensor {
        let all: Vec<i64> = targets.iter().flat_map(|t| f(t).iter().copied()).collect();
        Tensor::from_slice(&all).to_device(device)
    };
    let picked = hidden.index(&[Some(cat(|t| &t.rows)), Some(cat(|t| &t.cols))]);
    let logits = model.net().logits(&picked).to_kind(Kind::Float);
    let logp_flat = target_logprobs(&logits, &cat(|t| &t.ids));

    // Scatter each group's log-probabilities into its [B, width] tensor.
    let mut offset = 0;
    let mut per_group = groups.iter().zip(&targets).map(|(g, t)| {
        let n = t.slots.len() as i64;
        let values = logp_flat.narrow(0, offset, n);
        offset += n;
        let slots = Tensor::from_slice(&t.slots).to_device(device);
        let logp = Tensor::zeros([(g.seqs.len() * g.width) as i64], (Kind::Float, device))
            .index_put(&[Some(slots)], &values, false)
            .view([g.seqs.len() as i64, g.width as i64]);
        (logp, t.mask(g).to_device(device))
    });
    let (logp, mask) = per_group.next().expect("the main group");
    let reg_out = per_group.next();

    let rl = examples.iter().all(|e| e.rl.is_some());
    let rl_of = |e: &'a Example| e.rl.as_ref().expect("checked: every example has one");
    let rl_values = |f: fn(&'a RlTargets) -> &'a [f32]| {
        rl.then(|| main.values(|i| f(rl_of(examples[i]))).to_device(device))
    };
    let (reg_logp, reg_mask) = match reg_out {
        Some((l, m)) => (Some(l), Some(m)),
        None => (None, None),
    };
    let reg_weight = reg.as_ref().map(|rows| {
        rows.values(|i| reg_of(examples[i]).weight.as_slice())
            .to_device(device)
    });
    TokenBatch {
        logp,
        mask,
        reward: rl_values(|r| &r.reward),
        ref_logp: rl_values(|r| &r.ref_logp),
        reg_logp,
        reg_weight,
        reg_mask,
        tokens,
        replay,
    }
}
