//! AdamW with decoupled weight decay, step for step the arithmetic of `torch.optim.AdamW`
//! (single-tensor path, the CPU default), plus global gradient-norm clipping as
//! `torch.nn.utils.clip_grad_norm_`.
//!
//! Parameters in a reduced precision (bf16) are updated through an f32 master copy kept
//! here: a 5e-6 step is below bf16's resolution for most weights and would be lost.
//! The state (moments, masters, step count) is saved and restored by name, so a resumed run
//! continues with exactly the optimiser it stopped with.

use std::collections::HashMap;

use tch::{Kind, Tensor};

/// The optimiser's settings, named as a training run's options name them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    #[serde(rename = "adam_beta1")]
    pub beta1: f64,
    #[serde(rename = "adam_beta2")]
    pub beta2: f64,
    #[serde(rename = "adam_eps")]
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// The ranges `torch.optim.AdamW` accepts (a β of 1 or more never forgets, and libtorch
    /// cannot hold a 1e308 in the f32 moments).
    pub fn validate(&self) -> Result<(), String> {
        for (name, beta) in [("adam_beta1", self.beta1), ("adam_beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(format!("`{name}` must be within [0, 1), got {beta:?}"));
            }
        }
        for (name, value) in [("adam_eps", self.eps), ("weight_decay", self.weight_decay)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!(
                    "`{name}` must be a non-negative number, got {value:?}"
                ));
            }
        }
        Ok(())
    }
}

impl Default for AdamWConfig {
    /// transformers' `TrainingArguments` defaults.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

struct Slot {
    name: String,
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// f32 copy of a reduced-precision parameter.
    master: Option<Tensor>,
    decay: bool,
}

pub struct AdamW {
    config: AdamWConfig,
    /// Steps taken.
    pub step: i64,
    slots: Vec<Slot>,
}

/// Whether transformers' Trainer applies weight decay to a parameter: not to biases and
/// normalisation weights.
fn decays(name: &str) -> bool {
    !(name.ends_with("bias") || name.contains("norm"))
}

impl AdamW {
    /// Over `params` (name → trainable tensor), in name order.
    pub fn new(params: &HashMap<String, Tensor>, config: AdamWConfig) -> Self {
        let mut names: Vec<&String> = params.keys().collect();
        names.sort();
        let slots = names
            .into_iter()
            .map(|name| {
                let param = params[name].shallow_clone();
                let master = (param.kind() != Kind::Float)
                    .then(|| crate::grad::no_grad(|| param.to_kind(Kind::Float)));
                let like = master.as_ref().unwrap_or(&param);
                Slot {
                    name: name.clone(),
                    exp_avg: like.zeros_like(),
                    exp_avg_sq: like.zeros_like(),
                    decay: decays(name),
                    master,
                    param,
                }
            })
            .collect();
        Self {
            config,
            step: 0,
            slots,
        }
    }

    /// Sets every gradient to zero (keeping its buffer) before accumulating a new step.
    pub fn zero_grad(&mut self) {
        for slot in &mut self.slots {
            let mut grad = slot.param.grad();
            if grad.defined() {
                let _ = grad.detach_().zero_();
            }
        }
    }

