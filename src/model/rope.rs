//! Rotary position embeddings, with the inverse frequencies transformers computes for the
//! default, `linear` and `llama3` rope types.

use std::f64::consts::PI;

use tch::{Device, Kind, Tensor};

use super::config::ModelConfig;

#[derive(Debug)]
pub struct Rope {
    /// [D/2], f32.
    inv_freq: Tensor,
    /// `linear` scaling divides positions by this.
    position_scale: f64,
}

impl Rope {
    pub fn new(cfg: &ModelConfig, device: Device) -> Self {
        let rope = cfg.rope();
        let dim = cfg.head_dim();
        let theta = rope.rope_theta.unwrap_or(10_000.0);
        let mut inv_freq: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64))
            .collect();
        let mut position_scale = 1.0;
        match rope.rope_type.as_deref() {
            Some("llama3") => {
                let factor = rope.factor.unwrap_or(8.0);
                let low = rope.low_freq_factor.unwrap_or(1.0);
                let high = rope.high_freq_factor.unwrap_or(4.0);
                let old_ctx = rope.original_max_position_embeddings.unwrap_or(8192) as f64;
                for f in &mut inv_freq {
                    *f = llama3_inv_freq(*f, factor, low, high, old_ctx);
                }
            }
            Some("linear") => position_scale = rope.factor.unwrap_or(1.0),
            _ => {}
        }
        // transformers computes the frequencies in f32: round the same way.
        let inv_freq: Vec<f32> = inv_freq.iter().map(|&f| f as f32).collect();
        Self {
            inv_freq: Tensor::from_slice(&inv_freq).to_device(device),
            position_scale,
        }
    }

    /// cos and sin for `positions` [B, T], as [B, 1, T, D] in `kind`.
    pub fn cos_sin(&self, positions: &Tensor, kind: Kind) -> (Tensor, Tensor) {
        let mut pos = positions.to_kind(Kind::Float);
        if self.position_scale != 1.0 {
            pos /= self.position_scale;
        }
        let freqs = pos.unsqueeze(-1) * &self.inv_freq;
        let emb = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(1);
        (emb.cos().to_kind(kind), emb.sin().to_kind(kind))
    }

    /// `x·cos + rotate_half(x)·sin` for x [B, H, T, D].
    pub fn apply(x: &Tensor, (cos, sin): (&Tensor, &Tensor)) -> Tensor {
        let half = x.size()[3] / 2;
        let x1 = x.narrow(3, 0, half);
        let x2 = x.narrow(3, half, half);
        let rotated = Tensor::cat(&[&x2.neg(), &x1], 3);
        x * cos + rotated * sin
    }
}

/// Llama 3.1's frequency-dependent scaling (transformers `_compute_llama3_parameters`).
fn llama3_inv_freq(inv_freq: f64, factor: f64, low: f64, high: f64, old_ctx: f64) -> f64 {
    let low_freq_wavelen = old_ctx / low;
    let high_freq_wavelen = old_ctx / high;
    let wavelen = 2.0 * PI / inv_freq;
    if wavelen > low_freq_wavelen {
        inv_freq / factor
    } else if wavelen < high_freq_wavelen {
        inv_freq
    } else {
        let smooth = (old_ctx / wavelen - low) / (high - low);
        (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
    }
}
