//! LoRA (Hu et al., 2021) as PEFT implements it: beside a frozen linear layer `W`, two small
//! f32 matrices `A` [r, in] and `B` [out, r] whose product is the trainable update, so the
//! layer computes `W x + (alpha / r) · B(A(dropout(x)))`.
//!
//! The arithmetic follows PEFT's `lora.Linear` (peft/tuners/lora/layer.py) step for step:
//! `A` is Kaiming-uniform with `a = √5` (uniform in ±1/√in), `B` starts at zero so a fresh
//! adapter changes nothing; the input is cast to the adapters' f32, the low-rank term is added
//! to the base output in f32 and the sum cast back to the base's dtype; merging adds
//! `scale · B A`, cast to the weight's dtype, into `W`.
//!
//! Adapters are named as PEFT names them without its `base_model.model.` prefix
//! (`model.layers.0.self_attn.q_proj.lora_A.weight`), so a checkpoint, an optimiser state
//! and PEFT's `adapter_model.safetensors` ([`super::adapter_io`]) all speak one language.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The linear layers an adapter may sit beside, by their Hugging Face module names.
pub const TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// What an adapter looks like: `m.train(records, #{lora: #{r, alpha, dropout, targets}})`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update.
    #[serde(default = "default_r")]
    pub r: usize,
    /// The update is scaled by `alpha / r`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Dropout on the adapters' input while training.
    #[serde(default)]
    pub dropout: f64,
    /// Module names the adapters sit beside (a subset of [`TARGETS`]).
    #[serde(default = "default_targets")]
    pub targets: Vec<String>,
}

fn default_r() -> usize {
    16
}

fn default_alpha() -> f64 {
    32.0
}

fn default_targets() -> Vec<String> {
    TARGETS.iter().map(|t| t.to_string()).collect()
}

impl Default for LoraConfig {
    /// r 16, alpha 32, no dropout, every projection of attention and MLP.
    fn default() -> Self {
        Self {
            r: default_r(),
            alpha: default_alpha(),
            dropout: 0.0,
            targets: default_targets(),
        }
    }
}

impl LoraConfig {
    /// The factor of the low-rank term.
    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.r == 0 {
            return Err("lora.r must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(format!(
                "lora.alpha must be a positive number, got {}",
                self.alpha
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "lora.dropout must be within [0, 1), got {}",
                self.dropout
            ));
        }
        if self.targets.is_empty() {
            return Err("lora.targets is empty: name at least one module".into());
        }
        if let Some(bad) = self.targets.iter().find(|t| !TARGETS.contains(&t.as_str())) {
            return Err(format!(
                "lora.targets: unknown module `{bad}` (expected some of {})",
                TARGETS.join(", ")
            ));
        }
        Ok(())
    }

    pub fn targets(&self, module: &str) -> bool {
        self.targets.iter().any(|t| t == module)
    }
}

/// One layer's adapter pair.
#[derive(Debug)]
pub struct LoraAdapter {
    /// [r, in], f32.
    pub a: Tensor,
    /// [out, r], f32.
    pub b: Tensor,
    pub scale: f64,
    pub dropout: f64,
}

impl LoraAdapter {
    /// A fresh pair for a layer `in_dim → out_dim`, as PEFT initialises it: `A` uniform in
    /// ±1/√in (Kaiming-uniform with a = √5), `B` zero.
    pub fn new(in_dim: i64, out_dim: i64, config: &LoraConfig, device: Device) -> Self {
        let r = config.r as i64;
        let bound = 1.0 / (in_dim as f64).sqrt();
        let a = tch::no_grad(|| {
            Tensor::empty([r, in_dim], (Kind::Float, device)).uniform_(-bound, bound)
        });
        let b = Tensor::zeros([out_dim, r], (Kind::Float, device));
        Self {
            a: a.set_requires_grad(true),
            b: b.set_requires_grad(true),
            scale: config.scale(),
            dropout: config.dropout,
        }
    }

    /// `base + scale · B(A(dropout(x)))`, where `base` is the frozen layer's output for `x`.
    /// Dropout applies when a seed is given (training), with the masks of [`keep_mask`].
    pub fn add_to(&self, base: Tensor, x: &Tensor, dropout_seed: Option<i64>) -> Tensor {
        let x = x.to_kind(Kind::Float);
        let x = match dropout_seed.filter(|_| self.dropout > 0.0) {
            Some(seed) => {
                let keep = keep_mask(&x.size(), self.dropout, seed, x.device());
                x * keep / (1.0 - self.dropout)
            }
            None => x,
        };
        let update = x
            .linear::<Tensor>(&self.a, None)
            .linear::<Tensor>(&self.b, None)
            * self.scale;
        match base.kind() {
            Kind::Float => base + update,
            kind => (base.to_kind(Kind::Float) + update).to_kind(kind),
        }
    }

    /// Fold `scale · B A` into `weight` (in f32, rounded once to the weight's dtype, as
    /// PEFT's `weight.data += delta` does).
    pub fn merge_into(&self, weight: &Tensor) {
        tch::no_grad(|| {
            let _ = weight
                .shallow_clone()
                .g_add_(&(self.b.matmul(&self.a) * self.scale));
        });
    }
}

/// A 0/1 f32 mask of `shape` keeping each element with probability `1 − p`, as a pure
/// function of `seed` and the element's index: an integer hash (three rounds of
/// `x ← ((x >> 16) ^ x) · 0x45d9f3b mod 2³²`) of `index + seed·φ` computed with tensor
/// operations, so it is the same on every device, in every thread and on every recomputation,
/// without touching torch's global generator. Every product stays below 2⁵⁹: no overflow.
pub fn keep_mask(shape: &[i64], p: f64, seed: i64, device: Device) -> Tensor {
    const MASK32: i64 = 0xffff_ffff;
    let n: i64 = shape.iter().product();
    let offset = seed.wrapping_mul(0x9e37_79b9) & MASK32;
    let mut x = (Tensor::arange(n, (Kind::Int64, device)) + offset).bitwise_and(MASK32);
    for _ in 0..3 {
        x = ((x
            .bitwise_right_shift_tensor_scalar(16)
            .bitwise_xor_tensor(&x))
            * 0x045d_9f3b)
            .bitwise_and(MASK32);
    }
    x = x
        .bitwise_right_shift_tensor_scalar(16)
        .bitwise_xor_tensor(&x);
    let threshold = (p * 4_294_967_296.0) as i64;
    x.ge(threshold).to_kind(Kind::Float).view(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_masks_keep_the_asked_share_and_depend_on_the_seed_only() {
        let a = keep_mask(&[64, 1000], 0.1, 7, Device::Cpu);
        let kept = a.mean(Kind::Float).double_value(&[]);
        assert!((kept - 0.9).abs() < 0.01, "{kept}");
        assert!(a.equal(&keep_mask(&[64, 1000], 0.1, 7, Device::Cpu)));
        let b = keep_mask(&[64, 1000], 0.1, 8, Device::Cpu);
        let same = a
            .eq_tensor(&b)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!(same < 0.9, "other seeds give other masks: {same}");
        // Neighbouring elements are not correlated.
        let flat = a.view([-1]);
        let (x, y) = (flat.narrow(0, 0, 63_999), flat.narrow(0, 1, 63_999));
        let both = (&x * &y).mean(Kind::Float).double_value(&[]);
        assert!((both - 0.81).abs() < 0.01, "{both}");
    }
}