    /// Scales the gradients so that their global L2 norm is at most `max_norm` (when it is
    /// positive); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        crate::grad::no_grad(|| {
            let grads: Vec<Tensor> = self
                .slots
                .iter()
                .map(|s| s.param.grad())
                .filter(Tensor::defined)
                .collect();
            if grads.is_empty() {
                return 0.0;
            }
            let norms: Vec<Tensor> = grads
                .iter()
                .map(|g| g.to_kind(Kind::Float).norm().unsqueeze(0))
                .collect();
            let total = Tensor::cat(&norms, 0).norm();
            let total_f = total.double_value(&[]);
            if max_norm > 0.0 {
                let coef = (max_norm / (total_f + 1e-6)).min(1.0);
                if coef < 1.0 {
                    for g in &grads {
                        let _ = g.shallow_clone().g_mul_scalar_(coef);
                    }
                }
            }
            total_f
        })
    }

    /// One update with learning rate `lr` (parameters without a gradient are left alone).
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let t = self.step as i32;
        let bias_correction1 = 1.0 - beta1.powi(t);
        let bias_correction2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        let step_size = lr / bias_correction1;
        crate::grad::no_grad(|| {
            for slot in &mut self.slots {
                let grad = slot.param.grad();
                if !grad.defined() {
                    continue;
                }
                let grad = grad.to_kind(Kind::Float);
                let mut p = slot.master.as_ref().unwrap_or(&slot.param).shallow_clone();
                if slot.decay && weight_decay != 0.0 {
                    let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                let _ = slot.exp_avg.lerp_(&grad, 1.0 - beta1);
                let _ = slot.exp_avg_sq.g_mul_scalar_(beta2);
                let _ = slot.exp_avg_sq.addcmul_(&(&grad * (1.0 - beta2)), &grad);
                let denom = (slot.exp_avg_sq.sqrt() / bias_correction2_sqrt) + eps;
                let _ = p.addcdiv_(&(&slot.exp_avg * -step_size), &denom);
                if slot.master.is_some() {
                    slot.param.copy_(&p);
                }
            }
        });
    }

    /// The state to save: `exp_avg.<name>`, `exp_avg_sq.<name>`, `master.<name>`.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for slot in &self.slots {
            out.insert(
                format!("exp_avg.{}", slot.name),
                slot.exp_avg.shallow_clone(),
            );
            out.insert(
                format!("exp_avg_sq.{}", slot.name),
                slot.exp_avg_sq.shallow_clone(),
            );
            if let Some(master) = &slot.master {
                out.insert(format!("master.{}", slot.name), master.shallow_clone());
            }
        }
        out
    }

    /// Restores a saved state (`step` from the checkpoint's record); every tensor of this
    /// optimiser must be present with the same shape.
    pub fn load_state(
        &mut self,
        step: i64,
        mut saved: HashMap<String, Tensor>,
    ) -> Result<(), String> {
        for slot in &mut self.slots {
            let mut targets = vec![
                (format!("exp_avg.{}", slot.name), &mut slot.exp_avg),
                (format!("exp_avg_sq.{}", slot.name), &mut slot.exp_avg_sq),
            ];
            if let Some(master) = slot.master.as_mut() {
                targets.push((format!("master.{}", slot.name), master));
            }
            for (key, target) in targets {
                let value = saved
                    .remove(&key)
                    .ok_or_else(|| format!("optimizer state lacks `{key}`"))?;
                if value.size() != target.size() {
                    return Err(format!(
                        "optimizer state `{key}` has shape {:?}, the parameter {:?}",
                        value.size(),
                        target.size()
                    ));
                }
                crate::grad::no_grad(|| target.copy_(&value));
            }
        }
        if let Some(extra) = saved.keys().next() {
            return Err(format!(
                "optimizer state has `{extra}`, which is no parameter"
            ));
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parameter, gradients given: the values torch.optim.AdamW produces (computed by
    /// hand from its update rule, lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.1).
    #[test]
    fn follows_torch_adamw_update() {
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let params = HashMap::from([("w".to_string(), p.shallow_clone())]);
        let mut opt = AdamW::new(
            &params,
            AdamWConfig {
                weight_decay: 0.1,
                ..AdamWConfig::default()
            },
        );
        let (lr, wd, b1, b2, eps) = (0.1f64, 0.1f64, 0.9f64, 0.999f64, 1e-8f64);
        let mut want = [1.0f64, -2.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for (t, grads) in [[0.5f64, -1.0], [0.25, 2.0], [-1.0, 0.5]]
            .iter()
            .enumerate()
        {
            opt.zero_grad();
            let g = Tensor::from_slice(&grads.map(|x| x as f32));
            (&p * &g).sum(Kind::Float).backward();
            opt.step(lr);
            let t = t as i32 + 1;
            for i in 0..2 {
                want[i] *= 1.0 - lr * wd;
                m[i] = b1 * m[i] + (1.0 - b1) * grads[i];
                v[i] = b2 * v[i] + (1.0 - b2) * grads[i] * grads[i];
                let denom = (v[i].sqrt() / (1.0 - b2.powi(t)).sqrt()) + eps;
                want[i] -= lr / (1.0 - b1.powi(t)) * m[i] / denom;
            }
        }
        let got = Vec::<f32>::try_from(&p).unwrap();
        for i in 0..2 {
            assert!(
                (f64::from(got[i]) - want[i]).abs() < 1e-6,
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn clips_the_global_norm() {
        let a = Tensor::from_slice(&[0.0f32, 0.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[0.0f32]).set_requires_grad(true);
        let params = HashMap::from([
            ("a".to_string(), a.shallow_clone()),
            ("b".to_string(), b.shallow_clone()),
        ]);
        let mut opt = AdamW::new(&params, AdamWConfig::default());
        ((&a * Tensor::from_slice(&[3.0f32, 0.0])).sum(Kind::Float)
            + (&b * Tensor::from_slice(&[4.0f32])).sum(Kind::Float))
        .backward();
        assert!((opt.clip_grad_norm(1.0) - 5.0).abs() < 1e-6);
        let ga = Vec::<f32>::try_from(a.grad()).unwrap();
        assert!((ga[0] - 0.6).abs() < 1e-5, "{ga:?}");
        assert!(
            (opt.clip_grad_norm(0.0) - 1.0).abs() < 1e-5,
            "0 only measures"
        );
    }

    #[test]
    fn bf16_parameters_learn_through_an_f32_master() {
        let p = Tensor::from_slice(&[1.0f32])
            .to_kind(Kind::BFloat16)
            .set_requires_grad(true);
        let params = HashMap::from([("w".to_string(), p.shallow_clone())]);
        let mut opt = AdamW::new(&params, AdamWConfig::default());
        for _ in 0..100 {
            opt.zero_grad();
            p.sum(Kind::Float).backward();
            opt.step(1e-4); // each step is below bf16's resolution at 1.0
        }
        let master = &opt.state()["master.w"];
        assert!((master.double_value(&[0]) - 0.99).abs() < 1e-4);
        assert!(
            p.double_value(&[0]) < 1.0,
            "the bf16 copy follows the master"
        );
    }

    #[test]
    fn state_round_trips_and_names_what_is_missing() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let params = HashMap::from([("w".to_string(), p.shallow_clone())]);
        let mut opt = AdamW::new(&params, AdamWConfig::default());
        p.sum(Kind::Float).backward();
        opt.step(0.1);
        let saved: HashMap<String, Tensor> = opt
            .state()
            .into_iter()
            .map(|(k, v)| (k, v.copy()))
            .collect();
        let mut fresh = AdamW::new(&params, AdamWConfig::default());
        fresh.load_state(1, saved).unwrap();
        assert_eq!(fresh.step, 1);
        assert!(fresh.state()["exp_avg.w"].equal(&opt.state()["exp_avg.w"]));
        let err = fresh.load_state(1, HashMap::new()).unwrap_err();
        assert!(err.contains("exp_avg.w"), "{err}");
    }
}
