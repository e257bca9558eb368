//! The decoder's linear layers: `x·Wᵀ + b` through the fastest kernel that applies —
//! the streaming kernel for decoding ([`super::gemv`]), oneDNN's prepacked product for other
//! inference ([`super::onednn`]), torch otherwise — plus, when one is attached, a LoRA
//! adapter's low-rank update ([`super::lora`]).

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use super::gemv;
use super::lora::{LoraAdapter, LoraConfig};
use super::onednn::PackedWeight;

/// What a forward pass is for, which decides the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Inference over many rows (scoring, prefill): oneDNN's packed product where it applies.
    Infer,
    /// Inference with a KV cache: the streaming kernel serves a few rows.
    Decode,
    /// Training: torch's differentiable kernels. An adapter's dropout applies when a seed is
    /// given (its masks are a function of the seed, the layer and the module).
    Train { dropout_seed: Option<i64> },
}

impl Pass {
    /// `pass`, or [`Pass::Decode`] where a KV cache is in use.
    pub fn of(pass: Pass, cached: bool) -> Pass {
        if cached { Pass::Decode } else { pass }
    }
}

/// `x·Wᵀ + b`, weights in `[out, in]` as in PyTorch.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// oneDNN's copy of `weight` for inference on many rows.
    packed: PackedWeight,
    lora: Option<LoraAdapter>,
    /// This layer's index within its block: its dropout masks differ from its siblings'.
    salt: i64,
}

/// A `[rows, cols]` parameter stored column-major (its transpose is contiguous).
///
/// The shape, the name and every value are the checkpoint's; only the memory order differs.
/// For `x·Wᵀ` with few rows of `x` (decoding), MKL streams a column-major `W` about twice as
/// fast as a row-major one, and decoding is bound by exactly that stream (measured here:
/// 11.8 → 19 GB/s for a layer's weights at batch 1, 9.9 → 4.6 ms for SmolLM2's output head).
pub fn column_major(p: &nn::Path, name: &str, rows: i64, cols: i64, std: f64) -> Tensor {
    let storage = Tensor::randn([cols, rows], (Kind::Float, p.device())) * std;
    p.add(name, storage.tr(), true)
}

impl Linear {
    pub fn new(
        p: nn::Path,
        (in_dim, out_dim): (i64, i64),
        bias: bool,
        (std, pack): (f64, bool),
        salt: i64,
    ) -> Self {
        let weight = column_major(&p, "weight", out_dim, in_dim, std);
        let bias = bias.then(|| p.var("bias", &[out_dim], Init::Const(0.0)));
        Self {
            weight,
            bias,
            packed: PackedWeight::new(pack),
            lora: None,
            salt,
        }
    }

    pub fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        let bias = self.bias.as_ref();
        let torch = || x.linear(&self.weight, bias);
        let base = match pass {
            Pass::Decode => gemv::linear(x, &self.weight, bias)
                .or_else(|| self.packed.linear(x, &self.weight, bias))
                .unwrap_or_else(torch),
            Pass::Infer => self
                .packed
                .linear(x, &self.weight, bias)
                .unwrap_or_else(torch),
            Pass::Train { .. } => {
                // A weight being trained changes every step: its packed copy would only
                // hold memory. A frozen one (under an adapter) keeps it for inference.
                if self.weight.requires_grad() {
                    self.packed.release();
                }
                torch()
            }
        };
        let dropout_seed = match pass {
            Pass::Train { dropout_seed } => dropout_seed.map(|s| s.wrapping_mul(8) + self.salt),
            _ => None,
        };
        match &self.lora {
            Some(adapter) => adapter.add_to(base, x, dropout_seed),
            None => base,
        }
    }

    /// `[out, in]`.
    pub fn shape(&self) -> (i64, i64) {
        let size = self.weight.size();
        (size[0], size[1])
    }

    /// Attach a fresh adapter (replacing none: callers merge or detach first).
    pub fn attach(&mut self, config: &LoraConfig) -> &LoraAdapter {
        let (out_dim, in_dim) = self.shape();
        self.lora.insert(LoraAdapter::new(
            in_dim,
            out_dim,
            config,
            self.weight.device(),
        ))
    }

    pub fn adapter(&self) -> Option<&LoraAdapter> {
        self.lora.as_ref()
    }

    /// Fold the adapter into the weight and drop it; the packed copy is remade on next use
    /// (the weight's modification count changed).
    pub fn merge(&mut self) {
        if let Some(adapter) = self.lora.take() {
            adapter.merge_into(&self.weight);
        }
    }
}
