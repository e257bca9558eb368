//! PEFT's on-disk adapter layout, which transformers + PEFT, vLLM (`--enable-lora`) and
//! llama.cpp's converter read: a folder with `adapter_config.json` (a `LoraConfig`) and
//! `adapter_model.safetensors`, whose tensors are named
//! `base_model.model.<module>.lora_A.weight` / `.lora_B.weight`.
//!
//! Only what PEFT's plain LoRA means is accepted on reading: a config asking for DoRA,
//! rsLoRA, per-layer ranks, bias training or extra trained modules is refused with the
//! field's name rather than silently loaded as something else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tch::Kind;

use super::lora::{LoraConfig, TARGETS, canonical_targets};
use super::{LoadOptions, Model, ModelError, hf, safetensors_writer};
use crate::files;

pub const CONFIG_FILE: &str = "adapter_config.json";

thread_local! {
    /// How many adapter folders deep the current load is.
    static CHAIN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// PEFT's prefix of every saved tensor name (`PeftModel` → `LoraModel` → the base model).
const PREFIX: &str = "base_model.model.";

/// Whether `dir` holds a PEFT adapter (and no model of its own).
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && !dir.join("config.json").is_file()
}

/// The `adapter_config.json` PEFT would write for `config` over the model at `base` (`None`:
/// weights changed in memory, which no file holds).
fn config_json(config: &LoraConfig, base: Option<&Path>) -> Value {
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base.map(|b| b.to_string_lossy()),
        "r": config.r,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": config.targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    })
}

/// Write `model`'s attached adapters to `dir` in PEFT's layout (atomically, as a model).
pub fn save_adapter(model: &Model, dir: &Path) -> Result<(), ModelError> {
    if model.lora().is_none() {
        return Err(ModelError::Lora {
            path: dir.to_path_buf(),
            message:
                "the model has no adapters to save (train with `lora`, or load one with `adapter`)"
                    .into(),
        });
    }
    hf::write_dir_atomically(dir, |tmp| write_adapter(model, tmp).map(|_| ()))
}

/// Write the adapter files into `dir` (which exists); the weights file's size and CRC.
pub fn write_adapter(model: &Model, dir: &Path) -> Result<safetensors_writer::FileSum, ModelError> {
    let save_error = |message: String| ModelError::Save {
        path: dir.to_path_buf(),
        message,
    };
    let adapters = model
        .lora()
        .ok_or_else(|| save_error("no adapters attached".into()))?;
    if adapters.base.is_none() {
        tracing::warn!(
            "{}: the adapters sit on weights changed in memory (trained or merged), which no file holds: base_model_name_or_path is null (save the model under them with m.save to keep it)",
            dir.display()
        );
    }
    files::write_json(
        &dir.join(CONFIG_FILE),
        &config_json(&adapters.config, adapters.base.as_deref()),
    )
    .map_err(|e| save_error(e.to_string()))?;
    let names: Vec<String> = adapters.params.keys().cloned().collect();
    let saved: Vec<String> = names.iter().map(|n| format!("{PREFIX}{n}")).collect();
    let param = |name: &str| adapters.params[&name[PREFIX.len()..]].detach();
    let meta = |name: &str| (Kind::Float, param(name).size());
    safetensors_writer::write(&dir.join(WEIGHTS_FILE), &saved, meta, param).map_err(save_error)
}

/// A PEFT adapter read from disk.
pub struct AdapterFiles {
    pub config: LoraConfig,
    /// `base_model_name_or_path`, if the config names one.
    pub base: Option<String>,
    /// Tensors by our names (PEFT's without the prefix).
    pub tensors: HashMap<String, tch::Tensor>,
}

