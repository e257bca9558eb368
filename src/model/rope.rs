//! Rotary position embeddings, with the inverse frequencies transformers computes for the
//! default, `linear` and `llama3` rope types.

use std::f64::consts::PI;

use tch::{Device, Kind, Tensor};

use super::config::{ModelConfig, RopeParameters};

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
        let mut inv_freq = plain_inv_freq(cfg);
        let mut position_scale = 1.0;
        if let Some(llama3) = Llama3::of(&rope) {
            for f in &mut inv_freq {
                *f = llama3.inv_freq(*f);
            }
        } else if rope.rope_type.as_deref() == Some("linear") {
            position_scale = rope.factor.unwrap_or(1.0);
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

/// llama.cpp's `rope_freqs.weight` for a `llama3` config: per frequency, what the plain
/// inverse frequency is divided by to give the scaled one (1 for high frequencies, `factor`
/// for low ones, a blend between); `None` for the other rope types, which need none.
pub fn llama3_frequency_factors(cfg: &ModelConfig) -> Option<Vec<f32>> {
    let llama3 = Llama3::of(&cfg.rope())?;
    let factors = plain_inv_freq(cfg)
        .into_iter()
        .map(|f| (f / llama3.inv_freq(f)) as f32)
        .collect();
    Some(factors)
}

/// `theta^(-2i/d)` for i in 0..d/2, in f64.
fn plain_inv_freq(cfg: &ModelConfig) -> Vec<f64> {
    let dim = cfg.head_dim();
    let theta = cfg.rope().rope_theta.unwrap_or(10_000.0);
    (0..dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64))
        .collect()
}

/// Llama 3.1's frequency-dependent scaling, with transformers' defaults.
struct Llama3 {
    factor: f64,
    low: f64,
    high: f64,
    old_ctx: f64,
}

impl Llama3 {
    fn of(rope: &RopeParameters) -> Option<Self> {
        (rope.rope_type.as_deref() == Some("llama3")).then(|| Self {
            factor: rope.factor.unwrap_or(8.0),
            low: rope.low_freq_factor.unwrap_or(1.0),
            high: rope.high_freq_factor.unwrap_or(4.0),
            old_ctx: rope.original_max_position_embeddings.unwrap_or(8192) as f64,
        })
    }

    /// The scaled inverse frequency (transformers `_compute_llama3_parameters`).
    fn inv_freq(&self, inv_freq: f64) -> f64 {
        let Self {
            factor,
            low,
            high,
            old_ctx,
        } = *self;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rope: &str) -> ModelConfig {
        serde_json::from_value(serde_json::json!({
            "model_type": "llama", "vocab_size": 8, "hidden_size": 64, "intermediate_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 4,
            "rope_parameters": serde_json::from_str::<serde_json::Value>(rope).unwrap()
        }))
        .unwrap()
    }

    #[test]
    fn llama3_factors_divide_the_plain_frequencies_into_the_scaled_ones() {
        let cfg = config(
            r#"{"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64}"#,
        );
        let factors = llama3_frequency_factors(&cfg).unwrap();
        assert_eq!(factors.len(), 8);
        // Wavelengths 2π·10000^(i/8): 6.3 (< 64/4, kept), 19.9 and 62.8 (blended), then > 64.
        assert_eq!(factors[0], 1.0);
        assert!(
            factors[1] > 1.0 && factors[1] < factors[2] && factors[2] < 8.0,
            "{factors:?}"
        );
        assert!(factors[3..].iter().all(|&f| f == 8.0), "{factors:?}");
        let rope = Rope::new(&cfg, Device::Cpu);
        let scaled: Vec<f32> = Vec::try_from(&rope.inv_freq).unwrap();
        for ((plain, factor), scaled) in plain_inv_freq(&cfg).iter().zip(&factors).zip(scaled) {
            let via_factor = (plain / f64::from(*factor)) as f32;
            assert!(
                (via_factor - scaled).abs() <= f32::EPSILON * scaled,
                "{via_factor} {scaled}"
            );
        }
        assert_eq!(
            llama3_frequency_factors(&config(r#"{"rope_type": "default"}"#)),
            None
        );
    }
}
