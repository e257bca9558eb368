//! A model as one GGUF file in llama.cpp's conventions, which llama.cpp, Ollama and LM Studio
//! load: the inverse of [`super::from_gguf`].
//!
//! The file holds what llama.cpp's `convert_hf_to_gguf.py` writes for the architecture
//! (`llama` for Llama and Mistral, `qwen2` for Qwen2): the `general.*` keys, the
//! hyper-parameters under `{arch}.*`, the tokenizer ([`crate::tokenize::to_gguf`]) and the
//! tensors under llama.cpp's names ([`super::gguf_names`]), with the rows of Q and K
//! (weights and biases) permuted to llama.cpp's RoPE layout ([`super::qk_permute`]) — except
//! for Qwen2, which llama.cpp runs in Hugging Face's layout. Norms and biases stay f32 and
//! the matrices take the requested type (llama.cpp's `--outtype`). With tied embeddings there
//! is no `output.weight`: llama.cpp then reads the output head from `token_embd.weight`.
//!
//! `llama3` RoPE scaling is written as llama.cpp expects it, the computed factors in
//! `rope_freqs.weight`; the scaling itself goes into rlmec's own key
//! ([`super::gguf_names::ROPE_SCALING_KEY`]) so reading the file back gives the same config.
//!
//! With LoRA adapters attached, the merged weights are written, as [`Model::save`] does; the
//! model in memory keeps its adapters.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::config::{Architecture, ModelConfig};
use super::gguf_names::{ROPE_SCALING_KEY, gguf_name};
use super::qk_permute::{permute_weights, permuted_heads};
use super::rope::llama3_frequency_factors;
use super::{Model, ModelError};
use crate::gguf::{GgmlType, GgufValue, TensorSpec};
use crate::tokenize::to_gguf::{FramingIds, gguf_metadata};

/// The storage type of the written matrices (`save_gguf`'s `dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufDtype {
    F32,
    F16,
    Bf16,
}

impl GgufDtype {
    fn ggml_type(self) -> GgmlType {
        match self {
            Self::F32 => GgmlType::F32,
            Self::F16 => GgmlType::F16,
            Self::Bf16 => GgmlType::BF16,
        }
    }

    /// `general.file_type`: llama.cpp's `LLAMA_FTYPE_ALL_F32`, `MOSTLY_F16`, `MOSTLY_BF16`.
    fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Bf16 => 32,
        }
    }
}

impl FromStr for GgufDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!(
                "unknown dtype `{other}`: expected f32, f16 or bf16"
            )),
        }
    }
}

impl fmt::Display for GgufDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        })
    }
}

crate::serde_by_name!(GgufDtype);

/// How to save as GGUF (`save_gguf`'s options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GgufOptions {
    /// The type of the matrices; norms and biases stay f32 whatever it is.
    pub dtype: GgufDtype,
}

impl Default for GgufOptions {
    fn default() -> Self {
        Self {
            dtype: GgufDtype::F32,
        }
    }
}

/// Where a tensor's values come from.
enum Source {
    /// A parameter (HF name), with the head count its rows are permuted by, if any.
    Param { name: String, heads: Option<usize> },
    /// `rope_freqs.weight`.
    RopeFactors(Vec<f32>),
}

/// A tensor to write: its table entry and its values' source.
struct Planned {
    spec: TensorSpec,
    source: Source,
}

