//! Training objectives over a [`TokenBatch`]: supervised fine-tuning and RLMEC's clipped
//! token-level objective with imitation regularisation (docs/method.md, step 7), and the
//! interface a script-defined objective plugs into.

use tch::{Kind, Tensor};

use super::tokens::TokenBatch;

/// A loss to minimise and its named parts (for the metrics; detached).
pub struct Loss {
    pub total: Tensor,
    pub parts: Vec<(String, Tensor)>,
}

/// Anything that turns a micro-batch into a loss.
pub trait Objective {
    fn loss(&mut self, batch: &TokenBatch) -> Result<Loss, String>;

    /// Its name in metrics and checkpoints.
    fn name(&self) -> String;
}

/// `Σ x / max(count, 1)`: a count of zero means every term is zero, so the quotient is 0
/// (the guard of docs/method.md, "The objective") without a host round-trip to test it.
fn guarded_mean(sum: Tensor, count: &Tensor) -> Tensor {
    sum / count.clamp_min(1.0)
}

/// Cross-entropy on the scored tokens, averaged over them (prompt tokens never count).
pub fn sft_loss(b: &TokenBatch) -> Loss {
    let ce = -&b.logp;
    let total = guarded_mean((ce * &b.mask).sum(Kind::Float), &b.mask.sum(Kind::Float));
    Loss {
        parts: vec![("loss_sft".into(), total.detach())],
        total,
    }
}

/// RLMEC's hyper-parameters: ε of the clip and λ of the imitation term.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RlmecParams {
    pub clip_eps: f64,
    pub reg_weight: f64,
}

impl RlmecParams {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.clip_eps >= 0.0 && self.clip_eps < 1.0) {
            return Err(format!(
                "`clip_eps` must be within [0, 1), got {:?}",
                self.clip_eps
            ));
        }
        if !(self.reg_weight.is_finite() && self.reg_weight >= 0.0) {
            return Err(format!(
                "`reg_weight` must be a non-negative number, got {:?}",
                self.reg_weight
            ));
        }
        Ok(())
    }
}

impl Default for RlmecParams {
    /// The paper's ε = 0.3 and λ = 1.
    fn default() -> Self {
        Self {
            clip_eps: 0.3,
            reg_weight: 1.0,
        }
    }
}

/// `L = L_rl + λ·L_reg` (docs/method.md, "The objective"):
/// `ρ = exp(logπ − ref_logπ)` and `w = min(ρ·r, clip(ρ, 1−ε, 1+ε)·r)` without gradient,
/// `L_rl = −Σ w·logπ / #{r ≠ 0}`, `L_reg = Σ c·CE / #{c ≠ 0}`, counts per micro-batch.
/// `p` as [`RlmecParams::validate`] accepts it (training checks its options once, before
/// the first step).
pub fn rlmec_loss(b: &TokenBatch, p: RlmecParams) -> Result<Loss, String> {
    let need = |t: &Option<Tensor>, name: &str| {
        t.as_ref().map(Tensor::shallow_clone).ok_or_else(|| {
            format!("the rlmec objective needs `{name}`: train on RLMEC records (input, output, regular, reward, ref_prob, weight_regular)")
        })
    };
    let (reward, ref_logp) = (need(&b.reward, "reward")?, need(&b.ref_logp, "ref_prob")?);
    let (reg_logp, reg_weight) = (
        need(&b.reg_logp, "regular")?,
        need(&b.reg_weight, "weight_regular")?,
    );
    let reg_mask = need(&b.reg_mask, "regular")?;

    let reward = &reward * &b.mask;
    // Masked before `exp`: an unscored slot must not overflow into inf·0 = NaN.
    let ratio = ((b.logp.detach() - ref_logp) * &b.mask).exp();
    let clipped = ratio.clamp(1.0 - p.clip_eps, 1.0 + p.clip_eps);
    let weight = (&ratio * &reward).minimum(&(clipped * &reward));
    let loss_rl = guarded_mean(
        -(weight * &b.logp).sum(Kind::Float),
        &reward.ne(0.0).to_kind(Kind::Float).sum(Kind::Float),
    );
    let c = reg_weight * &reg_mask;
    let loss_reg = guarded_mean(
        (-&reg_logp * &c).sum(Kind::Float),
        &c.ne(0.0).to_kind(Kind::Float).sum(Kind::Float),
    );
    let total = &loss_rl + &loss_reg * p.reg_weight;
    Ok(Loss {
        parts: vec![
            ("loss_rl".into(), loss_rl.detach()),
            ("loss_reg".into(), loss_reg.detach()),
        ],
        total,
    })
}

pub struct Sft;

impl Objective for Sft {
    fn loss(&mut self, batch: &TokenBatch) -> Result<Loss, String> {
        Ok(sft_loss(batch))
    }

    fn name(&self) -> String {
        "sft".into()
    }
}

pub struct Rlmec(pub RlmecParams);

impl Objective for Rlmec {
    fn loss(&mut self, batch: &TokenBatch) -> Result<Loss, String> {
        rlmec_loss(batch, self.0)
    }

    fn name(&self) -> String {
        "rlmec".into()
    }
}

/// A built-in objective by its name: `sft`, or `rlmec` with `params`.
pub fn named(name: &str, params: RlmecParams) -> Result<Box<dyn Objective>, String> {
    match name {
        "sft" => Ok(Box::new(Sft)),
        "rlmec" => Ok(Box::new(Rlmec(params))),
        other => Err(format!(
            "unknown objective `{other}`: expected \"sft\", \"rlmec\" or a closure"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_objectives_by_name() {
        let p = RlmecParams::default();
        assert_eq!(named("sft", p).unwrap().name(), "sft");
        assert_eq!(named("rlmec", p).unwrap().name(), "rlmec");
        let e = named("ppo", p).err().unwrap();
        assert!(e.starts_with("unknown objective `ppo`"), "{e}");
    }
}
