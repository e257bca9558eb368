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

/// How a model's new parameters are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamInit {
    /// Drawn from N(0, std), or left unset for a loader to fill (no time spent drawing).
    pub random: bool,
    pub std: f64,
    /// The dtype the large matrices are made in: made in the model's dtype, a bf16 model never
    /// holds an f32 copy of its weights.
    pub kind: Kind,
    /// Keep oneDNN-packed copies for inference ([`PackedWeight`]).
    pub pack: bool,
}

/// A `[rows, cols]` parameter stored column-major (its transpose is contiguous).
///
/// The shape, the name and every value are the checkpoint's; only the memory order differs.
/// For `x·Wᵀ` with few rows of `x` (decoding), MKL streams a column-major `W` about twice as
/// fast as a row-major one, and decoding is bound by exactly that stream (measured here:
/// 11.8 → 19 GB/s for a layer's weights at batch 1, 9.9 → 4.6 ms for SmolLM2's output head).
/// The tensor is made with column-major strides rather than as the transposed view of a
/// row-major one: a view keeps its base alive, so converting the model's dtype later would
/// keep the old storage too (the whole model again, in f32).
pub fn column_major(p: &nn::Path, name: &str, rows: i64, cols: i64, init: ParamInit) -> Tensor {
    let t = Tensor::empty_strided([rows, cols], [1, rows], (init.kind, p.device()));
    if init.random {
        // The same draws as ever: N(0, std) over the [cols, rows] storage, in f32.
        let drawn = Tensor::randn([cols, rows], (Kind::Float, p.device())) * init.std;
        crate::grad::no_grad(|| t.shallow_clone().copy_(&drawn.tr()));
    }
    p.add(name, t, true)
}

impl Linear {
    pub fn new(
        p: nn::Path,
        (in_dim, out_dim): (i64, i64),
        bias: bool,
        init: ParamInit,
        salt: i64,
    ) -> Self {
        let weight = column_major(&p, "weight", out_dim, in_dim, init);
        let bias = bias.then(|| p.var("bias", &[out_dim], Init::Const(0.0)));
        Self {
            weight,
            bias,
            packed: PackedWeight::new(init.pack),
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
            Pass::Train { dropout_seed } => dropout_seed.map(|s| super::lora::mix(s, self.salt)),
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

    /// Attach a fresh adapter (callers merge an attached one first).
    pub fn attach(&mut self, config: &LoraConfig) -> &LoraAdapter {
        let (out_dim, in_dim) = self.shape();
        self.lora.insert(LoraAdapter::new(
            in_dim,
            out_dim,
            config,
            self.weight.device(),
        ))
    }

    /// Fold the adapter into the weight and drop it; the packed copy is remade on next use
    /// (the weight's modification count changed).
    pub fn merge(&mut self) {
        if let Some(adapter) = self.lora.take() {
            adapter.merge_into(&self.weight);
        }
    }
}