/// Write `model` to `path` as GGUF (through `path.tmp`, renamed when complete).
pub fn save(model: &Model, path: &Path, opts: &GgufOptions) -> Result<(), ModelError> {
    let start = Instant::now();
    let cfg = &model.config;
    let arch = match cfg.model_type {
        Architecture::Llama | Architecture::Mistral => "llama",
        Architecture::Qwen2 => "qwen2",
    };
    let save_error = |message: String| ModelError::Save {
        path: path.to_path_buf(),
        message,
    };
    let plan = plan(model, opts.dtype).map_err(save_error)?;
    let mut metadata = general(model, arch, opts.dtype);
    metadata.extend(hyper_parameters(cfg, arch).map_err(save_error)?);
    let ids = FramingIds {
        bos: model.special.bos,
        eos: model.special.eos.first().copied(),
    };
    metadata.extend(gguf_metadata(
        &model.tokenizer,
        &model.tokenizer_meta,
        ids,
        cfg.vocab_size,
    )?);

    let specs: Vec<TensorSpec> = plan.iter().map(|p| p.spec.clone()).collect();
    let vars = model.var_store().variables();
    let bar = crate::progress::bar(plan.len() as u64, "gguf");
    let bytes = crate::gguf::write(path, &metadata, &specs, |spec| {
        let planned = plan
            .iter()
            .find(|p| p.spec.name == spec.name)
            .expect("the writer asks for the tensors it was given");
        let bytes = match &planned.source {
            Source::Param { name, heads } => {
                let weight = model.saved_weight(name, &vars[name]);
                param_bytes(&weight, *heads, spec.ggml_type).map_err(|e| e.to_string())
            }
            Source::RopeFactors(factors) => {
                Ok(factors.iter().flat_map(|f| f.to_le_bytes()).collect())
            }
        };
        bar.inc(1);
        bytes
    })?;
    bar.finish_and_clear();
    tracing::info!(
        "saved {} ({}, {} tensors, {:.1} MB) in {:.2}s",
        path.display(),
        opts.dtype,
        plan.len(),
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The tensors in llama.cpp's order (globals, then layer by layer), with their types.
fn plan(model: &Model, dtype: GgufDtype) -> Result<Vec<Planned>, String> {
    let cfg = &model.config;
    let mut plan = Vec::new();
    for (name, var) in model.var_store().variables() {
        let gguf = gguf_name(&name)
            .ok_or_else(|| format!("parameter `{name}` has no llama.cpp tensor name"))?;
        let shape: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
        let heads = permuted_heads(&gguf, cfg);
        // llama.cpp keeps vectors (norms, biases) in f32 whatever the output type.
        let ggml_type = if shape.len() == 1 {
            GgmlType::F32
        } else {
            dtype.ggml_type()
        };
        plan.push(Planned {
            spec: TensorSpec {
                name: gguf,
                shape,
                ggml_type,
            },
            source: Source::Param { name, heads },
        });
    }
    if let Some(factors) = llama3_frequency_factors(cfg) {
        plan.push(Planned {
            spec: TensorSpec {
                name: "rope_freqs.weight".into(),
                shape: vec![factors.len()],
                ggml_type: GgmlType::F32,
            },
            source: Source::RopeFactors(factors),
        });
    }
    plan.sort_by(|a, b| file_order(&a.spec.name).cmp(&file_order(&b.spec.name)));
    Ok(plan)
}

/// Sort key: globals first, then the layers in number order, then the output head.
fn file_order(name: &str) -> (u8, usize, &str) {
    match name
        .strip_prefix("blk.")
        .and_then(|rest| rest.split_once('.'))
    {
        Some((layer, _)) => (1, layer.parse().unwrap_or(usize::MAX), name),
        None if name.starts_with("output") => (2, 0, name),
        None => (0, 0, name),
    }
}

/// The parameter's bytes in `ggml_type` (F32, F16 or BF16), rows permuted by `heads`.
fn param_bytes(
    weight: &Tensor,
    heads: Option<usize>,
    ggml_type: GgmlType,
) -> Result<Vec<u8>, ModelError> {
    let kind = match ggml_type {
        GgmlType::F16 => Kind::Half,
        GgmlType::BF16 => Kind::BFloat16,
        _ => Kind::Float,
    };
    let values = crate::grad::no_grad(|| {
        weight
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
    });
    let values = match heads {
        Some(heads) => {
            let shape = values.size();
            let rows = shape[0] as usize;
            let cols = values.numel() / rows.max(1);
            let data = Vec::<f32>::try_from(values.flatten(0, -1)).map_err(ModelError::torch)?;
            let permuted = permute_weights(&data, rows, cols, heads)?;
            Tensor::from_slice(&permuted).view(shape.as_slice())
        }
        None => values,
    };
    // Rounded once, from f32, to nearest even: what llama.cpp's converter does.
    let stored = values.to_kind(kind).contiguous();
    let mut bytes = vec![0u8; stored.numel() * stored.kind().elt_size_in_bytes()];
    stored
        .f_copy_data_u8(&mut bytes, stored.numel())
        .map_err(ModelError::torch)?;
    Ok(bytes)
}

/// `general.*`: what the file is and the type its matrices have.
fn general(model: &Model, arch: &str, dtype: GgufDtype) -> Vec<(String, GgufValue)> {
    let origin = &model.origin;
    let stem = if origin.is_dir() {
        origin.file_name()
    } else {
        origin.file_stem()
    };
    let name = stem.map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let string = |s: &str| GgufValue::String(s.to_owned());
    vec![
        ("general.architecture".into(), string(arch)),
        ("general.type".into(), string("model")),
        ("general.name".into(), string(&name)),
        (
            "general.file_type".into(),
            GgufValue::U32(dtype.file_type()),
        ),
        // ggml's quantisation format version, which llama.cpp's converter always records.
        ("general.quantization_version".into(), GgufValue::U32(2)),
    ]
}

/// `{arch}.*`: the config as llama.cpp reads it, in its key types (counts U32, floats F32).
fn hyper_parameters(cfg: &ModelConfig, arch: &str) -> Result<Vec<(String, GgufValue)>, String> {
    let key = |k: &str| format!("{arch}.{k}");
    let count = |k: &str, n: usize| {
        u32::try_from(n)
            .map(|n| (key(k), GgufValue::U32(n)))
            .map_err(|_| format!("`{}` = {n} does not fit GGUF's u32", key(k)))
    };
    let float = |k: &str, x: f64| (key(k), GgufValue::F32(x as f32));
    let rope = cfg.rope();
    let mut out = vec![
        count("context_length", cfg.max_position_embeddings)?,
        count("embedding_length", cfg.hidden_size)?,
        count("block_count", cfg.num_hidden_layers)?,
        count("feed_forward_length", cfg.intermediate_size)?,
        count("attention.head_count", cfg.num_attention_heads)?,
        count("attention.head_count_kv", cfg.num_kv_heads())?,
        float("rope.freq_base", rope.rope_theta.unwrap_or(10_000.0)),
        float("attention.layer_norm_rms_epsilon", cfg.rms_norm_eps),
        count("vocab_size", cfg.vocab_size)?,
        count("rope.dimension_count", cfg.head_dim())?,
    ];
    // llama.cpp assumes hidden / heads unless told.
    if cfg.head_dim() != cfg.hidden_size / cfg.num_attention_heads {
        out.push(count("attention.key_length", cfg.head_dim())?);
        out.push(count("attention.value_length", cfg.head_dim())?);
    }
    match rope.rope_type.as_deref() {
        Some("linear") => {
            out.push((key("rope.scaling.type"), GgufValue::String("linear".into())));
            out.push(float("rope.scaling.factor", rope.factor.unwrap_or(1.0)));
        }
        Some("llama3") => {
            let json = serde_json::to_string(&rope).map_err(|e| e.to_string())?;
            out.push((ROPE_SCALING_KEY.into(), GgufValue::String(json)));
        }
        _ => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
