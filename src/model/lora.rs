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
//! and PEFT's `adapter_model.safetensors` ([`super::peft`]) all speak one language.

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
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a map #{r, alpha, dropout, targets}"
)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// The update is scaled by `alpha / r`.
    pub alpha: f64,
    /// Dropout on the adapters' input while training.
    pub dropout: f64,
    /// Module names the adapters sit beside (a subset of [`TARGETS`]), kept in [`TARGETS`]'
    /// order without repeats, so that two configs naming the same modules are equal.
    #[serde(deserialize_with = "deserialize_targets")]
    pub targets: Vec<String>,
}

fn deserialize_targets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d).map(canonical_targets)
}

/// `targets` in [`TARGETS`]' order (unknown names last, for `validate` to report), once each.
pub fn canonical_targets(mut targets: Vec<String>) -> Vec<String> {
    let rank = |t: &String| TARGETS.iter().position(|k| k == t).unwrap_or(TARGETS.len());
    targets.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    targets.dedup();
    targets
}

impl Default for LoraConfig {
    /// r 16, alpha 32, no dropout, every projection of attention and MLP.
    fn default() -> Self {
        Self {
            r: 16,
            alpha: 32.0,
            dropout: 0.0,
            targets: TARGETS.iter().map(|t| t.to_string()).collect(),
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
        let a = crate::grad::no_grad(|| {
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
        // The scale goes on the r-wide `A x` and the sum into the product's accumulation
        // (`addmm`): no full-width temporaries beyond the output, in either pass.
        let xa = x.linear::<Tensor>(&self.a, None) * self.scale;
        let size = base.size();
        let (out, r) = (size[size.len() - 1], self.a.size()[0]);
        let sum = |base: &Tensor| {
            base.reshape([-1, out])
                .addmm(&xa.reshape([-1, r]), &self.b.tr())
                .view(size.as_slice())
        };
        match base.kind() {
            Kind::Float => sum(&base),
            kind => sum(&base.to_kind(Kind::Float)).to_kind(kind),
        }
    }

    /// Fold `scale · B A` into `weight` (in f32, rounded once to the weight's dtype, as
    /// PEFT's `weight.data += delta` does).
    pub fn merge_into(&self, weight: &Tensor) {
        let _ = weight
            .shallow_clone()
            .g_add_(&delta(&self.a, &self.b, self.scale));
    }
}

/// The update an adapter pair adds to its weight, `scale · B A`, in f32 and without gradient.
pub fn delta(a: &Tensor, b: &Tensor, scale: f64) -> Tensor {
    crate::grad::no_grad(|| b.matmul(a) * scale)
}

/// SplitMix64's finaliser over `a` and `b`: a 64-bit key that changes everywhere with either.
/// Seeds are combined with it level by level (run seed, step, micro-batch, layer, module), so
/// no two of them share a key short of a 64-bit collision.
pub fn mix(a: i64, b: i64) -> i64 {
    let mut z = (a as u64) ^ (b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as i64
}

/// Three rounds of `x ← ((x >> 16) ^ x) · 0x45d9f3b mod 2³²` and a last xor-shift, on an int64
/// tensor of values below 2³² (every product stays below 2⁵⁹: no overflow).
fn hash32(x: Tensor) -> Tensor {
    const MASK32: i64 = 0xffff_ffff;
    let mut x = x;
    for _ in 0..3 {
        x = ((x
            .bitwise_right_shift_tensor_scalar(16)
            .bitwise_xor_tensor(&x))
            * 0x045d_9f3b)
            .bitwise_and(MASK32);
    }
    x.bitwise_right_shift_tensor_scalar(16)
        .bitwise_xor_tensor(&x)
}

/// A boolean mask of `shape` keeping each element with probability `1 − p`, as a pure function
/// of `key` and the element's index: `hash(hash(index) ^ key)`, computed with tensor operations,
/// so it is the same on every device, in every thread and on every recomputation, without
/// touching torch's global generator. (Hashing the index first keeps masks of different keys
/// from being shifted windows of one stream.)
pub fn keep_mask(shape: &[i64], p: f64, key: i64, device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let key = mix(key, 0) & 0xffff_ffff;
    let x = hash32(hash32(Tensor::arange(n, (Kind::Int64, device))).bitwise_xor(key));
    let threshold = (p * 4_294_967_296.0) as i64;
    x.ge(threshold).view(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_masks_keep_the_asked_share_and_depend_on_the_seed_only() {
        let a = keep_mask(&[64, 1000], 0.1, 7, Device::Cpu).to_kind(Kind::Float);
        let kept = a.mean(Kind::Float).double_value(&[]);
        assert!((kept - 0.9).abs() < 0.01, "{kept}");
        let again = keep_mask(&[64, 1000], 0.1, 7, Device::Cpu).to_kind(Kind::Float);
        assert!(a.equal(&again));
        let b = keep_mask(&[64, 1000], 0.1, 8, Device::Cpu).to_kind(Kind::Float);
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
        // Nor are masks of neighbouring keys shifted copies of each other.
        let shifted = a.view([-1]).narrow(0, 1, 63_999);
        let c = keep_mask(&[64, 1000], 0.1, 8, Device::Cpu).to_kind(Kind::Float);
        let same = c
            .view([-1])
            .narrow(0, 0, 63_999)
            .eq_tensor(&shifted)
            .to_kind(Kind::Float);
        assert!(same.mean(Kind::Float).double_value(&[]) < 0.9);
    }

    #[test]
    fn mixed_seeds_differ_for_every_step_and_micro_batch() {
        let mut keys = std::collections::HashSet::new();
        for step in 0..1000 {
            for micro in 0..4 {
                keys.insert(mix(mix(0, step), micro) & 0xffff_ffff);
            }
        }
        assert_eq!(keys.len(), 4000);
    }
}
