//! LoRA adapters on a loaded model: attaching fresh ones (which freezes every base weight),
//! filling them from a PEFT adapter, merging them into the weights, and the set of tensors a
//! trainer updates.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use super::lora::LoraConfig;
use super::{Model, ModelError};

/// The adapters attached to a model.
#[derive(Debug)]
pub struct Adapters {
    pub config: LoraConfig,
    /// Every `A` and `B`, by PEFT's name without its `base_model.model.` prefix
    /// (`model.layers.0.self_attn.q_proj.lora_A.weight`); shared with the layers.
    pub params: BTreeMap<String, Tensor>,
    /// The model the frozen weights came from (written into a saved adapter's config, made
    /// absolute); `None` when they were changed in memory and no file holds them.
    pub base: Option<PathBuf>,
}

impl Adapters {
    /// `weight` (the parameter `name`) with its adapter's update folded in, or `None` when no
    /// adapter sits beside it: `W + scale · B A`, computed in f32 and rounded once.
    pub fn merged(&self, name: &str, weight: &Tensor) -> Option<Tensor> {
        let module = name.strip_suffix(".weight")?;
        let a = self.params.get(&format!("{module}.lora_A.weight"))?;
        let b = self.params.get(&format!("{module}.lora_B.weight"))?;
        let update = super::lora::delta(a, b, self.config.scale());
        Some(crate::grad::no_grad(|| {
            (weight.to_kind(Kind::Float) + update).to_kind(weight.kind())
        }))
    }

    /// Parameters of the adapters.
    pub fn num_parameters(&self) -> i64 {
        self.params.values().map(|t| t.numel() as i64).sum()
    }
}

impl Model {
    /// The attached adapters, if any.
    pub fn lora(&self) -> Option<&Adapters> {
        self.lora.as_ref()
    }

    /// The parameter `name` (`weight`) as a saved model has it: with adapters attached, their
    /// update merged in (the model itself is left as it is).
    pub fn saved_weight(&self, name: &str, weight: &Tensor) -> Tensor {
        self.lora
            .as_ref()
            .and_then(|adapters| adapters.merged(name, weight))
            .unwrap_or_else(|| weight.shallow_clone())
    }

    /// Attach fresh adapters (`A` Kaiming-uniform, `B` zero: the outputs do not change) beside
    /// every targeted linear layer and freeze every weight of the model. Adapters already
    /// attached are merged first, so the new ones train on top of them. `A` is drawn right
    /// after seeding torch with `seed`: the same seed gives the same adapters (torch's
    /// generator is global, so this reseeds it for whatever draws next).
    pub fn attach_lora(&mut self, config: &LoraConfig, seed: i64) -> Result<(), ModelError> {
        config.validate().map_err(|message| ModelError::Lora {
            path: self.origin.clone(),
            message,
        })?;
        self.merge_lora();
        self.vs.freeze();
        let _init = super::init_lock();
        tch::manual_seed(seed);
        let mut params = BTreeMap::new();
        for (name, short, linear) in self.net.linears_mut() {
            if config.targets(short) {
                let adapter = linear.attach(config);
                params.insert(format!("{name}.lora_A.weight"), adapter.a.shallow_clone());
                params.insert(format!("{name}.lora_B.weight"), adapter.b.shallow_clone());
            }
        }
        tracing::info!(
            "LoRA r {} alpha {} on {}: {} adapter parameters ({:.2}% of {})",
            config.r,
            config.alpha,
            config.targets.join(","),
            params.values().map(|t| t.numel()).sum::<usize>(),
            100.0 * params.values().map(|t| t.numel()).sum::<usize>() as f64
                / self.num_parameters().max(1) as f64,
            self.num_parameters()
        );
        let base = (!self.edited)
            .then(|| std::fs::canonicalize(&self.origin).unwrap_or_else(|_| self.origin.clone()));
        self.lora = Some(Adapters {
            config: config.clone(),
            params,
            base,
        });
        Ok(())
    }

    /// Fold the adapters into the weights (decoding then costs what it costs without them)
    /// and make every weight trainable again. Returns whether there were adapters.
    pub fn merge_lora(&mut self) -> bool {
        if self.lora.take().is_none() {
            return false;
        }
        for (_, _, linear) in self.net.linears_mut() {
            linear.merge();
        }
        self.vs.unfreeze();
        self.edited = true;
        true
    }

    /// Copy adapter weights (`name` → tensor, names as in [`Adapters::params`]) into the
    /// attached adapters; every adapter must be given, with its shape.
    pub fn fill_lora(
        &self,
        origin: &Path,
        tensors: HashMap<String, Tensor>,
    ) -> Result<(), ModelError> {
        let adapters = self.lora.as_ref().ok_or_else(|| ModelError::Lora {
            path: origin.to_path_buf(),
            message: "no adapters attached to fill".into(),
        })?;
        let params: HashMap<String, Tensor> = adapters
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.shallow_clone()))
            .collect();
        let mut filler = super::weights::Filler::new_strict(&params, origin);
        for (name, tensor) in tensors {
            filler.put(&name, &tensor)?;
        }
        filler.finish()
    }

    /// Record that the weights no longer equal the files at `origin` (trained in full).
    pub fn mark_edited(&mut self) {
        self.edited = true;
    }

    /// What training updates: the adapters when attached, else every parameter.
    pub fn trainable(&self) -> HashMap<String, Tensor> {
        match &self.lora {
            Some(adapters) => adapters
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.shallow_clone()))
                .collect(),
            None => self.vs.variables(),
        }
    }
}