/// Read the adapter in `dir`, refusing what plain LoRA cannot represent.
pub fn read_adapter(dir: &Path) -> Result<AdapterFiles, ModelError> {
    let config_path = dir.join(CONFIG_FILE);
    let bad = |message: String| ModelError::Lora {
        path: config_path.clone(),
        message,
    };
    let value = files::read_json(&config_path).map_err(|e| bad(e.to_string()))?;
    let field = |key: &str| value.get(key).filter(|v| !v.is_null());
    match field("peft_type").and_then(Value::as_str) {
        Some("LORA") => {}
        other => {
            return Err(bad(format!(
                "peft_type is {other:?}, only \"LORA\" is supported"
            )));
        }
    }
    for flag in ["use_dora", "use_rslora", "use_qalora", "fan_in_fan_out"] {
        if field(flag).and_then(Value::as_bool) == Some(true) {
            return Err(bad(format!(
                "`{flag}: true` is not supported (plain LoRA only)"
            )));
        }
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        if field(key)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            return Err(bad(format!(
                "`{key}` (per-module ranks or alphas) is not supported"
            )));
        }
    }
    if let Some(bias) = field("bias")
        .and_then(Value::as_str)
        .filter(|b| *b != "none")
    {
        return Err(bad(format!(
            "`bias: \"{bias}\"` is not supported (only \"none\")"
        )));
    }
    if field("lora_bias").and_then(Value::as_bool) == Some(true) {
        return Err(bad(
            "`lora_bias: true` is not supported (plain LoRA only)".into()
        ));
    }
    for key in [
        "modules_to_save",
        "layers_to_transform",
        "layers_pattern",
        "exclude_modules",
        "layer_replication",
        "target_parameters",
        "trainable_token_indices",
    ] {
        if field(key).is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
            return Err(bad(format!("`{key}` is not supported")));
        }
    }
    let r = field("r")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("`r` is missing or not a positive integer".into()))?;
    let alpha = field("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| bad("`lora_alpha` is missing or not a number".into()))?;
    let targets: Vec<String> = match field("target_modules") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("`target_modules` must list module names".into()))?,
        // PEFT's shorthand for every linear layer but the output head.
        Some(Value::String(all)) if all == "all-linear" => {
            TARGETS.iter().map(|t| t.to_string()).collect()
        }
        // PEFT reads any other string as a regular expression over full module names.
        Some(Value::String(pattern)) => {
            return Err(bad(format!(
                "`target_modules` is the pattern \"{pattern}\": list the module names instead (some of {})",
                TARGETS.join(", ")
            )));
        }
        _ => return Err(bad("`target_modules` is missing".into())),
    };
    let config = LoraConfig {
        r: r as usize,
        alpha,
        dropout: field("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        targets: canonical_targets(targets),
    };
    config.validate().map_err(bad)?;
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        return Err(ModelError::Lora {
            path: dir.to_path_buf(),
            message: format!("no {WEIGHTS_FILE} (adapters saved as .bin are not read)"),
        });
    }
    let mut tensors = HashMap::new();
    hf::read_safetensors(&weights, |name, t| {
        let ours = name.strip_prefix(PREFIX).unwrap_or(name);
        tensors.insert(ours.to_string(), t);
        Ok(())
    })?;
    Ok(AdapterFiles {
        config,
        base: field("base_model_name_or_path")
            .and_then(Value::as_str)
            .map(str::to_string),
        tensors,
    })
}

impl Model {
    /// Attach the PEFT adapter in `dir` (merging any attached first), ours or one PEFT saved.
    pub fn load_adapter(&mut self, dir: &Path) -> Result<(), ModelError> {
        let files = read_adapter(dir)?;
        self.attach_lora(&files.config, 0)?;
        self.fill_lora(&dir.join(WEIGHTS_FILE), files.tensors)?;
        tracing::info!("attached the adapter {}", dir.display());
        Ok(())
    }

    /// Load the base model an adapter folder names (`base_model_name_or_path`) with the
    /// adapter attached; the model's origin is then the adapter folder.
    pub fn load_with_adapter_dir(dir: &Path, opts: LoadOptions) -> Result<Self, ModelError> {
        let base = read_adapter(dir)?.base.ok_or_else(|| ModelError::Lora {
            path: dir.join(CONFIG_FILE),
            message: "no `base_model_name_or_path`: load the base model and pass `adapter`".into(),
        })?;
        let base = PathBuf::from(base);
        if !base.exists() {
            return Err(ModelError::Lora {
                path: dir.join(CONFIG_FILE),
                message: format!(
                    "the base model `{}` (base_model_name_or_path) does not exist here: load the base model and pass `adapter`",
                    base.display()
                ),
            });
        }
        // An adapter's base may itself be an adapter folder: follow the chain, not a cycle.
        let depth = CHAIN.with(|c| c.get());
        if depth >= 8 {
            return Err(ModelError::Lora {
                path: dir.join(CONFIG_FILE),
                message: "base_model_name_or_path leads through 8 adapter folders: a cycle?".into(),
            });
        }
        CHAIN.with(|c| c.set(depth + 1));
        let base_model = Model::load(&base, opts);
        CHAIN.with(|c| c.set(depth));
        let mut model = base_model?;
        model.load_adapter(dir)?;
        // What `dir` describes: its base with its adapter, merged or not.
        model.origin = dir.to_path_buf();
        Ok(model)
    }
}
